"""TC-LIF neuron array: integer activations in, one ternary spike vector per timestep out."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib.wiring import In, Out

from spikemllm.config import AcceleratorConfig, Coding
from spikemllm.latency import NEURON_ARRAY_LATENCY

from .block import Block
from .signatures import ActivationStream, SpikeVectorStream

__all__ = ["TCLIFNeuronArray"]


class TCLIFNeuronArray(Block):
    """``lanes`` integrate-and-fire neurons with a per-step threshold and subtractive reset.

    An activation vector (``values[lanes]``, ``timesteps`` = T, ``base``) loads every
    neuron with ``V_0 = q``. Then, for ``t = 0 .. T-1``, the array emits one spike vector:
    each neuron fires ``s_t = sign(V_t)`` when ``|V_t| >= theta_t`` and resets by
    subtraction, ``V_{t+1} = V_t - s_t * theta_t``. The neurons hold that recurrence in
    closed form, so a step has no adder or comparator and the spikes come straight from
    registers:

    * ``coding="tc_lif"`` (config): ``theta_t = 2^(T-1-t)``, so ``s_t = sign(q)`` times
      bit ``T-1-t`` of ``|q|`` (the spikes are the sign-magnitude binary digits of ``q``,
      ``golden.encode_tc_lif(q, T)``), and a value with ``|q| > 2^T - 1`` fires every step
      (``encode_tc_lif(q, T, saturate=True)``). A neuron loads ``t_max`` digit bits,
      ``|q| << (t_max - T)``, or all ones when ``|q| > 2^T - 1``, and shifts them left
      every step; the top bit fires. A second shift register holds the same bits for a
      negative ``q`` (zeros otherwise): the spike's sign bit.
    * ``coding="count"``: ``theta_t = 1``; spikes equal ``golden.encode_count_signed``
      (saturating likewise). A neuron holds ``|V_t|`` as a down-counter and the spike
      (``|V_t| != 0`` and its sign) in registers, updated from the counter's last value.

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

    @classmethod
    def check_config(cls, config, **params) -> None:
        super().check_config(config, **params)
        if config.bundle != 1:
            raise ValueError(f"the neuron array block encodes one token at a time: bundle={config.bundle!r} is not "
                             "supported (the spike core's neuron stage computes bundles)")

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
        step = Signal(c.step_width)
        final_step = Signal(c.step_width)
        base = Signal(c.index_width)

        requested = self.i.p.timesteps
        steps = Signal(c.timesteps_width)
        clamped = requested
        if (1 << c.timesteps_width) - 1 > c.t_max:  # the field can hold more than t_max
            clamped = Mux(requested > c.t_max, c.t_max, requested)
        m.d.comb += steps.eq(Mux(requested == 0, 1, clamped))

        last = Signal()
        m.d.comb += last.eq(step == final_step)

        # Outputs are registers (or decoded from them), so they hold steady while the consumer stalls.
        m.d.comb += [
            self.o.valid.eq(busy),
            self.o.p.base.eq(base),
            self.o.p.step.eq(step),
            self.o.p.step_end.eq(1),
            self.o.p.last.eq(last),
        ]
        emit = self.o.valid & self.o.ready
        load = self.i.valid & self.i.ready
        m.d.comb += self.i.ready.eq(~busy | (emit & last))

        for n in range(c.lanes):
            q = self.i.p.values[n]
            magnitude = Signal(c.act_bits, name=f"magnitude_{n}")
            m.d.comb += magnitude.eq(abs(q))
            if tc_lif:
                # bit t_max-1 of `digits` fires at the current step; `signs` is `digits` for a negative q
                digits = Signal(c.t_max, name=f"digits_{n}")
                signs = Signal(c.t_max, name=f"signs_{n}")
                m.d.comb += self.o.p.spikes[n].eq(Cat(digits[-1], signs[-1]))
                with m.If(emit):
                    m.d.sync += [digits.eq(digits << 1), signs.eq(signs << 1)]
                with m.If(load):
                    saturated = (magnitude >> steps) != 0
                    aligned = Signal(c.t_max, name=f"aligned_{n}")
                    m.d.comb += aligned.eq(((magnitude << c.t_max) >> steps)[:c.t_max] | saturated.replicate(c.t_max))
                    m.d.sync += [digits.eq(aligned), signs.eq(Mux(q < 0, aligned, 0))]
            else:
                remaining = Signal(c.act_bits, name=f"remaining_{n}")  # |V_t|
                fire = Signal(name=f"fire_{n}")  # |V_t| != 0
                negative = Signal(name=f"negative_{n}")  # fire and V_t < 0
                m.d.comb += self.o.p.spikes[n].eq(Cat(fire, negative))
                with m.If(emit & fire):
                    stays = remaining != 1
                    m.d.sync += [remaining.eq(remaining - 1), fire.eq(stays), negative.eq(negative & stays)]
                with m.If(load):
                    m.d.sync += [remaining.eq(magnitude), fire.eq(magnitude != 0), negative.eq(q < 0)]

        with m.If(emit):
            m.d.sync += step.eq(step + 1)
            with m.If(last):
                m.d.sync += busy.eq(0)

        with m.If(load):
            m.d.sync += [
                busy.eq(1),
                step.eq(0),
                final_step.eq(steps - 1),
                base.eq(self.i.p.base),
            ]
        return m
