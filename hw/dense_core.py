"""Dense multiply-accumulate baselines: the SpikeCore's shell with a MAC array instead of
the spike pipeline.

Both cores take the same configuration, ports, register map, driver, compiled layer and
token stream as :class:`~.core.SpikeCore` (:mod:`.core_shell`); only the datapath
differs. The feeder walks the ``IN`` inputs of the current token in order, ``D =
dense_inputs`` per cycle, and the :class:`DenseMACArray` multiplies each by the ``P``
weights of its row and accumulates -- every input costs ``1 / D`` cycle and ``P``
multiplies whether it is zero or not. ``D`` is how a dense core is matched to the spike
core's width (``events_per_cycle``) or throughput.

* :class:`DenseInt8Core`: integer multiply (``act_bits`` x ``weight_bits``), integer
  accumulate. Its outputs equal the spike core's bit for bit (same integer product, same
  requantizer), so :func:`spikemllm.firmware.compiler.expected_outputs` is its golden model.
* :class:`DenseFP16Core`: activations and weights become FP16 (exactly: the widths are
  checked), FP16 x FP16 products are exact in FP32, and each PE accumulates in FP32 with
  round-to-nearest-even starting from zero, each beat's ``D`` products summed by a
  pairwise tree first (:mod:`.fp`; golden model
  :func:`spikemllm.golden.dense.fp16_accumulators`). The FP32
  result is truncated to an integer for the shared requantizer, which adds the bias.

Timing (ideal streams): :func:`spikemllm.golden.timing.core_model.dense_core_cycles`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal, Value, signed
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikemllm.config import AcceleratorConfig, bits_for
from spikemllm.latency import mac_array_latency

from .block import Block
from .core_shell import Datapath, Feed, LayerCore
from .fp import FP32_ALIGNED, fp16_mul_fp32, fp32_add_align, fp32_add_finish, fp32_to_int, int_to_fp16
from .registers import CoreKind
from .signatures import AccumulatorStream, BundleAccumulatorStream, WeightWriteStream

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
    """One beat for the MAC array: ``D = dense_inputs`` consecutive activations of a token
    (with ``bundle = B > 1``: of each of the bundle's ``B`` tokens, ``values[B][D]``), the
    weight-memory row holding their weights, and the tile end."""
    values = data.ArrayLayout(signed(config.act_bits), config.dense_inputs)
    return data.StructLayout({
        "values": values if config.bundle == 1 else data.ArrayLayout(values, config.bundle),
        "row": config.index_width,
        "last": 1,
    })


class DenseMACArray(Block):
    """``P = pes`` multiply-accumulate units taking ``D = dense_inputs`` inputs per cycle.

    Weights live in ``D`` memories of ``max_fan_in / D`` rows of ``P`` weights: input ``i``
    of a tile is in memory ``i mod D`` at row ``i // D`` (a ``weights`` write to address
    ``a`` goes to memory ``a mod D``, row ``a // D``). A beat carries ``D`` consecutive
    activations and their row; all ``D`` memories read it, so each PE gets ``D`` weights.

    Pipeline, one stage per cycle, all stages advancing together (each register has the
    stage's advance as its enable):

    * read: the weight rows are read and the activations registered;
    * weights: the rows read are registered (the memories' output registers), so that
      the memory access and the multiplier are separate paths;
    * multiply: ``D x P`` products registered;
    * ``arithmetic="int8"``: the ``D`` products of a PE are summed by an adder tree and
      added to its accumulator (exact integers; the accumulator width is the spike core's);
    * ``arithmetic="fp16"``: weights become FP16 as they are written (the memories hold
      FP16), activations as they enter; products are exact FP32; the ``D`` products of a
      PE are summed by a pairwise tree, two stages per level (align; add, normalize and
      round; level ``l`` adds elements ``2k`` and ``2k+1`` of level ``l-1``, each addition
      FP32 round-to-nearest-even),
      then added to the FP32 accumulator, and in a last stage the tile's final sum is
      truncated to an integer.

    With ``bundle = B > 1`` a beat carries the ``D`` activations of each of ``B`` tokens:
    the ``D`` weight rows are read once and serve them all, each PE has ``D x B``
    multipliers and ``B`` accumulators (every token's sums in the order above), and ``o``
    carries ``acc[B][P]``.

    The first sum of a tile starts its accumulators (the bias is the requantizer's); the
    beat marked ``last`` sends the accumulators out as one vector (``last = 1``) and the
    next tile starts afresh. Golden model of the FP16 order:
    :func:`spikemllm.golden.dense.fp16_accumulators`.

    Ports: ``i`` (in, :func:`mac_input_layout`), ``weights`` (in), ``o`` (out,
    accumulator vectors). Weight writes are taken only while no tile is in flight and
    then take priority. The whole pipeline stalls while an output vector waits. Latency
    :func:`spikemllm.latency.mac_array_latency`; one beat of ``D`` inputs per cycle.

    Raises ``TypeError`` for a config that is not an :class:`AcceleratorConfig` and
    ``ValueError`` for an unknown arithmetic or widths it cannot hold exactly.
    """

    @classmethod
    def check_config(cls, config, *, arithmetic: str = "int8") -> None:
        super().check_config(config)
        check_dense_config(config, arithmetic)

    def __init__(self, *, config: AcceleratorConfig, arithmetic: str = "int8"):
        self._arithmetic = arithmetic
        super().__init__({
            "i": In(stream.Signature(mac_input_layout(config))),
            "weights": In(WeightWriteStream(config)),
            "o": Out(AccumulatorStream(config) if config.bundle == 1 else BundleAccumulatorStream(config)),
        }, config=config)

    @property
    def arithmetic(self) -> str:
        return self._arithmetic

    @property
    def latency(self) -> int:
        return mac_array_latency(self._arithmetic, self.config.dense_inputs)

    def elaborate(self, platform):
        m = Module()
        c = self.config
        P, D, B = c.pes, c.dense_inputs, c.bundle
        log_d = D.bit_length() - 1
        fp = self._arithmetic == "fp16"
        weight_shape = 16 if fp else signed(c.weight_bits)
        acc_shape = 32 if fp else signed(c.acc_width)
        # per token of a bundle: a name prefix (none without bundles)
        slot_prefix = [""] if B == 1 else [f"b{b}_" for b in range(B)]

        out_valid = Signal()
        out_acc = [[Signal(signed(c.acc_width), name=f"out_acc_{x}{p}") for p in range(P)] for x in slot_prefix]
        m.d.comb += [self.o.valid.eq(out_valid), self.o.p.last.eq(1), self.o.p.step.eq(0)]
        for b in range(B):
            for p in range(P):
                m.d.comb += (self.o.p.acc[p] if B == 1 else self.o.p.acc[b][p]).eq(out_acc[b][p])
        go = Signal()
        m.d.comb += go.eq(~out_valid | self.o.ready)

        # Stage valid/last bits: read, multiply, the FP tree levels, (FP) conversion.
        a_valid, a_last = Signal(), Signal()
        r_valid, r_last = Signal(), Signal()
        b_valid, b_last = Signal(), Signal()
        # the FP tree: two stages per level (align, then add/normalize/round)
        tree_valid = [Signal(name=f"tree_valid_{l}") for l in range(2 * log_d if fp else 0)]
        tree_last = [Signal(name=f"tree_last_{l}") for l in range(2 * log_d if fp else 0)]
        conv_valid = Signal()
        # FP16: the accumulation's stages (align, then add/normalize/round into one of two
        # accumulators) and the combination of the two accumulators at a tile's end.
        ac1_valid, cmb_valid, c1_valid = Signal(), Signal(), Signal()
        acc = [[Signal(acc_shape, name=f"acc_{x}{p}") for p in range(P)] for x in slot_prefix]
        fresh = Signal(init=1)  # no sum of the current tile accumulated yet

        idle = Signal()
        loading = Signal()
        in_flight = Cat(a_valid, r_valid, b_valid, *tree_valid, ac1_valid, cmb_valid, c1_valid, conv_valid)
        m.d.comb += [
            idle.eq(fresh & ~in_flight.any()),
            loading.eq(idle & self.weights.valid),
            self.weights.ready.eq(idle),
            self.i.ready.eq(go & ~loading),
        ]

        # Weight memories: input a of the weight stream goes to memory a mod D, row a // D.
        row = Signal(data.ArrayLayout(weight_shape, P))
        for p in range(P):
            w = self.weights.p.row[p]
            m.d.comb += row[p].eq(int_to_fp16(m, w, name=f"w16_{p}") if fp else w)
        reads = []
        for k in range(D):
            memory = Memory(shape=data.ArrayLayout(weight_shape, P), depth=c.max_fan_in // D, init=[])
            m.submodules[f"weight_memory_{k}" if D > 1 else "weight_memory"] = memory
            write = memory.write_port()
            select = self.weights.p.addr[:log_d] == k if D > 1 else 1
            m.d.comb += [
                write.addr.eq(self.weights.p.addr >> log_d),
                write.data.eq(row),
                write.en.eq(self.weights.valid & self.weights.ready & select),
            ]
            read = memory.read_port()
            m.d.comb += [read.addr.eq(self.i.p.row), read.en.eq(self.i.valid & self.i.ready)]
            reads.append(read)

        # Read stage: activations registered (FP16 patterns for the FP core) with the rows.
        accept = self.i.valid & self.i.ready
        a_values = [[Signal(16 if fp else signed(c.act_bits), name=f"a_value_{x}{k}") for k in range(D)]
                    for x in slot_prefix]
        # Data registers load only with a valid beat (clock enables); the valid bits move with ``go``.
        with m.If(go):
            m.d.sync += a_valid.eq(accept)
        with m.If(accept):
            m.d.sync += a_last.eq(self.i.p.last)
            for b, x in enumerate(slot_prefix):
                for k, v in enumerate(a_values[b]):
                    value = self.i.p.values[k] if B == 1 else self.i.p.values[b][k]
                    m.d.sync += v.eq(int_to_fp16(m, value, name=f"a16_{x}{k}") if fp else value)

        # Weight stage: the rows read are registered (a block RAM's output register), so
        # that the memory's access time and the multiplier are not one path.
        r_values = [[Signal(v.shape(), name=f"r_value_{x}{k}") for k, v in enumerate(a_values[b])]
                    for b, x in enumerate(slot_prefix)]
        r_weights = [[Signal(weight_shape, name=f"r_weight_{p}_{k}") for k in range(D)] for p in range(P)]
        with m.If(go):
            m.d.sync += r_valid.eq(a_valid)
        with m.If(go & a_valid):
            m.d.sync += [r_last.eq(a_last), *(r.eq(a) for b in range(B) for r, a in zip(r_values[b], a_values[b]))]
            m.d.sync += [r_weights[p][k].eq(reads[k].data[p]) for p in range(P) for k in range(D)]

        # Multiply stage.
        product_shape = 32 if fp else signed(c.act_bits + c.weight_bits)
        products = [[[Signal(product_shape, name=f"product_{x}{p}_{k}") for k in range(D)] for p in range(P)]
                    for x in slot_prefix]
        with m.If(go):
            m.d.sync += b_valid.eq(r_valid)
        with m.If(go & r_valid):
            m.d.sync += b_last.eq(r_last)
            for b, x in enumerate(slot_prefix):
                for p in range(P):
                    for k in range(D):
                        w = r_weights[p][k]  # one weight read, B multipliers
                        m.d.sync += products[b][p][k].eq(
                            fp16_mul_fp32(m, r_values[b][k], w, name=f"mul_{x}{p}_{k}") if fp
                            else r_values[b][k] * w)

        # FP16: a pairwise FP32 tree, each level in two registered stages, as the
        # accumulator's addition below: align | add, normalize, round.
        sums, s_valid, s_last = [[list(row_) for row_ in products[b]] for b in range(B)], b_valid, b_last
        for level in range(log_d if fp else 0):
            align_valid, align_last = tree_valid[2 * level], tree_last[2 * level]
            with m.If(go):
                m.d.sync += [align_valid.eq(s_valid), tree_valid[2 * level + 1].eq(align_valid)]
            with m.If(go & s_valid):
                m.d.sync += align_last.eq(s_last)
            with m.If(go & align_valid):
                m.d.sync += tree_last[2 * level + 1].eq(align_last)
            nxt_all = []
            for b, x in enumerate(slot_prefix):
                aligned = [[Signal(FP32_ALIGNED, name=f"tree_align_{level}_{x}{p}_{n}") for n in range(len(sums[b][p]) // 2)]
                           for p in range(P)]
                nxt = [[Signal(32, name=f"tree_{level}_{x}{p}_{n}") for n in range(len(sums[b][p]) // 2)] for p in range(P)]
                with m.If(go & s_valid):
                    for p in range(P):
                        for n, dst in enumerate(aligned[p]):
                            m.d.sync += dst.eq(fp32_add_align(m, sums[b][p][2 * n], sums[b][p][2 * n + 1],
                                                              name=f"tree_add_{level}_{x}{p}_{n}"))
                with m.If(go & align_valid):
                    for p in range(P):
                        for n, dst in enumerate(nxt[p]):
                            m.d.sync += dst.eq(fp32_add_finish(m, aligned[p][n], name=f"tree_add_{level}_{x}{p}_{n}"))
                nxt_all.append(nxt)
            sums, s_valid, s_last = nxt_all, tree_valid[2 * level + 1], tree_last[2 * level + 1]

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(go & s_valid):
            m.d.sync += fresh.eq(s_last)
        if not fp:
            # Accumulate stage: the adder tree and the accumulator in one cycle.
            for b, x in enumerate(slot_prefix):
                for p in range(P):
                    tree = Signal(signed(c.act_bits + c.weight_bits + log_d), name=f"tree_{x}{p}")
                    m.d.comb += tree.eq(sum(sums[b][p]))
                    total = Mux(fresh, 0, acc[b][p]) + tree
                    with m.If(go & s_valid):
                        m.d.sync += acc[b][p].eq(total)
                        with m.If(s_last):
                            m.d.sync += out_acc[b][p].eq(total)
            with m.If(go & s_valid & s_last):
                m.d.sync += out_valid.eq(1)
            return m

        # FP16: an FP32 addition takes two stages (align | add, normalize, round), so a PE
        # has two accumulators: even beats of a tile go to accumulator 0, odd ones to 1, each
        # starting from +0.0; at the tile's end a second two-stage adder forms acc0 + acc1
        # (an accumulator that received no beat counts as +0.0), and a last stage truncates
        # the sum to an integer. Golden model: spikemllm.golden.dense.fp16_accumulators.
        phase = Signal()       # accumulator of the next beat
        used = Signal(2)       # accumulators the current tile has written
        ac1_last, ac1_phase = Signal(), Signal()
        ac1_used = Signal(2)
        mark = Signal(2)
        m.d.comb += mark.eq(Mux(phase, 0b10, 0b01))
        with m.If(go):
            m.d.sync += ac1_valid.eq(s_valid)
        with m.If(go & s_valid):
            m.d.sync += [
                ac1_last.eq(s_last), ac1_phase.eq(phase), ac1_used.eq(used | mark),
                phase.eq(Mux(s_last, 0, ~phase)), used.eq(Mux(s_last, 0, used | mark)),
            ]
        cmb_used = Signal(2)
        with m.If(go):
            m.d.sync += cmb_valid.eq(ac1_valid & ac1_last)
        with m.If(go & ac1_valid):
            m.d.sync += cmb_used.eq(ac1_used)
        with m.If(go):
            m.d.sync += [c1_valid.eq(cmb_valid), conv_valid.eq(c1_valid)]
        with m.If(go & conv_valid):
            m.d.sync += out_valid.eq(1)
        for b, x in enumerate(slot_prefix):
            ac1 = [Signal(FP32_ALIGNED, name=f"ac1_{x}{p}") for p in range(P)]
            accs = [[Signal(32, name=f"acc_{x}{p}_{h}") for h in range(2)] for p in range(P)]
            with m.If(go & s_valid):
                for p in range(P):
                    base = Mux((used & mark).any(), Mux(phase, accs[p][1], accs[p][0]), 0)
                    m.d.sync += ac1[p].eq(fp32_add_align(m, base, sums[b][p][0], name=f"acc_add_{x}{p}"))
            with m.If(go & ac1_valid):
                for p in range(P):
                    total = fp32_add_finish(m, ac1[p], name=f"acc_add_{x}{p}")
                    with m.If(ac1_phase):
                        m.d.sync += accs[p][1].eq(total)
                    with m.Else():
                        m.d.sync += accs[p][0].eq(total)
            # Combination: read both accumulators the cycle after the tile's last write (the
            # next tile's first write lands a cycle later).
            c1 = [Signal(FP32_ALIGNED, name=f"c1_{x}{p}") for p in range(P)]
            final = [Signal(32, name=f"final_{x}{p}") for p in range(P)]
            with m.If(go & cmb_valid):
                for p in range(P):
                    first = Mux(cmb_used[0], accs[p][0], 0)
                    second = Mux(cmb_used[1], accs[p][1], 0)
                    m.d.sync += c1[p].eq(fp32_add_align(m, first, second, name=f"combine_{x}{p}"))
            with m.If(go & c1_valid):
                for p in range(P):
                    m.d.sync += final[p].eq(fp32_add_finish(m, c1[p], name=f"combine_{x}{p}"))
            # Conversion stage: the tile's FP32 sums truncated to integers.
            with m.If(go & conv_valid):
                for p in range(P):
                    m.d.sync += out_acc[b][p].eq(fp32_to_int(m, final[p], c.acc_width, name=f"int_{x}{p}"))
        return m


class _DenseCore(LayerCore):
    ARITHMETIC = "int8"

    @classmethod
    def check_config(cls, config) -> None:
        super().check_config(config)
        check_dense_config(config, cls.ARITHMETIC)

    def elaborate_datapath(self, m: Module, feed: Feed) -> Datapath:
        """Feeder (activation memory -> ``D`` inputs per cycle, in order; of every token of a
        bundle at once) -> MAC array."""
        c = self.config
        D, B = c.dense_inputs, c.bundle
        log_d = D.bit_length() - 1
        kmax = c.in_chunks_max
        lane_shift = c.lane_index_width
        array = DenseMACArray(config=c, arithmetic=self.ARITHMETIC)
        m.submodules.mac_array = ResetInserter(feed.flush)(array)

        index = Signal(c.index_width + 1)   # next input to issue (a multiple of D)
        issuing = Signal()
        # R stage: the chunk holding the issued inputs is on the read port.
        r_valid, r_last = Signal(), Signal()
        r_group = Signal(range(max(2, c.lanes // D)))
        r_row = Signal(c.index_width)
        # S stage: the inputs offered to the MAC array.
        s_valid = Signal()
        s_payload = Signal(mac_input_layout(c))
        m.d.comb += [array.i.valid.eq(s_valid), array.i.p.eq(s_payload)]
        advance = Signal()
        m.d.comb += advance.eq(~s_valid | array.i.ready)

        chunk = index >> lane_shift
        for read in feed.act_reads:
            m.d.comb += [
                read.addr.eq(Cat(chunk[: max(1, (kmax - 1).bit_length())], feed.bank) if kmax > 1 else feed.bank),
                # One read per chunk: the port holds the chunk while its D-input groups are issued.
                read.en.eq(advance & issuing & (index[log_d:lane_shift] == 0 if lane_shift > log_d else 1)),
            ]
        with m.If(advance):
            m.d.sync += s_valid.eq(r_valid)
            with m.If(r_valid):
                m.d.sync += [s_payload.row.eq(r_row), s_payload.last.eq(r_last)]
                for b, read in enumerate(feed.act_reads):
                    group = Value.cast(read.data).word_select(r_group, D * c.act_bits)
                    for k in range(D):
                        value = s_payload.values[k] if B == 1 else s_payload.values[b][k]
                        m.d.sync += value.eq(group[k * c.act_bits:(k + 1) * c.act_bits])
        issue = Signal()
        finished = Signal()
        final = index == feed.in_features - D
        m.d.comb += [issue.eq(advance & issuing), finished.eq(issue & final)]
        with m.If(advance):
            m.d.sync += r_valid.eq(issuing)
            with m.If(issuing):
                m.d.sync += [
                    r_group.eq(index[log_d:lane_shift] if lane_shift > log_d else 0),
                    r_row.eq((feed.tile_base + index) >> log_d),
                    r_last.eq(final),
                    index.eq(index + D),
                ]
        with m.If(finished):
            m.d.sync += issuing.eq(0)
        with m.If(feed.begin):
            m.d.sync += [issuing.eq(1), index.eq(0)]
        with m.If(feed.flush):
            m.d.sync += [issuing.eq(0), r_valid.eq(0), s_valid.eq(0)]
        take = array.i.valid & array.i.ready
        if B == 1:
            return Datapath(array=array, finished=finished, take=take, work=Const(D, bits_for(D)))
        # EVENTS: inputs multiplied for the bundle's tokens (its count travels with each beat);
        # WEIGHT_READS: the D rows a beat reads once for all of them
        r_slots = Signal(range(B + 1))
        s_slots = Signal(range(B + 1))
        with m.If(advance):
            with m.If(issuing):
                m.d.sync += r_slots.eq(feed.slots)
            with m.If(r_valid):
                m.d.sync += s_slots.eq(r_slots)
        work = Signal(range(D * B + 1))
        m.d.comb += work.eq(s_slots * D)
        return Datapath(array=array, finished=finished, take=take, work=work, reads=Const(D, bits_for(D)))


class DenseInt8Core(_DenseCore):
    """Dense INT8 multiply-accumulate baseline: ``pes`` PEs of ``dense_inputs`` multipliers.

    Same ports, registers and driver as :class:`~.core.SpikeCore`; ``EVENTS`` counts
    inputs multiplied per PE (inputs x tiles, of every token), ``WEIGHT_READS`` the weight
    rows read (once per bundle with ``bundle > 1``) and ``ACTIVE_CYCLES`` the cycles that
    took a beat of ``D`` inputs (of each token of a bundle). Outputs equal the spike core's
    bit for bit.

    Raises ``TypeError`` if ``config`` is not an :class:`AcceleratorConfig`.
    """

    KIND = CoreKind.INT8
    ARITHMETIC = "int8"


class DenseFP16Core(_DenseCore):
    """Dense FP16 multiply, FP32 accumulate baseline: ``pes`` PEs of ``dense_inputs`` multipliers.

    Same ports, registers and driver as :class:`~.core.SpikeCore`. Raises ``TypeError`` if
    ``config`` is not an :class:`AcceleratorConfig` and ``ValueError`` if its activations
    are too wide to be exact in FP16 (``act_bits <= 12``).
    """

    KIND = CoreKind.FP16
    ARITHMETIC = "fp16"
