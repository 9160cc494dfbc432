"""Dense multiply-accumulate baselines: the SpikeCore's shell with a MAC array instead of
the spike pipeline.

Both cores take the same configuration, ports, register map, driver, compiled layer and
token stream as :class:`~.core.SpikeCore` (:mod:`.core_shell`); only the datapath
differs. The feeder walks the ``IN`` inputs of the current token in order, one per
cycle, and the :class:`DenseMACArray` multiplies each by the ``P`` weights of its row and
accumulates -- every input costs a cycle and ``P`` multiplies whether it is zero or not.

* :class:`DenseInt8Core`: integer multiply (``act_bits`` x ``weight_bits``), integer
  accumulate. Its outputs equal the spike core's bit for bit (same integer product, same
  requantizer), so :func:`spikemllm.firmware.compiler.expected_outputs` is its golden model.
* :class:`DenseFP16Core`: activations and weights become FP16 (exactly: the widths are
  checked), FP16 x FP16 products are exact in FP32, and each PE accumulates in FP32 with
  round-to-nearest-even starting from zero, inputs in ascending order
  (:mod:`.fp`; golden model :func:`spikemllm.golden.dense.fp16_accumulators`). The FP32
  result is truncated to an integer for the shared requantizer, which adds the bias.

Timing (ideal streams): :func:`spikemllm.golden.timing.core_model.dense_core_cycles`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikemllm.config import AcceleratorConfig
from spikemllm.latency import MAC_ARRAY_LATENCY

from .block import Block
from .core_shell import Datapath, Feed, LayerCore
from .fp import fp16_mul_fp32, fp32_add, fp32_to_int, int_to_fp16
from .registers import CoreKind
from .signatures import AccumulatorStream, WeightWriteStream

__all__ = ["ARITHMETICS", "DenseMACArray", "DenseInt8Core", "DenseFP16Core", "mac_input_layout", "check_dense_config"]

ARITHMETICS = ("int8", "fp16")
"""Arithmetic of a dense MAC array: integer, or FP16 multiply with FP32 accumulate."""

FP16_EXACT_INT_BITS = 12
"""Signed integers of up to 12 bits (``|x| <= 2048``) are exact in FP16."""


def check_dense_config(config: AcceleratorConfig, arithmetic: str) -> AcceleratorConfig:
    """Raise ``ValueError`` if ``arithmetic`` is unknown or ``config`` cannot use it exactly."""
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"arithmetic must be one of {ARITHMETICS}, not {arithmetic!r}")
    if arithmetic == "fp16":
        if config.act_bits > FP16_EXACT_INT_BITS:
            raise ValueError(f"act_bits={config.act_bits!r} is not exact in FP16 (at most {FP16_EXACT_INT_BITS})")
    return config


def mac_input_layout(config: AcceleratorConfig) -> data.StructLayout:
    """One input of a token for the MAC array: its activation, weight row and tile end."""
    return data.StructLayout({
        "value": signed(config.act_bits),
        "index": config.index_width,
        "last": 1,
    })


class DenseMACArray(Block):
    """``P = pes`` multiply-accumulate units, one input per cycle.

    An accepted beat reads weight row ``index`` (synchronous memory), the next cycle
    multiplies the activation by the ``P`` weights (registered products), the cycle after
    adds them to the accumulators. The first product of a tile starts the sum (the bias
    is the requantizer's); the beat marked ``last`` sends the accumulators out as one
    vector (``last = 1``) and starts the next tile afresh.

    ``arithmetic="int8"``: integer products and sums (exact; the accumulator width is the
    spike core's). ``arithmetic="fp16"``: weights are converted to FP16 as they are
    written (the memory holds FP16), activations as they enter, products are exact FP32
    and the accumulators FP32 with round-to-nearest-even; the final sum leaves truncated
    to an integer.

    Ports: ``i`` (in, :func:`mac_input_layout`), ``weights`` (in), ``o`` (out,
    accumulator vectors). Weight writes are taken only while no tile is in flight and
    then take priority. The whole pipeline stalls while an output vector
    waits. Latency 3 cycles (read, multiply, accumulate); one input per cycle.

    Raises ``TypeError`` for a config that is not an :class:`AcceleratorConfig` and
    ``ValueError`` for an unknown arithmetic or widths it cannot hold exactly.
    """

    LATENCY = MAC_ARRAY_LATENCY

    @classmethod
    def check_config(cls, config, *, arithmetic: str = "int8") -> None:
        super().check_config(config)
        check_dense_config(config, arithmetic)

    def __init__(self, *, config: AcceleratorConfig, arithmetic: str = "int8"):
        self._arithmetic = arithmetic
        super().__init__({
            "i": In(stream.Signature(mac_input_layout(config))),
            "weights": In(WeightWriteStream(config)),
            "o": Out(AccumulatorStream(config)),
        }, config=config)

    @property
    def arithmetic(self) -> str:
        return self._arithmetic

    def elaborate(self, platform):
        m = Module()
        c = self.config
        P = c.pes
        fp = self._arithmetic == "fp16"
        weight_shape = 16 if fp else signed(c.weight_bits)
        acc_shape = 32 if fp else signed(c.acc_width)

        m.submodules.weight_memory = memory = Memory(shape=data.ArrayLayout(weight_shape, P), depth=c.max_fan_in, init=[])
        write = memory.write_port()
        read = memory.read_port()

        out_valid = Signal()
        out_acc = [Signal(signed(c.acc_width), name=f"out_acc_{p}") for p in range(P)]
        m.d.comb += [self.o.valid.eq(out_valid), self.o.p.last.eq(1), self.o.p.step.eq(0)]
        for p in range(P):
            m.d.comb += self.o.p.acc[p].eq(out_acc[p])
        go = Signal()
        m.d.comb += go.eq(~out_valid | self.o.ready)

        a_valid, a_last = Signal(), Signal()
        a_value = Signal(16 if fp else signed(c.act_bits))
        b_valid, b_last = Signal(), Signal()
        products = [Signal(acc_shape if fp else signed(c.act_bits + c.weight_bits), name=f"product_{p}") for p in range(P)]
        acc = [Signal(acc_shape, name=f"acc_{p}") for p in range(P)]
        fresh = Signal(init=1)  # no product of the current tile accumulated yet

        idle = Signal()
        loading = Signal()
        m.d.comb += [
            idle.eq(fresh & ~a_valid & ~b_valid),
            loading.eq(idle & self.weights.valid),
            self.weights.ready.eq(idle),
            self.i.ready.eq(go & ~loading),
        ]

        # Loads: FP16 weights are converted on the way in.
        row = Signal(data.ArrayLayout(weight_shape, P))
        for p in range(P):
            w = self.weights.p.row[p]
            m.d.comb += row[p].eq(int_to_fp16(m, w, name=f"w16_{p}") if fp else w)
        m.d.comb += [
            write.addr.eq(self.weights.p.addr),
            write.data.eq(row),
            write.en.eq(self.weights.valid & self.weights.ready),
        ]

        accept = self.i.valid & self.i.ready
        m.d.comb += [read.addr.eq(self.i.p.index), read.en.eq(go)]
        value = int_to_fp16(m, self.i.p.value, name="a16") if fp else self.i.p.value
        with m.If(go):
            m.d.sync += [a_valid.eq(accept), a_last.eq(self.i.p.last), a_value.eq(value)]
            m.d.sync += [b_valid.eq(a_valid), b_last.eq(a_last)]
            for p in range(P):
                w = read.data[p]
                m.d.sync += products[p].eq(fp16_mul_fp32(m, a_value, w, name=f"mul_{p}") if fp else a_value * w)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out_valid.eq(0)
        for p in range(P):
            base = Mux(fresh, 0, acc[p])  # +0.0 in FP32
            total = fp32_add(m, base, products[p], name=f"add_{p}") if fp else base + products[p]
            with m.If(go & b_valid):
                m.d.sync += acc[p].eq(total)
                with m.If(b_last):
                    m.d.sync += out_acc[p].eq(fp32_to_int(m, total, c.acc_width, name=f"int_{p}") if fp else total)
        with m.If(go & b_valid):
            m.d.sync += fresh.eq(b_last)
            with m.If(b_last):
                m.d.sync += out_valid.eq(1)
        return m


class _DenseCore(LayerCore):
    ARITHMETIC = "int8"

    @classmethod
    def check_config(cls, config) -> None:
        super().check_config(config)
        check_dense_config(config, cls.ARITHMETIC)

    def elaborate_datapath(self, m: Module, feed: Feed) -> Datapath:
        """Feeder (activation memory -> one input per cycle, in order) -> MAC array."""
        c = self.config
        kmax = c.in_chunks_max
        lane_shift = (c.lanes - 1).bit_length()
        m.submodules.mac_array = array = DenseMACArray(config=c, arithmetic=self.ARITHMETIC)

        index = Signal(c.index_width + 1)   # next input to issue
        issuing = Signal()
        # R stage: the chunk holding the issued input is on the read port.
        r_valid, r_last = Signal(), Signal()
        r_lane = Signal(range(c.lanes))
        r_row = Signal(c.index_width)
        # S stage: the input offered to the MAC array.
        s_valid = Signal()
        s_payload = Signal(mac_input_layout(c))
        m.d.comb += [array.i.valid.eq(s_valid), array.i.p.eq(s_payload)]
        advance = Signal()
        m.d.comb += advance.eq(~s_valid | array.i.ready)

        chunk = index >> lane_shift
        m.d.comb += [
            feed.act_read.addr.eq(Cat(chunk[: max(1, (kmax - 1).bit_length())], feed.bank) if kmax > 1 else feed.bank),
            feed.act_read.en.eq(advance),
        ]
        with m.If(advance):
            m.d.sync += s_valid.eq(r_valid)
            with m.If(r_valid):
                m.d.sync += [
                    s_payload.value.eq(feed.act_read.data[r_lane]),
                    s_payload.index.eq(r_row),
                    s_payload.last.eq(r_last),
                ]
        issue = Signal()
        finished = Signal()
        final = index == feed.in_features - 1
        m.d.comb += [issue.eq(advance & issuing), finished.eq(issue & final)]
        with m.If(advance):
            m.d.sync += r_valid.eq(issuing)
            with m.If(issuing):
                m.d.sync += [
                    r_lane.eq(index[:lane_shift] if lane_shift else 0),
                    r_row.eq(feed.tile_base + index),
                    r_last.eq(final),
                    index.eq(index + 1),
                ]
        with m.If(feed.begin):
            m.d.sync += [issuing.eq(1), index.eq(0)]
        with m.If(finished | feed.flush):
            m.d.sync += issuing.eq(0)
        return Datapath(array=array, finished=finished, take=array.i.valid & array.i.ready, work=Const(1, 1))


class DenseInt8Core(_DenseCore):
    """Dense INT8 multiply-accumulate baseline: ``pes`` MAC units, one input per cycle.

    Same ports, registers and driver as :class:`~.core.SpikeCore`; ``EVENTS`` counts
    multiply-accumulate beats (inputs x tiles) and ``ACTIVE_CYCLES`` the cycles that took
    one. Outputs equal the spike core's bit for bit.

    Raises ``TypeError`` if ``config`` is not an :class:`AcceleratorConfig`.
    """

    KIND = CoreKind.INT8
    ARITHMETIC = "int8"


class DenseFP16Core(_DenseCore):
    """Dense FP16 multiply, FP32 accumulate baseline: ``pes`` MAC units, one input per cycle.

    Same ports, registers and driver as :class:`~.core.SpikeCore`. Raises ``TypeError`` if
    ``config`` is not an :class:`AcceleratorConfig` and ``ValueError`` if its activations
    are too wide to be exact in FP16 (``act_bits <= 12``).
    """

    KIND = CoreKind.FP16
    ARITHMETIC = "fp16"
