"""TC-LIF neuron array: integer activations in, one ternary spike vector per timestep out."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib.wiring import In, Out

from spikemllm.config import AcceleratorConfig, Coding
from spikemllm.latency import NEURON_ARRAY_LATENCY

from .block import Block
from .signatures import ActivationStream, SpikeVectorStream

__all__ = ["TCLIFNeuronArray"]


class TCLIFNeuronArray(Block):
    """``lanes`` integrate-and-fire neurons with a per-step threshold and subtractive reset.

    An activation vector (``values[lanes]``, ``timesteps`` = T, ``base``) loads every
    neuron's membrane, ``V_0 = q``. Then, for ``t = 0 .. T-1``, the array emits one spike
    vector: each neuron fires ``s_t = sign(V_t)`` when ``|V_t| >= theta_t`` and resets by
    subtraction, ``V_{t+1} = V_t - s_t * theta_t``.

    * ``coding="tc_lif"`` (config): ``theta_t = 2^(T-1-t)``, a one-hot threshold register
      loaded with ``2^(T-1)`` and shifted right each step. The spikes equal
      ``golden.encode_tc_lif(q, T)``; a value with ``|q| > 2^T - 1`` fires every step,
      which equals ``encode_tc_lif(q, T, saturate=True)``.
    * ``coding="count"``: ``theta_t = 1``; spikes equal ``golden.encode_count_signed``
      (saturating likewise).

    A ``timesteps`` field of 0 runs one step and one above ``t_max`` runs ``t_max`` steps
    (the hardware cannot raise; drivers check ``T``). Each spike vector carries ``base``,
    its step index ``step``, ``step_end = 1`` and ``last`` on the token's final step.

    Ports: ``i`` (in, activation vectors), ``o`` (out, spike vectors).

    Latency: 1 cycle from an activation handshake to the first spike vector. Throughput:
    one spike vector per cycle; the next activation vector is taken in the cycle the
    final spike vector leaves, so a token of ``T`` steps occupies exactly ``T`` cycles.
    Cycle model: :func:`spikemllm.golden.timing.cycle_model.neuron_array_cycles`.

    Raises ``TypeError`` if ``config`` is not an :class:`AcceleratorConfig`.
    """

    LATENCY = NEURON_ARRAY_LATENCY

    def __init__(self, *, config: AcceleratorConfig):
        super().__init__({
            "i": In(ActivationStream(config)),
            "o": Out(SpikeVectorStream(config)),
        }, config=config)

    def elaborate(self, platform):
        m = Module()
        c = self.config
        tc_lif = c.coding is Coding.TC_LIF

        busy = Signal()
        membrane = [Signal(signed(c.act_bits), name=f"membrane_{n}") for n in range(c.lanes)]
        step = Signal(c.step_width)
        final_step = Signal(c.step_width)
        base = Signal(c.index_width)
        # One-hot threshold 2^(T-1-t), shifted right every step; count coding fires at 1.
        theta = Signal(c.t_max, name="threshold") if tc_lif else Const(1, 1)

        requested = self.i.p.timesteps
        steps = Signal(c.timesteps_width)
        clamped = requested
        if (1 << c.timesteps_width) - 1 > c.t_max:  # the field can hold more than t_max
            clamped = Mux(requested > c.t_max, c.t_max, requested)
        m.d.comb += steps.eq(Mux(requested == 0, 1, clamped))

        last = Signal()
        m.d.comb += last.eq(step == final_step)

        # Outputs are decoded from registers, so they hold steady while the consumer stalls.
        m.d.comb += [
            self.o.valid.eq(busy),
            self.o.p.base.eq(base),
            self.o.p.step.eq(step),
            self.o.p.step_end.eq(1),
            self.o.p.last.eq(last),
        ]
        fire_any = []
        for n, v in enumerate(membrane):
            fire = Signal(name=f"fire_{n}")
            m.d.comb += fire.eq(abs(v) >= theta)
            fire_any.append(fire)
            m.d.comb += self.o.p.spikes[n].eq(Mux(fire, Mux(v < 0, -1, 1), 0))

        emit = self.o.valid & self.o.ready
        m.d.comb += self.i.ready.eq(~busy | (emit & last))

        with m.If(emit):
            for v, fire in zip(membrane, fire_any):
                with m.If(fire):
                    m.d.sync += v.eq(Mux(v < 0, v + theta, v - theta))
            m.d.sync += step.eq(step + 1)
            if tc_lif:
                m.d.sync += theta.eq(theta >> 1)
            with m.If(last):
                m.d.sync += busy.eq(0)

        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                busy.eq(1),
                step.eq(0),
                final_step.eq(steps - 1),
                base.eq(self.i.p.base),
            ]
            for n, v in enumerate(membrane):
                m.d.sync += v.eq(self.i.p.values[n])
            if tc_lif:
                m.d.sync += theta.eq((Const(1, c.t_max + 1) << steps) >> 1)
        return m
