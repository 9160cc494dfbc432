"""Simulator-independent stream driver, monitor and checker.

A testbench steps every stream of a block in lockstep, one clock cycle at a time:

1. each :class:`StreamDriver` says whether it offers a beat this cycle (its pattern may
   hold it idle) and which payload; each :class:`StreamMonitor` says whether it is ready
   (its pattern may apply back-pressure);
2. the simulator settles and samples ``valid``/``ready``/``payload`` of every stream;
3. drivers and monitors :meth:`observe` the sampled values: a beat moves where both are 1.

The backends (:mod:`.backends.amaranth_sim` for ``amaranth.sim``, :mod:`.backends.cocotb_sim`
for cocotb on Verilator) only move bits; everything that decides and checks lives here, so both
simulators run the same testbench logic. Monitors also check the stream contract of the
block's outputs: once ``valid`` is raised it stays raised, with the same payload, until
the beat is taken.
"""

from __future__ import annotations

from amaranth.lib import data

from .patterns import Pattern, always
from .payload import PayloadCodec

__all__ = ["DRAIN_CYCLES", "StreamDriver", "StreamMonitor", "StreamProtocolError", "check_beats", "BenchResult",
           "stream_layouts", "parties"]

DRAIN_CYCLES = 8
"""Cycles every phase keeps running after its last expected beat, to catch extra beats."""


class StreamProtocolError(AssertionError):
    """A block broke the valid/ready contract on one of its outputs."""


class StreamDriver:
    """Offers ``beats`` (nested payload values) on an input stream, gated by ``pattern``."""

    def __init__(self, name: str, codec: PayloadCodec, beats: list, pattern: Pattern = always):
        self.name = name
        self.codec = codec
        self._packed = [codec.pack(b) for b in beats]
        self.pattern = pattern
        self.sent = 0
        self.handshake_cycles: list[int] = []

    @property
    def done(self) -> bool:
        return self.sent == len(self._packed)

    def offer(self, cycle: int) -> tuple[int, int]:
        """``(valid, payload)`` to drive in ``cycle``."""
        if self.done or not self.pattern(cycle):
            return 0, 0
        return 1, self._packed[self.sent]

    def observe(self, cycle: int, valid: int, ready: int) -> None:
        if valid and ready:
            self.sent += 1
            self.handshake_cycles.append(cycle)


class StreamMonitor:
    """Takes beats from an output stream with ``ready`` gated by ``pattern`` and records them."""

    def __init__(self, name: str, codec: PayloadCodec, expected_count: int, pattern: Pattern = always):
        self.name = name
        self.codec = codec
        self.expected_count = expected_count
        self.pattern = pattern
        self.beats: list = []
        self.handshake_cycles: list[int] = []
        self._held: int | None = None  # payload of a beat offered but not taken last cycle

    @property
    def done(self) -> bool:
        return len(self.beats) >= self.expected_count

    def ready(self, cycle: int) -> int:
        return int(self.pattern(cycle))

    def observe(self, cycle: int, valid: int, ready: int, payload: int) -> None:
        if self._held is not None:
            if not valid:
                raise StreamProtocolError(f"{self.name}: valid dropped in cycle {cycle} before the beat was taken")
            if payload != self._held:
                raise StreamProtocolError(f"{self.name}: payload changed in cycle {cycle} while stalled")
        if valid and ready:
            self.beats.append(self.codec.unpack(payload))
            self.handshake_cycles.append(cycle)
            self._held = None
        elif valid:
            self._held = payload
        else:
            self._held = None


class BenchResult:
    """What one testbench phase measured."""

    def __init__(self, cycles: int, drivers: dict, monitors: dict):
        self.cycles = cycles
        """Cycles from the phase's first cycle to its last output handshake, inclusive."""
        self.drivers = drivers
        self.monitors = monitors

    def beats(self, name: str) -> list:
        return self.monitors[name].beats


def check_beats(name: str, got: list, expected: list, *, describe=None) -> None:
    """Raise ``AssertionError`` at the first beat of ``got`` that differs from ``expected``.

    ``describe(index, beat)`` may add context (token, timestep) to the message.
    """
    for n, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            where = f" ({describe(n, e)})" if describe else ""
            raise AssertionError(f"{name}: beat {n}{where} differs\n  got      {g}\n  expected {e}")
    if len(got) != len(expected):
        raise AssertionError(f"{name}: {len(got)} beats, expected {len(expected)}")


def stream_layouts(core) -> dict[str, data.Layout]:
    """Payload layouts of a core's streams, by port name."""
    return {name: getattr(core, name).payload.shape() for name in ("i", "o", "weights", "bias", "params")}


def parties(layouts: dict, transfers: dict) -> tuple[list[StreamDriver], list[StreamMonitor]]:
    """Drivers and monitors of a driver's :class:`~spikemllm.firmware.driver.Transfer` s:
    a transfer with beats is driven, one with a count is monitored."""
    drivers, monitors = [], []
    for name, t in transfers.items():
        if name not in layouts:
            raise ValueError(f"no stream named {name!r}; streams are {sorted(layouts)}")
        codec = PayloadCodec(layouts[name])
        if t.beats is not None:
            drivers.append(StreamDriver(name, codec, t.beats, t.pattern or always))
        else:
            monitors.append(StreamMonitor(name, codec, t.count, t.pattern or always))
    return drivers, monitors
