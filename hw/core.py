"""SpikeCore: the top level. Modality-aware timestep scheduler, activation memory, the
spike pipeline (neuron stage -> compactor -> PE array -> requantizer),
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
   neuron array (threshold ``2^(T-1-t)``, subtractive reset; ``1`` for count coding)
   computed in closed form: a neuron loaded with ``q`` fires ``sign(q)`` at step ``t``
   exactly when bit ``T-1-t`` of ``|q|`` is set or ``|q| > 2^T - 1`` (saturation); with
   count coding, when ``|q| > t``. The activation memory holds every lane's sign and
   magnitude (:func:`neuron_input_layout`), and every step reads the chunk's row again:
   there is no membrane state to write back. Events address weight row
   ``j * IN + index``: the weight memory holds all tiles.
4. The requantized ``pes`` outputs of the tile leave on ``o`` with the tile number and
   ``last`` on the token's final tile.

The register interface (:mod:`.registers`) configures the layer shape, the number of
tokens and the timestep table, starts runs and reports status, errors and performance
counters. Weights, biases and requantizer parameters are loaded through the ``weights``,
``bias`` and ``params`` streams while the core is not busy.

With ``bundle = B > 1`` the tokens go through this flow ``B`` at a time
(:mod:`spikemllm.golden.bundle`): the neuron stage reads the ``B`` token slots' rows of a
chunk together and fires each token on the bundle's common steps; one event carries every
token that fires at its input, so one weight-row read serves them all.

Everything but the spike pipeline (registers, loads, token loader, tile sequencer,
requantizer, output) is the shell shared with the dense baseline cores
(:mod:`.core_shell`). Timing (ideal streams) is predicted exactly by
:func:`spikemllm.golden.timing.core_model.core_cycles`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal, Value
from amaranth.lib import data, wiring

from spikemllm.config import AcceleratorConfig, Coding

from .compactor import SpikeEventCompactor
from .core_shell import (
    Datapath,
    Feed,
    LayerCore,
    core_output_layout,
    tile_bias_layout,
    tile_params_layout,
    token_layout,
)
from .pe_array import SparseAccumulatePEArray
from .registers import CoreKind
from .slices import SlicedCompactor
from .signatures import SPIKE_SHAPE, spike_vector_layout

__all__ = [
    "SpikeCore",
    "neuron_input_layout",
    "token_layout",
    "core_output_layout",
    "tile_bias_layout",
    "tile_params_layout",
]


def neuron_input_layout(config: AcceleratorConfig) -> data.ArrayLayout:
    """A row of the spike core's activation memory: per lane ``negative`` (``q < 0``) and
    ``magnitude`` = ``min(|q|, 2^(act_bits-1) - 1)``, ``act_bits`` bits in all.

    Clamping ``|q| = 2^(act_bits-1)`` (only ``q = -2^(act_bits-1)``) changes no spike:
    ``T <= t_max <= act_bits - 1``, so with TC-LIF both magnitudes either saturate or, at
    ``T = act_bits - 1``, fire at every step; with count coding ``T <= 2^(act_bits-1) - 1``
    and both fire at every step.
    """
    return data.ArrayLayout(data.StructLayout({"magnitude": config.act_bits - 1, "negative": 1}), config.lanes)


class SpikeCore(LayerCore):
    """The spike-driven linear-layer accelerator with its scheduler and registers.

    Ports: ``bus`` (register bus, the core responds), ``i`` (token chunks in), ``o``
    (output tiles out), ``weights`` (weight-row writes: ``addr = tile * IN + input``),
    ``bias`` and ``params`` (per-tile bias and requantizer parameter writes).

    Raises ``TypeError`` if ``config`` is not an :class:`AcceleratorConfig`.
    """

    KIND = CoreKind.SPIKE

    def activation_layout(self) -> data.ArrayLayout:
        """Sign and magnitude per lane (:func:`neuron_input_layout`)."""
        return neuron_input_layout(self.config)

    def encode_activations(self, m: Module, values) -> Value:
        """Each lane's sign and ``min(|q|, 2^(act_bits-1) - 1)`` (:func:`neuron_input_layout`)."""
        c = self.config
        row = Signal(neuron_input_layout(c))
        top = (1 << (c.act_bits - 1)) - 1
        for n in range(c.lanes):
            q = values[n]
            magnitude = abs(q)  # unsigned act_bits: 2^(act_bits-1) for the most negative value
            m.d.comb += [
                row[n].negative.eq(q < 0),
                row[n].magnitude.eq(Mux(magnitude[-1], top, magnitude[:-1])),
            ]
        return row

    def elaborate_datapath(self, m: Module, feed: Feed) -> Datapath:
        """Neuron stage (TC-LIF from the stored activations, step-major) -> compactor -> PE array."""
        c = self.config
        kmax = c.in_chunks_max
        chunk_width = max(1, (kmax - 1).bit_length())
        lane_shift = (c.lanes - 1).bit_length()
        tc_lif = c.coding is Coding.TC_LIF
        magnitude_bits = c.act_bits - 1
        B = c.bundle
        act_r, cur_bank, T, tile_base, in_chunks = feed.act_read, feed.bank, feed.timesteps, feed.tile_base, feed.in_chunks

        pe = SparseAccumulatePEArray(config=c)
        if c.slices == 1:
            comp = SpikeEventCompactor(config=c)
            outs, beats = [comp.o], [pe.i]
        else:  # lane slices, each with its compactor and weight bank
            comp = SlicedCompactor(config=c)
            outs, beats = list(comp.o), list(pe.i)
        m.submodules.compactor = ResetInserter(feed.flush)(comp)
        m.submodules.pe_array = ResetInserter(feed.flush)(pe)
        for out, into in zip(outs, beats):
            wiring.connect(m, out, into)

        # -- neuron stage: step-major over K chunks, every step from the activation memory ---------
        # next (step, chunk) to issue
        step = Signal(c.step_width + 1)
        chunk = Signal(chunk_width)
        issuing = Signal()
        if tc_lif:
            # TC-LIF: the magnitude bits that fire at the next step: 2^(T-1-t) (one-hot,
            # shifted right every step) and every bit from 2^T up (a saturated value).
            theta = Signal(magnitude_bits)
            above = Signal(magnitude_bits)

        # R stage: a read issued last cycle; its data is on the read port.
        r_valid = Signal()
        r_step = Signal(c.step_width)
        r_fires = Signal(magnitude_bits, name="r_fire_mask") if tc_lif else None
        if B > 1:
            # per token of the bundle (steps aligned at the least significant end, see
            # golden.bundle): TC-LIF fires the magnitude bits r_fires[b] (none before the
            # token's first step); count coding fires while the step is below the token's T
            low = [Signal(magnitude_bits, name=f"low_b{b}") for b in range(B)] if tc_lif else None  # 2^T_b - 1
            r_fires = [Signal(magnitude_bits, name=f"r_fire_mask_b{b}") for b in range(B)] if tc_lif else None
            r_active = None if tc_lif else [Signal(name=f"r_active_b{b}") for b in range(B)]
        r_step_end = Signal()
        r_last = Signal()
        r_more = Signal()
        r_base = Signal(c.index_width)

        # S stage: the spike vector offered to the compactor.
        s_valid = Signal()
        s_payload = Signal(spike_vector_layout(c))
        m.d.comb += [comp.i.valid.eq(s_valid), comp.i.p.eq(s_payload)]
        advance = Signal()
        m.d.comb += advance.eq(~s_valid | comp.i.ready)

        fired = Signal(spike_vector_layout(c).members["spikes"])
        if B == 1:
            row = act_r.data
            for n in range(c.lanes):
                lane = row[n]
                fire = Signal(name=f"fire_{n}")
                if tc_lif:
                    m.d.comb += fire.eq((lane.magnitude & r_fires).any())
                else:  # count coding: |q| spikes, one per step from step 0
                    m.d.comb += fire.eq(lane.magnitude > r_step)
                m.d.comb += fired[n].eq(Mux(fire, Mux(lane.negative, -1, 1), 0))
        else:
            for b, read in enumerate(feed.act_reads):
                for n in range(c.lanes):
                    lane = read.data[n]
                    fire = Signal(name=f"fire_b{b}_{n}")
                    if tc_lif:
                        m.d.comb += fire.eq((lane.magnitude & r_fires[b]).any())
                    else:
                        m.d.comb += fire.eq(r_active[b] & (lane.magnitude > r_step))
                    m.d.comb += fired[b][n].eq(Mux(fire, Mux(lane.negative, -1, 1), 0))
        with m.If(advance):
            m.d.sync += s_valid.eq(r_valid)
            with m.If(r_valid):
                m.d.sync += [
                    s_payload.spikes.eq(fired),
                    s_payload.base.eq(r_base),
                    s_payload.step.eq(r_step),
                    s_payload.step_end.eq(r_step_end),
                    s_payload.last.eq(r_last),
                    s_payload.more.eq(r_more),
                ]

        final_chunk = chunk == in_chunks - 1
        final_step = step == T - 1
        issue = Signal()
        m.d.comb += issue.eq(advance & issuing)
        for read in feed.act_reads:
            m.d.comb += [read.addr.eq(Cat(chunk, cur_bank) if kmax > 1 else cur_bank), read.en.eq(issue)]
        with m.If(advance):
            m.d.sync += r_valid.eq(issuing)
            with m.If(issuing):
                m.d.sync += [
                    r_step.eq(step),
                    r_step_end.eq(final_chunk),
                    r_last.eq(final_chunk & final_step),
                    # the next tile begins as this one's final vector issues: the compactor
                    # may pack the two tiles' events into one beat
                    r_more.eq(final_chunk & final_step & feed.begin),
                    r_base.eq(tile_base + (chunk << lane_shift)),
                ]
                if tc_lif and B == 1:
                    m.d.sync += r_fires.eq(theta | above)
                elif tc_lif:  # a token fires from the step whose threshold is within its T
                    m.d.sync += [r_fires[b].eq(Mux((theta & low[b]).any(), theta | ~low[b], 0)) for b in range(B)]
                else:
                    m.d.sync += [r_active[b].eq(step < feed.slot_timesteps[b]) for b in range(B)] if B > 1 else []
                with m.If(final_chunk):
                    m.d.sync += [chunk.eq(0), step.eq(step + 1)]
                    if tc_lif:
                        m.d.sync += theta.eq(theta >> 1)
                with m.Else():
                    m.d.sync += chunk.eq(chunk + 1)

        finished = Signal()
        m.d.comb += finished.eq(issue & final_chunk & final_step)
        with m.If(finished):
            m.d.sync += issuing.eq(0)
        # After the finished-clear: a begin in the cycle the final vector issues wins, and
        # the next tile's first vector issues in the next cycle.
        with m.If(feed.begin):
            m.d.sync += [issuing.eq(1), step.eq(0), chunk.eq(0)]
            if tc_lif:
                below = ((Const(1, magnitude_bits + 1) << T) - 1)[:magnitude_bits]  # bits below 2^T
                m.d.sync += [theta.eq(((Const(1, magnitude_bits + 1) << T) >> 1)[:magnitude_bits]), above.eq(~below)]
                if B > 1:
                    m.d.sync += [low[b].eq(((Const(1, magnitude_bits + 1) << feed.slot_timesteps[b]) - 1)[:magnitude_bits])
                                 for b in range(B)]
        with m.If(feed.flush):
            m.d.sync += [issuing.eq(0), r_valid.eq(0), s_valid.eq(0)]

        # the counters: a beat taken by any slice; the reads and events of the beats taken
        E = c.events_per_cycle
        takes = [beat.valid & beat.ready for beat in beats]
        slots = [(take, event) for take, beat in zip(takes, beats) for event in beat.p.events]
        n_reads = Signal(range(E + 1))
        m.d.comb += n_reads.eq(sum(take & event.valid for take, event in slots))
        if B == 1:
            n_events = n_reads
        else:  # every token's own events: the fire bits of the valid events
            n_events = Signal(range(E * B + 1))
            m.d.comb += n_events.eq(sum(take & event.fire[b] & event.valid for take, event in slots for b in range(B)))
        take = Signal()
        m.d.comb += take.eq(Cat(takes).any())
        return Datapath(array=pe, finished=finished, take=take, work=n_events, reads=n_reads)
