"""SpikeCore: the top level. Modality-aware timestep scheduler, activation and membrane
memories, the spike pipeline (neuron stage -> compactor -> PE array -> requantizer),
tiling, and the register interface.

Data flow per token (``K = IN_CHUNKS`` spike vectors of ``lanes`` inputs, ``J =
OUT_TILES`` tiles of ``pes`` outputs, ``T`` from the timestep table):

1. The token's ``K`` activation chunks arrive on ``i`` (each beat tagged with the token's
   modality and layer; the first beat's tags count) and are written to one bank of a
   double-buffered activation memory, so the next token loads while this one computes.
2. ``T`` is read from the timestep table at ``2 * layer + modality``.
3. For each output tile ``j``: the tile's bias and requantizer parameters are loaded into
   the PE array and the requantizer from the tile memories; then the neuron stage emits
   ``T * K`` spike vectors, step-major (all chunks of step 0, then step 1, ...), because
   the PE array doubles its accumulators at step boundaries. The neuron stage is a TC-LIF
   neuron array whose membranes live in a membrane memory of ``K`` rows: step 0 reads the
   activations, later steps read the membranes, and every step writes the reset
   membranes back (threshold ``2^(T-1-t)``, subtractive reset; ``1`` for count coding).
   Events address weight row ``j * IN + index``: the weight memory holds all tiles.
4. The requantized ``pes`` outputs of the tile leave on ``o`` with the tile number and
   ``last`` on the token's final tile.

The register interface (:mod:`.registers`) configures the layer shape, the number of
tokens and the timestep table, starts runs and reports status, errors and performance
counters. Weights, biases and requantizer parameters are loaded through the ``weights``,
``bias`` and ``params`` streams while the core is not busy.

Timing (ideal streams) is predicted exactly by :func:`spikemllm.golden.perf_model.core_cycles`.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..config import AcceleratorConfig
from .compactor import SpikeEventCompactor
from .pe_array import SparseAccumulatePEArray
from .registers import ERRORS, ID_VALUE, RegisterBus, register_map
from .requantizer import Requantizer
from .signatures import SPIKE_SHAPE, WeightWriteStream, check_block_config, spike_vector_layout

__all__ = [
    "SpikeCore",
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


class SpikeCore(wiring.Component):
    """The spike-driven linear-layer accelerator with its scheduler and registers.

    Ports: ``bus`` (register bus, the core responds), ``i`` (token chunks in), ``o``
    (output tiles out), ``weights`` (weight-row writes: ``addr = tile * IN + input``),
    ``bias`` and ``params`` (per-tile bias and requantizer parameter writes).

    Raises ``TypeError`` if ``config`` is not an :class:`AcceleratorConfig`.
    """

    def __init__(self, *, config: AcceleratorConfig):
        self._config = check_block_config(self, config)
        self._regmap = register_map(config)
        super().__init__({
            "bus": In(RegisterBus(self._regmap.addr_width)),
            "i": In(stream.Signature(token_layout(config))),
            "o": Out(stream.Signature(core_output_layout(config))),
            "weights": In(WeightWriteStream(config)),
            "bias": In(stream.Signature(tile_bias_layout(config))),
            "params": In(stream.Signature(tile_params_layout(config))),
        })

    @property
    def config(self) -> AcceleratorConfig:
        return self._config

    @property
    def register_map(self):
        """The :class:`~.registers.RegisterMap` the bus decodes."""
        return self._regmap

    @property
    def latency(self):
        """None: the core's timing depends on the data; see
        :func:`spikemllm.golden.perf_model.core_cycles`."""
        return None

    def elaborate(self, platform):
        m = Module()
        c = self._config
        regs = self._regmap
        kmax = c.in_chunks_max
        chunk_width = max(1, (kmax - 1).bit_length())
        lane_shift = (c.lanes - 1).bit_length()
        tc_lif = c.coding == "tc_lif"

        m.submodules.compactor = comp = SpikeEventCompactor(config=c)
        m.submodules.pe_array = pe = SparseAccumulatePEArray(config=c)
        m.submodules.requantizer = rq = Requantizer(config=c)
        wiring.connect(m, comp.o, pe.i)
        wiring.connect(m, pe.o, rq.i)

        # -- registers ------------------------------------------------------------------
        in_chunks = Signal(range(kmax + 1))
        out_tiles = Signal(range(c.max_out_tiles + 1))
        tokens = Signal(32)
        ttable = [Signal(c.timesteps_width, name=f"ttable_{n}") for n in range(2 * c.layers)]
        busy = Signal()
        done = Signal()
        error = Signal()
        error_code = Signal(4)
        counters = {name: Signal(32, name=name.lower()) for name in
                    ("CYCLES", "EVENTS", "ACTIVE_CYCLES", "STALL_CYCLES", "IDLE_IN_CYCLES", "TOKENS_DONE")}
        fault = Signal(4)  # an error raised by the datapath this cycle (0 = none)

        def raise_error(code):
            return [
                error.eq(1),
                error_code.eq(Mux(error, error_code, code)),
            ]

        # -- bus ------------------------------------------------------------------------
        bus = self.bus
        start = Signal()
        clear = Signal()
        read_value = Signal(32)
        with m.Switch(bus.addr):
            constants = {
                "ID": ID_VALUE,
                "HW_LANES_PES": c.lanes | (c.pes << 16),
                "HW_STEPS": c.t_max | (c.events_per_cycle << 8) | (c.layers << 16) | (int(not tc_lif) << 24),
                "HW_MEMORY": c.max_fan_in,
                "HW_TILES": c.max_out_tiles,
            }
            for name, value in constants.items():
                with m.Case(regs[name].word):
                    m.d.comb += read_value.eq(value)
            with m.Case(regs["STATUS"].word):
                m.d.comb += read_value.eq(Cat(busy, done, error, Const(0, 5), error_code))
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
                    m.d.comb += [start.eq(w[0]), clear.eq(w[1])]
                with m.Case(regs["IN_FEATURES"].word):
                    with m.If(busy):
                        m.d.sync += raise_error(_error("START_WHILE_BUSY"))
                    with m.Elif((w == 0) | (w[:lane_shift] != 0)):
                        m.d.sync += raise_error(_error("BAD_SHAPE"))
                    with m.Elif(w > c.max_fan_in):
                        m.d.sync += raise_error(_error("TOO_LARGE"))
                    with m.Else():
                        m.d.sync += in_chunks.eq(w >> lane_shift)
                with m.Case(regs["OUT_FEATURES"].word):
                    with m.If(busy):
                        m.d.sync += raise_error(_error("START_WHILE_BUSY"))
                    with m.Else():
                        # the multiples of pes that fit, matched one by one: no divider
                        with m.Switch(w):
                            for tiles in range(1, c.max_out_tiles + 1):
                                with m.Case(tiles * c.pes):
                                    m.d.sync += out_tiles.eq(tiles)
                            with m.Default():
                                too_large = w > c.max_out_tiles * c.pes
                                m.d.sync += raise_error(Mux(too_large, _error("TOO_LARGE"), _error("BAD_SHAPE")))
                with m.Case(regs["TOKENS"].word):
                    with m.If(busy):
                        m.d.sync += raise_error(_error("START_WHILE_BUSY"))
                    with m.Else():
                        m.d.sync += tokens.eq(w)
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

        # -- run control -------------------------------------------------------------------
        abort = Signal()
        run_start = Signal()
        with m.If(start):
            with m.If(busy):
                m.d.sync += raise_error(_error("START_WHILE_BUSY"))
            with m.Elif(tokens == 0):
                m.d.sync += raise_error(_error("NO_TOKENS"))
            with m.Elif((in_chunks == 0) | (out_tiles == 0)):
                m.d.sync += raise_error(_error("BAD_SHAPE"))
            with m.Elif((in_chunks << lane_shift) * out_tiles > c.max_fan_in):
                m.d.sync += raise_error(_error("TOO_LARGE"))
            with m.Else():
                m.d.comb += run_start.eq(1)
                m.d.sync += [busy.eq(1), done.eq(0)]
                m.d.sync += [sig.eq(0) for sig in counters.values()]
        with m.If(clear & ~run_start):
            m.d.sync += [done.eq(0), error.eq(0), error_code.eq(0)]
            with m.If(~busy):
                m.d.sync += [sig.eq(0) for sig in counters.values()]
        with m.If(fault != 0):
            m.d.sync += raise_error(fault)
            m.d.comb += abort.eq(1)

        # -- loads (only while idle) ----------------------------------------------------------
        m.d.comb += [
            pe.weights.p.eq(self.weights.p),
            pe.weights.valid.eq(self.weights.valid & ~busy),
            self.weights.ready.eq(pe.weights.ready & ~busy),
        ]
        bias_layout = data.ArrayLayout(signed(c.bias_bits), c.pes)
        params_layout = data.StructLayout({
            "multiplier": data.ArrayLayout(c.multiplier_bits, c.pes),
            "shift": data.ArrayLayout(c.shift_bits, c.pes),
        })
        m.submodules.bias_memory = bias_mem = Memory(shape=bias_layout, depth=c.max_out_tiles, init=[])
        m.submodules.params_memory = params_mem = Memory(shape=params_layout, depth=c.max_out_tiles, init=[])
        bias_w, params_w = bias_mem.write_port(), params_mem.write_port()
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

        # -- token loader: double-buffered activation memory ---------------------------------------
        act_layout = data.ArrayLayout(signed(c.act_bits), c.lanes)
        m.submodules.activation_memory = act_mem = Memory(shape=act_layout, depth=2 * kmax, init=[])
        act_w = act_mem.write_port()
        bank_full = Signal(2)
        tag_modality = Signal(2)
        tag_layer = [Signal(c.layer_width, name=f"tag_layer_{b}") for b in range(2)]
        load_bank = Signal()
        load_chunk = Signal(chunk_width)
        tokens_loaded = Signal(32)
        loading = Signal()
        m.d.comb += loading.eq(busy & (tokens_loaded != tokens) & ~bank_full.bit_select(load_bank, 1))
        m.d.comb += [
            self.i.ready.eq(loading),
            act_w.addr.eq(Cat(load_chunk, load_bank) if kmax > 1 else load_bank),
            act_w.data.eq(self.i.p.values),
            act_w.en.eq(self.i.valid & loading),
        ]
        with m.If(self.i.valid & loading):
            with m.If(load_chunk == 0):
                m.d.sync += [
                    tag_modality.bit_select(load_bank, 1).eq(self.i.p.modality),
                    Array(tag_layer)[load_bank].eq(self.i.p.layer),
                ]
            with m.If(load_chunk == in_chunks - 1):
                m.d.sync += [
                    load_chunk.eq(0),
                    load_bank.eq(~load_bank),
                    tokens_loaded.eq(tokens_loaded + 1),
                    bank_full.bit_select(load_bank, 1).eq(1),
                ]
            with m.Else():
                m.d.sync += load_chunk.eq(load_chunk + 1)

        # -- neuron stage: step-major TC-LIF over K chunks with a membrane memory ------------------
        m.submodules.membrane_memory = mem_mem = Memory(shape=act_layout, depth=kmax, init=[])
        mem_w = mem_mem.write_port()
        mem_r = mem_mem.read_port(transparent_for=(mem_w,))
        act_r = act_mem.read_port()

        cur_bank = Signal()
        T = Signal(c.timesteps_width)
        tile = Signal(c.tile_width)
        tile_base = Signal(c.index_width + 1)
        in_features = Signal(c.index_width + 1)
        m.d.comb += in_features.eq(in_chunks << lane_shift)
        # next (step, chunk) to issue
        step = Signal(c.step_width + 1)
        chunk = Signal(chunk_width)
        theta = Signal(c.t_max) if tc_lif else None
        issuing = Signal()

        # R stage: a read issued last cycle; its data is on the read ports.
        r_valid = Signal()
        r_first = Signal()
        r_chunk = Signal(chunk_width)
        r_step = Signal(c.step_width)
        r_theta = Signal(c.t_max) if tc_lif else None
        r_step_end = Signal()
        r_last = Signal()
        r_base = Signal(c.index_width)

        # S stage: the spike vector offered to the compactor.
        s_valid = Signal()
        s_payload = Signal(spike_vector_layout(c))
        m.d.comb += [comp.i.valid.eq(s_valid), comp.i.p.eq(s_payload)]
        advance = Signal()
        m.d.comb += advance.eq(~s_valid | comp.i.ready)

        membranes = Signal(act_layout)
        m.d.comb += membranes.eq(Mux(r_first, act_r.data, mem_r.data))
        threshold = r_theta if tc_lif else Const(1, 1)
        next_membranes = Signal(act_layout)
        fired = Signal(data.ArrayLayout(SPIKE_SHAPE, c.lanes))
        for n in range(c.lanes):
            v = membranes[n]
            fire = Signal(name=f"fire_{n}")
            m.d.comb += [
                fire.eq(abs(v) >= threshold),
                fired[n].eq(Mux(fire, Mux(v < 0, -1, 1), 0)),
                next_membranes[n].eq(Mux(fire, Mux(v < 0, v + threshold, v - threshold), v)),
            ]
        m.d.comb += [
            mem_w.addr.eq(r_chunk),
            mem_w.data.eq(next_membranes),
            mem_w.en.eq(advance & r_valid),
        ]
        with m.If(advance):
            m.d.sync += s_valid.eq(r_valid)
            with m.If(r_valid):
                m.d.sync += [
                    s_payload.spikes.eq(fired),
                    s_payload.base.eq(r_base),
                    s_payload.step.eq(r_step),
                    s_payload.step_end.eq(r_step_end),
                    s_payload.last.eq(r_last),
                ]

        final_chunk = chunk == in_chunks - 1
        final_step = step == T - 1
        issue = Signal()
        m.d.comb += [
            issue.eq(advance & issuing),
            mem_r.addr.eq(chunk),
            mem_r.en.eq(advance),
            act_r.addr.eq(Cat(chunk, cur_bank) if kmax > 1 else cur_bank),
            act_r.en.eq(advance),
        ]
        with m.If(advance):
            m.d.sync += r_valid.eq(issuing)
            with m.If(issuing):
                m.d.sync += [
                    r_first.eq(step == 0),
                    r_chunk.eq(chunk),
                    r_step.eq(step),
                    r_step_end.eq(final_chunk),
                    r_last.eq(final_chunk & final_step),
                    r_base.eq(tile_base + (chunk << lane_shift)),
                ]
                if tc_lif:
                    m.d.sync += r_theta.eq(theta)
                with m.If(final_chunk):
                    m.d.sync += [chunk.eq(0), step.eq(step + 1)]
                    if tc_lif:
                        m.d.sync += theta.eq(theta >> 1)
                with m.Else():
                    m.d.sync += chunk.eq(chunk + 1)

        # -- tile sequencer ----------------------------------------------------------------------------
        bias_r = bias_mem.read_port(domain="comb")
        params_r = params_mem.read_port(domain="comb")
        m.d.comb += [bias_r.addr.eq(tile), params_r.addr.eq(tile)]
        m.d.comb += [
            pe.bias.p.bias.eq(bias_r.data),
            rq.params.p.multiplier.eq(params_r.data.multiplier),
            rq.params.p.shift.eq(params_r.data.shift),
        ]
        bias_done = Signal()
        params_done = Signal()
        tile_final_taken = Signal()  # the requantizer has taken this tile's final accumulators
        with m.If(rq.i.valid & rq.i.ready & rq.i.p.last):
            m.d.sync += tile_final_taken.eq(1)

        entry = Signal(c.timesteps_width)
        tag_index = Signal(1 + c.layer_width)
        cur_layer = Mux(cur_bank, tag_layer[1], tag_layer[0])
        m.d.comb += tag_index.eq(Cat(tag_modality.bit_select(cur_bank, 1), cur_layer))
        # Indices past the table (a BAD_TOKEN fault) read as 0; the padding makes the lookup total.
        padding = [Const(0, c.timesteps_width)] * ((1 << len(tag_index)) - len(ttable))
        m.d.comb += entry.eq(Array(ttable + padding)[tag_index])

        with m.FSM(name="scheduler"):
            with m.State("WAIT_TOKEN"):
                with m.If(busy & bank_full.bit_select(cur_bank, 1)):
                    with m.If(cur_layer >= c.layers):
                        m.d.comb += fault.eq(_error("BAD_TOKEN"))
                    with m.Elif(entry == 0):
                        m.d.comb += fault.eq(_error("BAD_T"))
                    with m.Else():
                        m.d.sync += [T.eq(entry), tile.eq(0), tile_base.eq(0), bias_done.eq(0), params_done.eq(0)]
                        m.next = "PARAMS"
            with m.State("PARAMS"):
                m.d.comb += [pe.bias.valid.eq(~bias_done), rq.params.valid.eq(~params_done)]
                bias_ok = bias_done | pe.bias.ready
                params_ok = params_done | rq.params.ready
                m.d.sync += [bias_done.eq(bias_ok), params_done.eq(params_ok)]
                with m.If(bias_ok & params_ok):
                    m.d.sync += [issuing.eq(1), step.eq(0), chunk.eq(0), tile_final_taken.eq(0)]
                    if tc_lif:
                        m.d.sync += theta.eq((Const(1, c.t_max + 1) << T) >> 1)
                    m.next = "FEED"
            with m.State("FEED"):
                with m.If(issue & final_chunk & final_step):
                    m.d.sync += issuing.eq(0)
                    m.next = "TILE_END"
            with m.State("TILE_END"):
                with m.If(tile_final_taken):
                    m.d.sync += [bias_done.eq(0), params_done.eq(0)]
                    with m.If(tile == out_tiles - 1):
                        m.d.sync += [cur_bank.eq(~cur_bank), bank_full.bit_select(cur_bank, 1).eq(0)]
                        m.next = "WAIT_TOKEN"
                    with m.Else():
                        m.d.sync += [tile.eq(tile + 1), tile_base.eq(tile_base + in_features)]
                        m.next = "PARAMS"

        # -- output -------------------------------------------------------------------------------------
        out_tile = Signal(c.tile_width)
        out_last = Signal()
        m.d.comb += [
            out_last.eq(out_tile == out_tiles - 1),
            self.o.valid.eq(rq.o.valid),
            self.o.p.values.eq(rq.o.p.values),
            self.o.p.tile.eq(out_tile),
            self.o.p.last.eq(out_last),
            rq.o.ready.eq(self.o.ready),
        ]
        token_done = Signal()
        m.d.comb += token_done.eq(self.o.valid & self.o.ready & out_last)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out_tile.eq(Mux(out_last, 0, out_tile + 1))

        # -- counters and run end ------------------------------------------------------------------------
        pe_take = pe.i.valid & pe.i.ready
        n_events = sum(pe.i.p.events[k].valid for k in range(c.events_per_cycle))
        with m.If(busy):
            m.d.sync += counters["CYCLES"].eq(counters["CYCLES"] + 1)
            with m.If(pe_take):
                m.d.sync += counters["EVENTS"].eq(counters["EVENTS"] + n_events)
                with m.If(n_events != 0):
                    m.d.sync += counters["ACTIVE_CYCLES"].eq(counters["ACTIVE_CYCLES"] + 1)
            with m.If(self.o.valid & ~self.o.ready):
                m.d.sync += counters["STALL_CYCLES"].eq(counters["STALL_CYCLES"] + 1)
            with m.If(~self.i.valid & loading & ~bank_full.bit_select(cur_bank, 1)):
                m.d.sync += counters["IDLE_IN_CYCLES"].eq(counters["IDLE_IN_CYCLES"] + 1)
            with m.If(token_done):
                m.d.sync += counters["TOKENS_DONE"].eq(counters["TOKENS_DONE"] + 1)
                with m.If(counters["TOKENS_DONE"] + 1 == tokens):
                    m.d.sync += [busy.eq(0), done.eq(1)]
        with m.If(run_start | abort):
            m.d.sync += [bank_full.eq(0), load_bank.eq(0), load_chunk.eq(0), tokens_loaded.eq(0), cur_bank.eq(0),
                         out_tile.eq(0), issuing.eq(0)]
        with m.If(abort):
            m.d.sync += busy.eq(0)
        return m
