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
from .fp import FP32_ALIGNED, fp16_mul_fp32, fp16_zero_low_bits, fp32_add_align, fp32_add_finish, fp32_to_int, int_to_fp16
from .registers import CoreKind
from .signatures import AccumulatorStream, BundleAccumulatorStream, WeightWriteStream

__all__ = ["ARITHMETICS", "DenseMAC", "DenseMACArray", "DenseInt8Core", "DenseFP16Core", "mac_input_layout", "check_dense_config"]

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


class _ArithmeticBlock(Block):
    """A block built for one of :data:`ARITHMETICS`, checked with its configuration."""

    @classmethod
    def check_config(cls, config, *, arithmetic: str = "int8") -> None:
        super().check_config(config)
        check_dense_config(config, arithmetic)

    def __init__(self, signature, *, config: AcceleratorConfig, arithmetic: str):
        self._arithmetic = arithmetic
        super().__init__(signature, config=config)

    @property
    def arithmetic(self) -> str:
        return self._arithmetic


class DenseMAC(_ArithmeticBlock):
    """The datapath of one PE of a :class:`DenseMACArray`: ``D = dense_inputs`` weight
    registers, ``D x B`` multipliers (``B = bundle``), the sum of a beat's products and the
    ``B`` accumulators, with their output registers.

    The array keeps everything its PEs share (the stage valid bits, the handshake, the
    memories, the activations) and drives every PE through the same ports, so the ``P``
    instances are the same circuit; each one's Verilog (as :mod:`.generate` writes it)
    differs from the others' only in its module name, and a synthesis flow can build one
    and place it ``P`` times. The PE
    has no handshake: each register bank loads when its ``load_*`` port is high (the
    array's advance of that stage), and the PE reads nothing else of the array.

    Ports: ``weights`` (in, ``[D]``, this PE's weights of the beat's rows), ``values`` (in,
    ``[B][D]``, the beat's registered activations); with ``arithmetic="fp16"`` both are
    FP16 patterns without their low bits that are 0 for integers of their width
    (:func:`~.fp.fp16_zero_low_bits`), so that synthesis, which maps the PE on its own,
    sees those bits constant; ``load_weights`` (weight registers),
    ``load_products`` (products), and ``acc`` (out, ``[B]``, the accumulators of the last
    tile finished). Then:

    * ``arithmetic="int8"``: ``load_accumulator`` (the adder tree's sum is added to the
      accumulators, which start from 0 while ``fresh`` is high; with ``last`` high the
      sums go to ``acc`` too);
    * ``arithmetic="fp16"``: ``load_tree_align`` and ``load_tree`` (bit ``l``: the align
      and add halves of tree level ``l``; ``log2 D`` bits, absent for ``D = 1``);
      ``load_accumulator_align`` (the tree's sum is aligned to accumulator ``phase``, or to
      +0.0 unless ``resume``: that accumulator already holds part of the tile);
      ``load_accumulator`` (accumulator ``accumulator_phase`` takes the sum);
      ``load_combine_align`` and ``load_combine`` (the two accumulators added, each counted
      only if its bit of ``combine_used`` is set); ``load_result`` (the sum truncated to
      an integer into ``acc``).

    Latency and order of the arithmetic: :class:`DenseMACArray`. Raises ``TypeError`` for
    a config that is not an :class:`AcceleratorConfig` and ``ValueError`` for an unknown
    arithmetic or widths it cannot hold exactly.
    """

    def __init__(self, *, config: AcceleratorConfig, arithmetic: str = "int8"):
        c = config
        fp = arithmetic == "fp16"
        levels = c.dense_inputs.bit_length() - 1
        # FP16 operands come without the low bits that are 0 for integers of their width
        value = data.ArrayLayout(16 - fp16_zero_low_bits(c.act_bits) if fp else signed(c.act_bits), c.dense_inputs)
        members = {
            "weights": In(data.ArrayLayout(16 - fp16_zero_low_bits(c.weight_bits) if fp else signed(c.weight_bits),
                                           c.dense_inputs)),
            "values": In(data.ArrayLayout(value, c.bundle)),
            "load_weights": In(1),
            "load_products": In(1),
        }
        if not fp:
            members |= {"load_accumulator": In(1), "fresh": In(1), "last": In(1)}
        else:
            if levels:
                members |= {"load_tree_align": In(levels), "load_tree": In(levels)}
            members |= {
                "load_accumulator_align": In(1), "phase": In(1), "resume": In(1),
                "load_accumulator": In(1), "accumulator_phase": In(1),
                "load_combine_align": In(1), "combine_used": In(2), "load_combine": In(1),
                "load_result": In(1),
            }
        members["acc"] = Out(data.ArrayLayout(signed(c.acc_width), c.bundle))
        super().__init__(members, config=config, arithmetic=arithmetic)

    def elaborate(self, platform):
        m = Module()
        c = self.config
        D, B = c.dense_inputs, c.bundle
        log_d = D.bit_length() - 1
        fp = self._arithmetic == "fp16"
        # per token of a bundle: a name suffix (none without bundles)
        slots = [""] if B == 1 else [f"_b{b}" for b in range(B)]

        # Weight registers: the rows read, registered (a block RAM's output register), so
        # that the memory's access time and the multiplier are not one path.
        weights = [Signal(self.weights[k].shape(), name=f"r_weight_{k}") for k in range(D)]
        with m.If(self.load_weights):
            m.d.sync += [w.eq(self.weights[k]) for k, w in enumerate(weights)]

        # Multiply: one weight register feeds the B multipliers of its input.
        product_shape = 32 if fp else signed(c.act_bits + c.weight_bits)
        products = [[Signal(product_shape, name=f"product{s}_{k}") for k in range(D)] for s in slots]
        with m.If(self.load_products):
            for b, s in enumerate(slots):
                for k, w in enumerate(weights):
                    value = self.values[b][k]
                    if fp:  # the full FP16 patterns, their constant low bits in view of synthesis
                        value = Cat(Const(0, fp16_zero_low_bits(c.act_bits)), value)
                        w = Cat(Const(0, fp16_zero_low_bits(c.weight_bits)), w)
                    m.d.sync += products[b][k].eq(fp16_mul_fp32(m, value, w, name=f"mul{s}_{k}") if fp
                                                  else value * w)

        if not fp:
            # Accumulate: the adder tree and the accumulator in one cycle.
            for b, s in enumerate(slots):
                tree = Signal(signed(c.act_bits + c.weight_bits + log_d), name=f"tree{s}")
                m.d.comb += tree.eq(sum(products[b]))
                accumulator = Signal(signed(c.acc_width), name=f"accumulator{s}")
                total = Mux(self.fresh, 0, accumulator) + tree
                with m.If(self.load_accumulator):
                    m.d.sync += accumulator.eq(total)
                    with m.If(self.last):
                        m.d.sync += self.acc[b].eq(total)
            return m

        # FP16: the pairwise tree, each level in two registered stages as the accumulator's
        # addition below: align | add, normalize, round.
        sums = products
        for level in range(log_d):
            nxt_all = []
            for b, s in enumerate(slots):
                aligned = [Signal(FP32_ALIGNED, name=f"tree_align_{level}{s}_{n}") for n in range(len(sums[b]) // 2)]
                nxt = [Signal(32, name=f"tree_{level}{s}_{n}") for n in range(len(sums[b]) // 2)]
                with m.If(self.load_tree_align[level]):
                    for n, dst in enumerate(aligned):
                        m.d.sync += dst.eq(fp32_add_align(m, sums[b][2 * n], sums[b][2 * n + 1],
                                                          name=f"tree_add_{level}{s}_{n}"))
                with m.If(self.load_tree[level]):
                    for n, dst in enumerate(nxt):
                        m.d.sync += dst.eq(fp32_add_finish(m, aligned[n], name=f"tree_add_{level}{s}_{n}"))
                nxt_all.append(nxt)
            sums = nxt_all

        # Two accumulators (even and odd beats of a tile), their combination at the tile's
        # end and the conversion to an integer; the array's docstring has the order.
        for b, s in enumerate(slots):
            ac1 = Signal(FP32_ALIGNED, name=f"ac1{s}")
            accs = [Signal(32, name=f"accumulator{s}_{h}") for h in range(2)]
            with m.If(self.load_accumulator_align):
                base = Mux(self.resume, Mux(self.phase, accs[1], accs[0]), 0)
                m.d.sync += ac1.eq(fp32_add_align(m, base, sums[b][0], name=f"acc_add{s}"))
            with m.If(self.load_accumulator):
                total = fp32_add_finish(m, ac1, name=f"acc_add{s}")
                with m.If(self.accumulator_phase):
                    m.d.sync += accs[1].eq(total)
                with m.Else():
                    m.d.sync += accs[0].eq(total)
            c1 = Signal(FP32_ALIGNED, name=f"c1{s}")
            final = Signal(32, name=f"final{s}")
            with m.If(self.load_combine_align):
                first = Mux(self.combine_used[0], accs[0], 0)
                second = Mux(self.combine_used[1], accs[1], 0)
                m.d.sync += c1.eq(fp32_add_align(m, first, second, name=f"combine{s}"))
            with m.If(self.load_combine):
                m.d.sync += final.eq(fp32_add_finish(m, c1, name=f"combine{s}"))
            with m.If(self.load_result):
                m.d.sync += self.acc[b].eq(fp32_to_int(m, final, c.acc_width, name=f"int{s}"))
        return m


class DenseMACArray(_ArithmeticBlock):
    """``P = pes`` multiply-accumulate units taking ``D = dense_inputs`` inputs per cycle.

    Weights live in ``D`` memories of ``max_fan_in / D`` rows of ``P`` weights: input ``i``
    of a tile is in memory ``i mod D`` at row ``i // D`` (a ``weights`` write to address
    ``a`` goes to memory ``a mod D``, row ``a // D``). A beat carries ``D`` consecutive
    activations and their row; all ``D`` memories read it, so each PE gets ``D`` weights.

    Each PE's datapath (its weight registers, multipliers, sums and accumulators) is one
    :class:`DenseMAC` submodule, ``pe_0`` ... ``pe_{P-1}``, all the same circuit; the
    array keeps what they share (the memories, the activation registers, the stage valid
    bits, the FP16 accumulators' bookkeeping and the handshake) and drives their register
    banks' enables.

    Pipeline, one stage per cycle, all stages advancing together (each register has the
    stage's advance as its enable):

    * read: the weight rows are read and the activations registered;
    * weights: the rows read are registered (the memories' output registers, in the PEs),
      so that the memory access and the multiplier are separate paths;
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

    def __init__(self, *, config: AcceleratorConfig, arithmetic: str = "int8"):
        super().__init__({
            "i": In(stream.Signature(mac_input_layout(config))),
            "weights": In(WeightWriteStream(config)),
            "o": Out(AccumulatorStream(config) if config.bundle == 1 else BundleAccumulatorStream(config)),
        }, config=config, arithmetic=arithmetic)

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
        # per token of a bundle: a name prefix (none without bundles)
        slot_prefix = [""] if B == 1 else [f"b{b}_" for b in range(B)]

        pes = [DenseMAC(config=c, arithmetic=self._arithmetic) for _ in range(P)]
        for p, pe in enumerate(pes):
            m.submodules[f"pe_{p}"] = pe

        out_valid = Signal()
        m.d.comb += [self.o.valid.eq(out_valid), self.o.p.last.eq(1), self.o.p.step.eq(0)]
        for b in range(B):
            for p, pe in enumerate(pes):
                m.d.comb += (self.o.p.acc[p] if B == 1 else self.o.p.acc[b][p]).eq(pe.acc[b])
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

        # The PEs' register banks load when their stage advances: one enable each, shared.
        def enable(name, condition):
            signal = Signal(name=name)
            m.d.comb += signal.eq(condition)
            return signal

        def drive(port, value):
            m.d.comb += [getattr(pe, port).eq(value) for pe in pes]

        # Weight memories: input a of the weight stream goes to memory a mod D, row a // D.
        row = Signal(data.ArrayLayout(weight_shape, P))
        for p in range(P):
            w = self.weights.p.row[p]
            m.d.comb += row[p].eq(int_to_fp16(m, w, name=f"w16_{p}") if fp else w)
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
            # the PEs take the weights' FP16 patterns without their low bits, which are 0
            zeros = fp16_zero_low_bits(c.weight_bits) if fp else 0
            m.d.comb += [pe.weights[k].eq(Value.cast(read.data[p])[zeros:]) for p, pe in enumerate(pes)]

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

        # Weight stage: the activations registered here, the rows read in the PEs.
        r_values = [[Signal(v.shape(), name=f"r_value_{x}{k}") for k, v in enumerate(a_values[b])]
                    for b, x in enumerate(slot_prefix)]
        load_weights = enable("load_weights", go & a_valid)
        drive("load_weights", load_weights)
        with m.If(go):
            m.d.sync += r_valid.eq(a_valid)
        with m.If(load_weights):
            m.d.sync += [r_last.eq(a_last), *(r.eq(a) for b in range(B) for r, a in zip(r_values[b], a_values[b]))]
        zeros = fp16_zero_low_bits(c.act_bits) if fp else 0
        m.d.comb += [pe.values[b][k].eq(r[zeros:]) for pe in pes for b in range(B) for k, r in enumerate(r_values[b])]

        # Multiply stage.
        load_products = enable("load_products", go & r_valid)
        drive("load_products", load_products)
        with m.If(go):
            m.d.sync += b_valid.eq(r_valid)
        with m.If(load_products):
            m.d.sync += b_last.eq(r_last)

        # FP16: the tree levels' valid bits (the PEs hold their sums).
        s_valid, s_last = b_valid, b_last
        levels = log_d if fp else 0
        load_tree_align, load_tree = Signal(levels), Signal(levels)  # bit l: level l's align, add
        for level in range(levels):
            align_valid, align_last = tree_valid[2 * level], tree_last[2 * level]
            m.d.comb += [load_tree_align[level].eq(go & s_valid), load_tree[level].eq(go & align_valid)]
            with m.If(go):
                m.d.sync += [align_valid.eq(s_valid), tree_valid[2 * level + 1].eq(align_valid)]
            with m.If(load_tree_align[level]):
                m.d.sync += align_last.eq(s_last)
            with m.If(load_tree[level]):
                m.d.sync += tree_last[2 * level + 1].eq(align_last)
            s_valid, s_last = tree_valid[2 * level + 1], tree_last[2 * level + 1]
        if levels:
            drive("load_tree_align", load_tree_align)
            drive("load_tree", load_tree)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out_valid.eq(0)
        # The beat's sum enters the accumulators (FP16: their align stage).
        load_sum = enable("load_accumulator_align" if fp else "load_accumulator", go & s_valid)
        with m.If(load_sum):
            m.d.sync += fresh.eq(s_last)
        if not fp:
            # Accumulate stage: the adder tree and the accumulator in one cycle (in the PEs).
            drive("load_accumulator", load_sum)
            drive("fresh", fresh)
            drive("last", s_last)
            with m.If(go & s_valid & s_last):
                m.d.sync += out_valid.eq(1)
            return m

        # FP16: an FP32 addition takes two stages (align | add, normalize, round), so a PE
        # has two accumulators: even beats of a tile go to accumulator 0, odd ones to 1, each
        # starting from +0.0; at the tile's end a second two-stage adder forms acc0 + acc1
        # (an accumulator that received no beat counts as +0.0), and a last stage truncates
        # the sum to an integer. Golden model: spikemllm.golden.dense.fp16_accumulators.
        # The array keeps the accumulators' bookkeeping; the PEs the values.
        phase = Signal()       # accumulator of the next beat
        used = Signal(2)       # accumulators the current tile has written
        ac1_last, ac1_phase = Signal(), Signal()
        ac1_used = Signal(2)
        mark = Signal(2)
        resume = Signal()      # the next beat's accumulator already holds part of the tile
        m.d.comb += [mark.eq(Mux(phase, 0b10, 0b01)), resume.eq((used & mark).any())]
        load_accumulator = enable("load_accumulator", go & ac1_valid)
        load_combine_align = enable("load_combine_align", go & cmb_valid)
        load_combine = enable("load_combine", go & c1_valid)
        load_result = enable("load_result", go & conv_valid)
        with m.If(go):
            m.d.sync += ac1_valid.eq(s_valid)
        with m.If(load_sum):
            m.d.sync += [
                ac1_last.eq(s_last), ac1_phase.eq(phase), ac1_used.eq(used | mark),
                phase.eq(Mux(s_last, 0, ~phase)), used.eq(Mux(s_last, 0, used | mark)),
            ]
        # Combination: the PEs read both accumulators the cycle after the tile's last write
        # (the next tile's first write lands a cycle later).
        cmb_used = Signal(2)
        with m.If(go):
            m.d.sync += cmb_valid.eq(ac1_valid & ac1_last)
        with m.If(load_accumulator):
            m.d.sync += cmb_used.eq(ac1_used)
        # Conversion stage: the tile's FP32 sums truncated to integers.
        with m.If(go):
            m.d.sync += [c1_valid.eq(cmb_valid), conv_valid.eq(c1_valid)]
        with m.If(load_result):
            m.d.sync += out_valid.eq(1)
        for port, value in {
            "load_accumulator_align": load_sum, "phase": phase, "resume": resume,
            "load_accumulator": load_accumulator, "accumulator_phase": ac1_phase,
            "load_combine_align": load_combine_align, "combine_used": cmb_used, "load_combine": load_combine,
            "load_result": load_result,
        }.items():
            drive(port, value)
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
