"""Formal harnesses of the SpikeCore top level.

The register bus is free (any address, strobe and data in any cycle); the ``i``,
``weights``, ``bias`` and ``params`` streams obey the protocol; ``o``'s ``ready`` is free.

* :func:`core_stream`: the output tiles on ``o`` obey the stream protocol, except that
  an abort (``CTRL.ABORT`` or a fault) withdraws a tile on offer.
* :func:`core_abort`: in the cycle after an ``ABORT`` write during a run the core is idle:
  not busy, nothing offered on ``o``, no input taken, ``ABORTED`` set.
* :func:`core_refusal`: what the shell promises about refused operations: a refused
  configuration write changes no configuration register and sets ``ERROR``; a refused
  START (busy, no tokens, no shape, too large) does not start a run; only an accepted
  START makes the core busy; no input is taken while it is not busy.
* :func:`core_start_after_error`: a START while ``ERROR`` is still set (an operation
  was refused and not cleared) does not start a run.
"""

from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Assert, Module

from spikemllm.config import AcceleratorConfig
from spikemllm.hw.core import SpikeCore

from .properties import StreamIn, StreamOut, elaborate_into, free, internal, past

__all__ = ["core_stream", "core_abort", "core_refusal", "core_start_after_error"]


def _core(m: Module, c: AcceleratorConfig, *, drop_valid: bool = False, check_o: bool = True):
    dut = SpikeCore(config=c)
    fragment = elaborate_into(m, "dut", dut)
    bus = dut.bus
    for name in ("addr", "w_stb", "w_data", "r_stb"):
        port = getattr(bus, name)
        m.d.comb += port.eq(free(m, len(port), name=f"bus_{name}"))
    streams = {name: StreamIn(m, getattr(dut, name), name=name) for name in ("i", "weights", "bias", "params")}
    # an abort (by the host or a fault) withdraws a tile on offer: busy drops in its clock
    # edge, and with it o.valid
    streams["o"] = StreamOut(m, dut.o, name="o", drop_valid=drop_valid, check=check_o,
                             withdraw=internal(fragment, "abort"))
    return dut, fragment, streams


def core_stream(m: Module, c: AcceleratorConfig, *, drop_valid: bool = False) -> None:
    """The output tiles on ``o`` keep ``valid`` and their payload (values, tile, last) until
    ``ready``, unless the run is aborted."""
    _core(m, c, drop_valid=drop_valid)


def core_abort(m: Module, c: AcceleratorConfig) -> None:
    """An ``ABORT`` write during a run leaves the core idle in the next cycle."""
    dut, fragment, _streams = _core(m, c, check_o=False)
    busy, aborted = internal(fragment, "busy"), internal(fragment, "aborted")
    was_abort = past(m, internal(fragment, "abort_request") & busy, name="was_abort")
    with m.If(was_abort):
        m.d.comb += Assert(~busy & aborted, "an ABORT during a run left the core busy or not ABORTED")
        m.d.comb += Assert(~dut.o.valid, "an ABORT left an output tile on offer")
        m.d.comb += Assert(~dut.i.ready, "an ABORT left the core taking input")


def _configuration(fragment, c: AcceleratorConfig, regs):
    """The configuration registers, by the register each is written through."""
    words = {
        regs["IN_FEATURES"].word: [internal(fragment, "in_chunks"), internal(fragment, "too_large"),
                                   internal(fragment, "chunk_room")],
        regs["OUT_FEATURES"].word: [internal(fragment, "out_tiles"), internal(fragment, "too_large"),
                                    internal(fragment, "chunk_room")],
        regs["TOKENS"].word: [internal(fragment, "tokens")],
    }
    for n in range(regs["TTABLE"].count):
        words[regs["TTABLE"].word + n] = [internal(fragment, f"ttable_{n}")]
    return words


def core_refusal(m: Module, c: AcceleratorConfig) -> None:
    """Refused operations change nothing and start nothing (see the module documentation)."""
    dut, fragment, streams = _core(m, c, check_o=False)
    regs = dut.register_map
    bus = dut.bus
    busy, error = internal(fragment, "busy"), internal(fragment, "error")
    start = internal(fragment, "start")
    tokens, in_chunks, out_tiles = internal(fragment, "tokens"), internal(fragment, "in_chunks"), internal(fragment, "out_tiles")
    too_large = internal(fragment, "too_large")
    words = _configuration(fragment, c, regs)

    was_write = past(m, bus.w_stb, name="was_write")
    was_addr = past(m, bus.addr, name="was_addr")
    was_data = past(m, bus.w_data, name="was_data")
    was_busy = past(m, busy, name="was_busy")

    # A configuration register changes only through an accepted write to its word
    # (from the second cycle: the past values begin at 0, the registers at their init).
    has_past = past(m, 1, name="has_past")
    registers = {id(sig): sig for sigs in words.values() for sig in sigs}
    for sig in registers.values():
        changed = sig != past(m, sig, name=f"was_{sig.name}")
        writers = [word for word, sigs in words.items() if any(s is sig for s in sigs)]
        written = was_write & ~was_busy & reduce(operator.or_, [was_addr == word for word in writers])
        m.d.comb += Assert(~has_past | ~changed | written, f"{sig.name} changed without an accepted write")

    # A refused configuration write (any while busy, or a value out of range) sets ERROR
    # and leaves its registers as they were.
    for word, sigs in words.items():
        data = was_data
        if word == regs["IN_FEATURES"].word:
            bad = (data == 0) | (data[:c.lane_index_width] != 0) | (data > c.max_fan_in)
        elif word == regs["OUT_FEATURES"].word:
            bad = ~reduce(operator.or_, [data == t * c.pes for t in range(1, c.max_out_tiles + 1)])
        elif word == regs["TOKENS"].word:
            bad = 0
        else:
            bad = (data == 0) | (data > c.t_max)
        refused = was_write & (was_addr == word) & (was_busy | bad)
        kept = [sig == past(m, sig, name=f"kept_{word}_{sig.name}") for sig in sigs]  # registered outside the If
        with m.If(refused):
            m.d.comb += Assert(error, f"a refused write to word {word} did not set ERROR")
            for sig, same in zip(sigs, kept):
                m.d.comb += Assert(~has_past | same, f"a refused write to word {word} changed {sig.name}")

    # A refused START does not start a run; a run starts only through an accepted one.
    was_start = past(m, start, name="was_start")
    was_startable = past(m, (tokens != 0) & (in_chunks != 0) & (out_tiles != 0) & ~too_large, name="was_startable")
    with m.If(was_start & ~was_busy & ~was_startable):
        m.d.comb += Assert(~busy, "a refused START started a run")
    with m.If(busy & ~was_busy):
        m.d.comb += Assert(was_start & was_startable, "busy without an accepted START")
    # No input is taken and no run's input counted while the core is not busy.
    m.d.comb += Assert(busy | ~dut.i.ready, "input taken while not busy")


def core_start_after_error(m: Module, c: AcceleratorConfig) -> None:
    """A START while ``ERROR`` is set (nothing cleared it since a refused operation) does
    not make the core busy."""
    dut, fragment, streams = _core(m, c, check_o=False)
    busy, error = internal(fragment, "busy"), internal(fragment, "error")
    start, clear = internal(fragment, "start"), internal(fragment, "clear")
    was_start = past(m, start & ~clear, name="was_start")  # a START that does not also clear
    was_error = past(m, error, name="was_error")
    was_busy = past(m, busy, name="was_busy")
    with m.If(was_start & was_error & ~was_busy):
        m.d.comb += Assert(~busy, "a START with ERROR set started a run")
