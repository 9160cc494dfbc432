"""The shell every linear-layer core shares: register interface, run control, load
streams, double-buffered token loader, tile sequencer, requantizer and output tiling.

A core is the shell plus a *datapath* (:meth:`LayerCore.elaborate_datapath`) that turns
the current token's activations into the accumulators of one output tile: the spike
core's neuron stage, compactor and sparse-accumulate PE array
(:class:`~.core.SpikeCore`), or a dense multiply-accumulate array (:mod:`.dense_core`).
Everything outside the datapath -- ports, register map, driver, compiler, tiling and the
requantizer -- is the same for all cores, so one testbench and one workload run on each.

Per token (``K = IN_CHUNKS`` chunks of ``lanes`` inputs, ``J = OUT_TILES`` tiles of
``pes`` outputs): the ``K`` chunks load into one bank of the activation memory while the
other bank computes; ``T`` is read from the timestep table at ``2 * layer + modality``;
the token's tiles are begun back to back (``begin``: the first after the lookup, each
next one in the cycle the datapath issues the previous one's final work item), and each
tile's final accumulators go through the requantizer, which reads the tile's bias and
parameters from the tile memories as it takes them, to ``o`` with the tile number and
``last``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Module, Mux, ResetInserter, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikemllm.config import AcceleratorConfig

from .block import Block
from .registers import COUNTERS, ERRORS, ID_VALUE, CoreKind, RegisterBus, build_values, register_map
from .requantizer import Requantizer
from .signatures import WeightWriteStream

__all__ = [
    "LayerCore",
    "Feed",
    "Datapath",
    "token_layout",
    "core_output_layout",
    "tile_bias_layout",
    "tile_params_layout",
]


def token_layout(config: AcceleratorConfig) -> data.StructLayout:
    """One chunk of ``lanes`` activations of a token, with its modality and layer tags."""
    return data.StructLayout({
        "values": data.ArrayLayout(signed(config.act_bits), config.lanes),
        "modality": 1,
        "layer": config.layer_width,
    })


def core_output_layout(config: AcceleratorConfig) -> data.StructLayout:
    """One tile of ``pes`` requantized outputs; ``last`` marks the token's final tile."""
    return data.StructLayout({
        "values": data.ArrayLayout(signed(config.out_bits), config.pes),
        "tile": config.tile_width,
        "last": 1,
    })


def tile_bias_layout(config: AcceleratorConfig) -> data.StructLayout:
    """Biases of one output tile."""
    return data.StructLayout({
        "tile": config.tile_width,
        "bias": data.ArrayLayout(signed(config.bias_bits), config.pes),
    })


def tile_params_layout(config: AcceleratorConfig) -> data.StructLayout:
    """Requantizer multipliers and shifts of one output tile."""
    return data.StructLayout({
        "tile": config.tile_width,
        "multiplier": data.ArrayLayout(config.multiplier_bits, config.pes),
        "shift": data.ArrayLayout(config.shift_bits, config.pes),
    })


def _error(name: str) -> int:
    return ERRORS[name][0]


@dataclass(frozen=True)
class Feed:
    """What the shell gives a datapath.

    ``act_read``: a synchronous read port of the activation memory (rows of
    :meth:`LayerCore.activation_layout`, address ``Cat(chunk, bank)``, or ``bank`` alone
    when the memory holds one chunk per bank); the bank stays unwritten until the token's
    final tile reports ``finished``, so it may be read at every step; ``bank``: the
    bank of the token being computed; ``timesteps``: its ``T``; ``tile_base``: weight
    row of input 0 of the current tile (``tile * IN``); ``in_chunks``/``in_features``:
    the layer's ``K`` and ``IN``; ``begin``: high for one cycle when feeding a tile may
    start (``timesteps``, ``tile_base`` and ``bank`` hold the tile's values from the next
    cycle; within a token ``begin`` comes in the cycle ``finished`` reports the previous
    tile's final item, so the datapath must accept it while it drains); ``flush``: high for one cycle in the cycle after a run
    starts or aborts: every register of the datapath that carries work in flight (the
    feeder's valid flags, its blocks, wrapped in ``ResetInserter(flush)``) returns to its
    reset state in that clock edge, so the next run starts from the state of a fresh core
    (no ``begin`` comes before it: a run's first token needs a cycle to load and one to
    look up ``T``).
    """

    act_read: object
    bank: Value
    timesteps: Value
    tile_base: Value
    in_chunks: Value
    in_features: Value
    begin: Value
    flush: Value
    act_reads: tuple = ()
    """with a bundle (``config.bundle = B``): a read port per token slot (``act_reads[0]``
    is ``act_read``), each of its slot's activation memory at the same address"""
    slot_timesteps: tuple = ()
    """with a bundle: each slot's own ``T`` (0 for a slot without a token), held like
    ``timesteps``, which is then their largest"""
    slots: Value | None = None
    """with a bundle: the number of its tokens (1 to ``B``), held like ``timesteps``"""

    def __post_init__(self):
        # without a bundle: the one read port and the one T
        if not self.act_reads:
            object.__setattr__(self, "act_reads", (self.act_read,))
        if not self.slot_timesteps:
            object.__setattr__(self, "slot_timesteps", (self.timesteps,))


@dataclass(frozen=True)
class Datapath:
    """What a datapath gives the shell.

    ``array``: a component with ``weights`` (weight-row writes) and ``o`` (accumulator
    vectors without bias, ``last`` on the tile's final one) streams, the latter connected
    to the requantizer, which adds the bias; ``finished``: high in the cycle the tile's last work
    item is issued; ``take``/``work``: the array accepted a beat carrying ``work`` units
    (spike events or multiply-accumulates) this cycle, for the ``EVENTS`` and
    ``ACTIVE_CYCLES`` counters, with ``reads`` weight-row reads (``WEIGHT_READS``).
    """

    array: object
    finished: Value
    take: Value
    work: Value
    reads: Value | None = None
    """weight-row reads in the beat taken (``WEIGHT_READS``); ``work`` when not given"""


class LayerCore(Block, abc.ABC):
    """Base of the linear-layer cores: everything but the datapath.

    Ports: ``bus`` (register bus, the core responds), ``i`` (token chunks in), ``o``
    (output tiles out), ``weights`` (weight-row writes: ``addr = tile * IN + input``),
    ``bias`` and ``params`` (per-tile bias and requantizer parameter writes).

    Subclasses set :attr:`KIND` (read back in ``HW_STEPS.DATAPATH``) and implement
    :meth:`elaborate_datapath`.

    Raises ``TypeError`` if ``config`` is not an :class:`AcceleratorConfig`.
    """

    KIND = CoreKind.SPIKE
    """The datapath this core is built with."""

    def __init__(self, *, config: AcceleratorConfig):
        self._regmap = register_map(config)
        super().__init__({
            "bus": In(RegisterBus(self._regmap.addr_width)),
            "i": In(stream.Signature(token_layout(config))),
            "o": Out(stream.Signature(core_output_layout(config))),
            "weights": In(WeightWriteStream(config)),
            "bias": In(stream.Signature(tile_bias_layout(config))),
            "params": In(stream.Signature(tile_params_layout(config))),
        }, config=config)

    @property
    def register_map(self):
        """The :class:`~.registers.RegisterMap` the bus decodes."""
        return self._regmap

    def activation_layout(self) -> data.ArrayLayout:
        """Layout of a row of the activation memory: one chunk of ``lanes`` activations as
        the datapath reads them (two's complement ``act_bits``; a core may store them in
        another form, see :meth:`encode_activations`)."""
        return data.ArrayLayout(signed(self.config.act_bits), self.config.lanes)

    def encode_activations(self, m: Module, values: Value) -> Value:
        """The row (of :meth:`activation_layout`) the token loader writes for a chunk's
        ``values``: combinational, on the path from ``i`` to the memory. The values as they are."""
        return values

    @abc.abstractmethod
    def elaborate_datapath(self, m: Module, feed: Feed) -> Datapath:
        """Add the datapath to ``m``; return what the shell needs (see :class:`Datapath`)."""

    def elaborate(self, platform):
        m = Module()
        s = _Shell()
        s.flush = Signal()  # a run started or aborted a cycle ago: every stage of the datapath returns to its reset state
        s.rq = Requantizer(config=self.config, held_params=True)
        m.submodules.requantizer = ResetInserter(s.flush)(s.rq)
        self._register_file(m, s)
        self._run_control(m, s)
        self._tile_memories(m, s)
        self._token_loader(m, s)
        self._attach_datapath(m, s)
        self._tile_sequencer(m, s)
        self._output(m, s)
        self._counters(m, s)
        return m

    def _register_file(self, m: Module, s: "_Shell") -> None:
        """Layer shape, tokens, timestep table, status and counters, read and written over ``bus``."""
        c, regs = self.config, self._regmap
        kmax = c.in_chunks_max
        lane_shift = c.lane_index_width  # a chunk holds 2^lane_shift inputs
        s.in_chunks = in_chunks = Signal(range(kmax + 1))
        s.out_tiles = out_tiles = Signal(range(c.max_out_tiles + 1))
        # too_large = (in_chunks << lane_shift) * out_tiles > max_fan_in, i.e. in_chunks >
        # chunk_room = (max_fan_in >> lane_shift) // out_tiles, set by the write of either
        # register (a constant per OUT_FEATURES value): no multiplier, and a START in the
        # cycle after the write sees the new flag.
        chunk_limit = c.max_fan_in >> lane_shift
        s.chunk_room = chunk_room = Signal(range(chunk_limit + 1), init=chunk_limit)
        s.too_large = too_large = Signal()
        s.tokens = tokens = Signal(32)
        # TOKENS - 1, set with TOKENS: the run's last-token checks compare counters with a
        # register instead of a 32-bit subtraction (0 - 1 wraps; a run of 0 tokens is refused)
        s.last_token = last_token = Signal(32, init=(1 << 32) - 1)
        s.ttable = ttable = [Signal(c.timesteps_width, name=f"ttable_{n}") for n in range(regs["TTABLE"].count)]
        s.busy = busy = Signal()
        s.done = done = Signal()
        s.error = Signal()
        s.aborted = Signal()
        s.error_code = error_code = Signal(4)
        s.counters = counters = {name: Signal(32, name=name.lower()) for name, _doc in COUNTERS}
        s.fault = Signal(4)  # an error raised by the datapath this cycle (0 = none)
        raise_error = s.raise_error

        bus = self.bus
        s.start = start = Signal()
        s.clear = clear = Signal()
        s.abort_request = abort_request = Signal()
        read_value = Signal(32)
        with m.Switch(bus.addr):
            constants = {"ID": ID_VALUE, **build_values(c, self.KIND)}
            for name, value in constants.items():
                with m.Case(regs[name].word):
                    m.d.comb += read_value.eq(value)
            with m.Case(regs["STATUS"].word):
                m.d.comb += read_value.eq(regs["STATUS"].assemble(
                    {"BUSY": busy, "DONE": done, "ERROR": s.error, "ABORTED": s.aborted, "ERROR_CODE": error_code}))
            for name, sig in (("IN_FEATURES", in_chunks << lane_shift), ("OUT_FEATURES", out_tiles * c.pes), ("TOKENS", tokens)):
                with m.Case(regs[name].word):
                    m.d.comb += read_value.eq(sig)
            for name, sig in counters.items():
                with m.Case(regs[name].word):
                    m.d.comb += read_value.eq(sig)
            for n, entry in enumerate(ttable):
                with m.Case(regs["TTABLE"].word + n):
                    m.d.comb += read_value.eq(entry)
            with m.Default():  # unmapped words read as zero
                m.d.comb += read_value.eq(0)
        with m.If(bus.r_stb):
            m.d.sync += bus.r_data.eq(read_value)

        w = bus.w_data
        with m.If(bus.w_stb):
            with m.Switch(bus.addr):
                with m.Case(regs["CTRL"].word):
                    ctrl = regs["CTRL"]
                    abort_bit = ctrl.field(w, "ABORT")
                    m.d.comb += [
                        start.eq(ctrl.field(w, "START") & ~abort_bit),  # a write with ABORT never starts a run
                        clear.eq(ctrl.field(w, "CLEAR")),
                        abort_request.eq(abort_bit),
                    ]
                with m.Case(regs["IN_FEATURES"].word):
                    with m.If(busy):
                        m.d.sync += raise_error(_error("START_WHILE_BUSY"))
                    with m.Elif((w == 0) | (w[:lane_shift] != 0)):
                        m.d.sync += raise_error(_error("BAD_SHAPE"))
                    with m.Elif(w > c.max_fan_in):
                        m.d.sync += raise_error(_error("TOO_LARGE"))
                    with m.Else():
                        chunks = w[lane_shift:lane_shift + len(in_chunks)]  # w <= max_fan_in here
                        m.d.sync += [in_chunks.eq(chunks), too_large.eq(chunks > chunk_room)]
                with m.Case(regs["OUT_FEATURES"].word):
                    with m.If(busy):
                        m.d.sync += raise_error(_error("START_WHILE_BUSY"))
                    with m.Else():
                        # the multiples of pes that fit, matched one by one: no divider
                        with m.Switch(w):
                            for tiles in range(1, c.max_out_tiles + 1):
                                room = chunk_limit // tiles
                                with m.Case(tiles * c.pes):
                                    m.d.sync += [
                                        out_tiles.eq(tiles),
                                        chunk_room.eq(room),
                                        # one tile leaves room for every chunk in_chunks holds
                                        too_large.eq(in_chunks > room if room < kmax else 0),
                                    ]
                            with m.Default():
                                too_many = w > c.max_out_tiles * c.pes
                                m.d.sync += raise_error(Mux(too_many, _error("TOO_LARGE"), _error("BAD_SHAPE")))
                with m.Case(regs["TOKENS"].word):
                    with m.If(busy):
                        m.d.sync += raise_error(_error("START_WHILE_BUSY"))
                    with m.Else():
                        m.d.sync += [tokens.eq(w), last_token.eq(w - 1)]
                for n, entry in enumerate(ttable):
                    with m.Case(regs["TTABLE"].word + n):
                        with m.If(busy):
                            m.d.sync += raise_error(_error("START_WHILE_BUSY"))
                        with m.Elif((w == 0) | (w > c.t_max)):
                            m.d.sync += raise_error(_error("BAD_T"))
                        with m.Else():
                            m.d.sync += entry.eq(w)
                with m.Default():  # writes to read-only or unmapped words are ignored
                    pass

    def _run_control(self, m: Module, s: "_Shell") -> None:
        """Start (refused with an error code when the layer cannot run, and while ``ERROR``
        is set: after a refused operation nothing computes until ``CLEAR``), clear, and abort (by
        ``CTRL.ABORT`` during a run, or on a fault): ``busy`` drops in the same clock edge
        and :meth:`_counters` flushes the datapath in the next one."""
        s.abort = Signal()
        s.run_start = Signal()
        with m.If(s.start):
            with m.If(s.busy):
                m.d.sync += s.raise_error(_error("START_WHILE_BUSY"))
            with m.Elif(s.error):  # a refused operation is pending: nothing starts until CLEAR
                pass
            with m.Elif(s.tokens == 0):
                m.d.sync += s.raise_error(_error("NO_TOKENS"))
            with m.Elif((s.in_chunks == 0) | (s.out_tiles == 0)):
                m.d.sync += s.raise_error(_error("BAD_SHAPE"))
            with m.Elif(s.too_large):  # (in_chunks << lane_shift) * out_tiles > max_fan_in
                m.d.sync += s.raise_error(_error("TOO_LARGE"))
            with m.Else():
                m.d.comb += s.run_start.eq(1)
                m.d.sync += [s.busy.eq(1), s.done.eq(0), s.aborted.eq(0)]
                m.d.sync += [sig.eq(0) for sig in s.counters.values()]
        with m.If(s.clear & ~s.run_start):
            m.d.sync += [s.done.eq(0), s.error.eq(0), s.error_code.eq(0), s.aborted.eq(0)]
            with m.If(~s.busy):
                m.d.sync += [sig.eq(0) for sig in s.counters.values()]
        with m.If(s.abort_request & s.busy):  # while idle, ABORT changes nothing
            m.d.comb += s.abort.eq(1)
            m.d.sync += s.aborted.eq(1)
        with m.If(s.fault != 0):
            m.d.sync += s.raise_error(s.fault)
            m.d.comb += s.abort.eq(1)

    def _tile_memories(self, m: Module, s: "_Shell") -> None:
        """Per-tile bias and requantizer-parameter memories, written from ``bias``/``params`` while idle."""
        c = self.config
        bias_layout = data.ArrayLayout(signed(c.bias_bits), c.pes)
        params_layout = data.StructLayout({
            "multiplier": data.ArrayLayout(c.multiplier_bits, c.pes),
            "shift": data.ArrayLayout(c.shift_bits, c.pes),
        })
        m.submodules.bias_memory = s.bias_mem = Memory(shape=bias_layout, depth=c.max_out_tiles, init=[])
        m.submodules.params_memory = s.params_mem = Memory(shape=params_layout, depth=c.max_out_tiles, init=[])
        bias_w, params_w = s.bias_mem.write_port(), s.params_mem.write_port()
        busy = s.busy
        m.d.comb += [
            self.bias.ready.eq(~busy),
            bias_w.addr.eq(self.bias.p.tile),
            bias_w.data.eq(self.bias.p.bias),
            bias_w.en.eq(self.bias.valid & ~busy),
            self.params.ready.eq(~busy),
            params_w.addr.eq(self.params.p.tile),
            params_w.data.multiplier.eq(self.params.p.multiplier),
            params_w.data.shift.eq(self.params.p.shift),
            params_w.en.eq(self.params.valid & ~busy),
        ]

    def _token_loader(self, m: Module, s: "_Shell") -> None:
        """Double-buffered activation memory: the next token's chunks load while this one
        computes. With a bundle of ``B`` tokens, a bank holds ``B`` tokens, one per
        activation memory (token slot), and is full when ``B`` tokens (or the run's last
        ones) are in."""
        c = self.config
        B = c.bundle
        kmax = c.in_chunks_max
        chunk_width = max(1, (kmax - 1).bit_length())
        # Rows are addressed Cat(chunk, bank): each bank spans 2^chunk_width rows, which is
        # more than kmax when kmax is not a power of two.
        depth = 2 << chunk_width if kmax > 1 else 2
        if B == 1:
            m.submodules.activation_memory = s.act_mem = Memory(shape=self.activation_layout(), depth=depth, init=[])
            s.act_mems = [s.act_mem]
        else:
            s.act_mems = [Memory(shape=self.activation_layout(), depth=depth, init=[]) for _ in range(B)]
            for b, mem in enumerate(s.act_mems):
                m.submodules[f"activation_memory_{b}"] = mem
            s.act_mem = s.act_mems[0]
        act_ws = [mem.write_port() for mem in s.act_mems]
        s.bank_full = bank_full = Signal(2)
        prefix = [""] if B == 1 else [f"s{b}_" for b in range(B)]
        # per token slot: the tags of its token in each bank
        s.tag_modality = tag_modality = [Signal(2, name=f"{x}tag_modality") for x in prefix]
        s.tag_layer = tag_layer = [[Signal(c.layer_width, name=f"{x}tag_layer_{k}") for k in range(2)] for x in prefix]
        s.load_bank = load_bank = Signal()
        s.load_chunk = load_chunk = Signal(chunk_width)
        s.tokens_loaded = tokens_loaded = Signal(32)
        s.loading = loading = Signal()
        m.d.comb += loading.eq(s.busy & (tokens_loaded != s.tokens) & ~bank_full.bit_select(load_bank, 1))
        row = self.encode_activations(m, self.i.p.values)
        m.d.comb += self.i.ready.eq(loading)
        if B > 1:
            s.load_slot = load_slot = Signal(range(B))
            # the last token slot loaded into each bank (the bundle's tokens are slots 0 .. it)
            s.bank_last_slot = [Signal(range(B), name=f"bank_last_slot_{k}") for k in range(2)]
        for b, act_w in enumerate(act_ws):
            m.d.comb += [
                act_w.addr.eq(Cat(load_chunk, load_bank) if kmax > 1 else load_bank),
                act_w.data.eq(row),
                act_w.en.eq(self.i.valid & loading & (load_slot == b) if B > 1 else self.i.valid & loading),
            ]
        with m.If(self.i.valid & loading):
            with m.If(load_chunk == 0):
                for b in range(B):
                    tags = [
                        tag_modality[b].bit_select(load_bank, 1).eq(self.i.p.modality),
                        Array(tag_layer[b])[load_bank].eq(self.i.p.layer),
                    ]
                    if B == 1:
                        m.d.sync += tags
                    else:
                        with m.If(load_slot == b):
                            m.d.sync += tags
            with m.If(load_chunk == s.in_chunks - 1):
                full = [
                    load_bank.eq(~load_bank),
                    bank_full.bit_select(load_bank, 1).eq(1),
                ]
                m.d.sync += [load_chunk.eq(0), tokens_loaded.eq(tokens_loaded + 1)]
                if B == 1:
                    m.d.sync += full
                else:
                    with m.If((load_slot == B - 1) | (tokens_loaded == s.last_token)):
                        m.d.sync += [*full, load_slot.eq(0), Array(s.bank_last_slot)[load_bank].eq(load_slot)]
                    with m.Else():
                        m.d.sync += load_slot.eq(load_slot + 1)
            with m.Else():
                m.d.sync += load_chunk.eq(load_chunk + 1)

    def _attach_datapath(self, m: Module, s: "_Shell") -> None:
        """Per-token state the datapath reads; the datapath itself; its array's loads and output."""
        c = self.config
        lane_shift = c.lane_index_width  # a chunk holds 2^lane_shift inputs
        s.cur_bank = Signal()
        s.T = Signal(c.timesteps_width)
        s.tile = Signal(c.tile_width)
        s.tile_base = Signal(c.index_width + 1)
        s.in_features = Signal(c.index_width + 1)
        m.d.comb += s.in_features.eq(s.in_chunks << lane_shift)
        s.begin = Signal()   # start feeding a tile
        s.rq_next = Signal(c.tile_width)  # the tile of the next final vector the requantizer takes
        act_reads = tuple(mem.read_port() for mem in s.act_mems)
        s.T_slot = [s.T] if c.bundle == 1 else [Signal(c.timesteps_width, name=f"T_slot_{b}") for b in range(c.bundle)]
        s.slots = None if c.bundle == 1 else Signal(range(c.bundle + 1))
        s.dp = self.elaborate_datapath(m, Feed(
            act_read=act_reads[0], bank=s.cur_bank, timesteps=s.T, tile_base=s.tile_base, in_chunks=s.in_chunks,
            in_features=s.in_features, begin=s.begin, flush=s.flush, act_reads=act_reads, slot_timesteps=tuple(s.T_slot),
            slots=s.slots,
        ))
        array = s.dp.array
        if c.bundle == 1:
            wiring.connect(m, array.o, s.rq.i)
        else:
            self._serializer(m, s)
        m.d.comb += [
            array.weights.p.eq(self.weights.p),
            array.weights.valid.eq(self.weights.valid & ~s.busy),
            self.weights.ready.eq(array.weights.ready & ~s.busy),
        ]

    def _serializer(self, m: Module, s: "_Shell") -> None:
        """With a bundle: the PE array's final vector holds the tile's accumulators of each
        of the bundle's tokens; the requantizer takes them one token at a time (token slot
        ``rq_slot``, the run's token ``rq_token``), and the vector leaves the PE array with
        the bundle's last token. Vectors that are not final pass as they are (the
        requantizer drops them)."""
        c, B = self.config, self.config.bundle
        array, rq = s.dp.array, s.rq
        s.rq_slot = rq_slot = Signal(range(B))
        rq_token = Signal(32)
        rq_first = Signal(32)  # the first token of the bundle being requantized
        s.rq_slot_last = slot_last = Signal()
        m.d.comb += [
            slot_last.eq((rq_slot == B - 1) | (rq_token == s.last_token)),
            rq.i.valid.eq(array.o.valid),
            rq.i.p.acc.eq(array.o.p.acc[rq_slot]),
            rq.i.p.step.eq(array.o.p.step),
            rq.i.p.last.eq(array.o.p.last),
            array.o.ready.eq(rq.i.ready & (~array.o.p.last | slot_last)),
        ]
        with m.If(rq.i.valid & rq.i.ready & rq.i.p.last):
            with m.If(slot_last):
                m.d.sync += rq_slot.eq(0)
                with m.If(s.rq_next == s.out_tiles - 1):  # the bundle's last tile: the next bundle follows
                    m.d.sync += [rq_token.eq(rq_token + 1), rq_first.eq(rq_token + 1)]
                with m.Else():
                    m.d.sync += rq_token.eq(rq_first)
            with m.Else():
                m.d.sync += [rq_slot.eq(rq_slot + 1), rq_token.eq(rq_token + 1)]
        with m.If(s.flush):
            m.d.sync += [rq_slot.eq(0), rq_token.eq(0), rq_first.eq(0)]

    def _tile_sequencer(self, m: Module, s: "_Shell") -> None:
        """Per token: look up ``T``, begin the first tile, then begin every next tile in the
        cycle the datapath issues the previous one's final work item (tiles back to back);
        the requantizer reads each tile's parameters from the tile memories while the
        tile's final accumulators go through it."""
        c = self.config
        rq, dp = s.rq, s.dp
        # The requantizer's parameters: those of the tile whose final vector it holds
        # (`rq_tile`), until it takes the next one (`rq_next`).
        rq_next = s.rq_next
        rq_tile = Signal(c.tile_width)
        bias_r = s.bias_mem.read_port(domain="comb")
        params_r = s.params_mem.read_port(domain="comb")
        m.d.comb += [bias_r.addr.eq(rq_tile), params_r.addr.eq(rq_tile)]
        m.d.comb += [
            rq.params.valid.eq(1),
            rq.params.p.bias.eq(bias_r.data),
            rq.params.p.multiplier.eq(params_r.data.multiplier),
            rq.params.p.shift.eq(params_r.data.shift),
        ]
        with m.If(rq.i.valid & rq.i.ready & rq.i.p.last):
            advance = rq_next.eq(Mux(rq_next == s.out_tiles - 1, 0, rq_next + 1))
            m.d.sync += rq_tile.eq(rq_next)
            if c.bundle == 1:
                m.d.sync += advance
            else:  # the tile's final vectors of all the bundle's tokens share the parameters
                with m.If(s.rq_slot_last):
                    m.d.sync += advance
        with m.If(s.flush):
            m.d.sync += rq_next.eq(0)

        # Per token slot: Cat(modality, layer) is spikemllm.modality.timestep_index (two
        # modalities, one tag bit). Indices past the table (a BAD_TOKEN fault) read as 0;
        # the padding makes the lookup total.
        cur_bank, B = s.cur_bank, c.bundle
        entries, layers, present = [], [], []
        for b in range(B):
            entry = Signal(c.timesteps_width, name="entry" if B == 1 else f"entry_{b}")
            tag_index = Signal(1 + c.layer_width, name="tag_index" if B == 1 else f"tag_index_{b}")
            layer = Mux(cur_bank, s.tag_layer[b][1], s.tag_layer[b][0])
            m.d.comb += tag_index.eq(Cat(s.tag_modality[b].bit_select(cur_bank, 1), layer))
            padding = [Const(0, c.timesteps_width)] * ((1 << len(tag_index)) - len(s.ttable))
            m.d.comb += entry.eq(Array(s.ttable + padding)[tag_index])
            entries.append(entry)
            layers.append(layer)
            # a slot holds a token of the bundle (every slot up to the bank's last one)
            present.append(Const(1) if B == 1 or b == 0 else b <= Array(s.bank_last_slot)[cur_bank])
        bad_token = Cat(p & (layer >= c.layers) for p, layer in zip(present, layers)).any()
        bad_t = Cat(p & (entry == 0) for p, entry in zip(present, entries)).any()
        slot_T = [Mux(p, entry, 0) for p, entry in zip(present, entries)] if B > 1 else entries
        bundle_T = slot_T[0]
        for t in slot_T[1:]:  # the bundle's T: its tokens' largest
            bundle_T = Mux(t > bundle_T, t, bundle_T)

        with m.FSM(name="scheduler"):
            with m.State("WAIT_TOKEN"):
                with m.If(s.busy & s.bank_full.bit_select(cur_bank, 1)):
                    with m.If(bad_token):
                        m.d.comb += s.fault.eq(_error("BAD_TOKEN"))
                    with m.Elif(bad_t):
                        m.d.comb += s.fault.eq(_error("BAD_T"))
                    with m.Else():
                        m.d.sync += [s.T.eq(bundle_T), s.tile.eq(0), s.tile_base.eq(0)]
                        if B > 1:
                            m.d.sync += [t.eq(v) for t, v in zip(s.T_slot, slot_T)]
                            m.d.sync += s.slots.eq(Array(s.bank_last_slot)[cur_bank] + 1)
                        m.next = "BEGIN"
            with m.State("BEGIN"):
                m.d.comb += s.begin.eq(1)
                m.next = "FEED"
                with m.If(s.abort):
                    m.next = "WAIT_TOKEN"
            with m.State("FEED"):
                with m.If(dp.finished):
                    with m.If(s.tile == s.out_tiles - 1):
                        # the token's activations are all read: its bank may load the token after next
                        m.d.sync += [cur_bank.eq(~cur_bank), s.bank_full.bit_select(cur_bank, 1).eq(0)]
                        m.next = "WAIT_TOKEN"
                    with m.Else():
                        m.d.comb += s.begin.eq(1)
                        m.d.sync += [s.tile.eq(s.tile + 1), s.tile_base.eq(s.tile_base + s.in_features)]
                with m.If(s.abort):
                    m.next = "WAIT_TOKEN"

    def _output(self, m: Module, s: "_Shell") -> None:
        """The requantizer's vectors leave on ``o`` with their tile number and ``last``.
        With a bundle they leave tile by tile, each tile for every token of the bundle
        (:func:`spikemllm.golden.bundle.output_order`); ``last`` marks each token's final tile."""
        c = self.config
        rq = s.rq
        s.out_tile = out_tile = Signal(c.tile_width)
        out_last = Signal()
        m.d.comb += [
            out_last.eq(out_tile == s.out_tiles - 1),
            # withheld while idle: after an abort the requantizer is reset one edge later
            self.o.valid.eq(rq.o.valid & s.busy),
            self.o.p.values.eq(rq.o.p.values),
            self.o.p.tile.eq(out_tile),
            self.o.p.last.eq(out_last),
            rq.o.ready.eq(self.o.ready & s.busy),
        ]
        s.token_done = Signal()
        m.d.comb += s.token_done.eq(self.o.valid & self.o.ready & out_last)
        s.out_resets = [out_tile.eq(0)]
        if c.bundle == 1:
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += out_tile.eq(Mux(out_last, 0, out_tile + 1))
            return
        B = c.bundle
        out_slot = Signal(range(B))
        out_token = Signal(32)
        out_first = Signal(32)  # the first token of the bundle leaving
        slot_last = (out_slot == B - 1) | (out_token == s.last_token)
        s.out_resets += [out_slot.eq(0), out_token.eq(0), out_first.eq(0)]
        with m.If(self.o.valid & self.o.ready):
            with m.If(slot_last):
                m.d.sync += [out_slot.eq(0), out_tile.eq(Mux(out_last, 0, out_tile + 1))]
                with m.If(out_last):
                    m.d.sync += [out_token.eq(out_token + 1), out_first.eq(out_token + 1)]
                with m.Else():
                    m.d.sync += out_token.eq(out_first)
            with m.Else():
                m.d.sync += [out_slot.eq(out_slot + 1), out_token.eq(out_token + 1)]

    def _counters(self, m: Module, s: "_Shell") -> None:
        """Performance counters, the end of a run, and the reset of the loader on start or abort."""
        counters, dp = s.counters, s.dp
        with m.If(s.busy):
            m.d.sync += counters["CYCLES"].eq(counters["CYCLES"] + 1)
            with m.If(dp.take):
                reads = dp.work if dp.reads is None else dp.reads
                m.d.sync += [counters["EVENTS"].eq(counters["EVENTS"] + dp.work),
                             counters["WEIGHT_READS"].eq(counters["WEIGHT_READS"] + reads)]
                with m.If(reads != 0):  # a weight row read (an event slot filled)
                    m.d.sync += counters["ACTIVE_CYCLES"].eq(counters["ACTIVE_CYCLES"] + 1)
            with m.If(self.o.valid & ~self.o.ready):
                m.d.sync += counters["STALL_CYCLES"].eq(counters["STALL_CYCLES"] + 1)
            with m.If(~self.i.valid & s.loading & ~s.bank_full.bit_select(s.cur_bank, 1)):
                m.d.sync += counters["IDLE_IN_CYCLES"].eq(counters["IDLE_IN_CYCLES"] + 1)
            with m.If(s.token_done):
                m.d.sync += counters["TOKENS_DONE"].eq(counters["TOKENS_DONE"] + 1)
                with m.If(counters["TOKENS_DONE"] == s.last_token):
                    m.d.sync += [s.busy.eq(0), s.done.eq(1)]
        # The datapath's reset is registered: it follows a START or an abort by one clock
        # edge, so neither the bus decode nor the fault checks drive the reset of every
        # datapath register in the cycle they are decided. Meanwhile ``o`` is withheld (see
        # :meth:`_output`) and the sequencer waits for a token, so nothing of the old run leaves.
        m.d.sync += s.flush.eq(s.run_start | s.abort)
        with m.If(s.run_start | s.abort):
            m.d.sync += [s.bank_full.eq(0), s.load_bank.eq(0), s.load_chunk.eq(0), s.tokens_loaded.eq(0),
                         s.cur_bank.eq(0), *s.out_resets]
            if self.config.bundle > 1:
                m.d.sync += s.load_slot.eq(0)
        with m.If(s.abort):
            m.d.sync += s.busy.eq(0)


class _Shell:
    """The signals the parts of :meth:`LayerCore.elaborate` share, set as each part is built."""

    def raise_error(self, code):
        """Statements recording a refused operation: the first code since the last clear wins."""
        return [self.error.eq(1), self.error_code.eq(Mux(self.error, self.error_code, code))]
