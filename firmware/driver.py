"""Host driver of a SpikeCore, over any backend that can move register and stream traffic.

The driver knows the register map (from :func:`spikemllm.hw.registers.register_map`, the
single declaration) and the load streams; a *backend* knows how to reach the core. The
cocotb simulation is one backend and ``amaranth.sim`` another
(:mod:`spikemllm.sim.backends`); :mod:`.serial_backend` reaches a board over a serial port
with the same three calls.
All calls are coroutines, so one driver serves simulators and hosts alike.

Typical use::

    driver = SpikeCoreDriver(backend, config)
    await driver.identify()
    await driver.load_layer(program)
    await driver.set_timestep_table(timestep_table(config, schedule))
    result = await driver.run(token_beats(program, q, modality, layer_index))
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Protocol

from spikemllm.hw.registers import COUNTERS, ERRORS, ID_VALUE, decode_build, register_map

from spikemllm.config import AcceleratorConfig
from spikemllm.golden.bundle import output_order

from .compiler import LayerProgram

__all__ = ["Backend", "Transfer", "TransferTimeout", "RunResult", "SpikeCoreError", "RunTimeout", "SpikeCoreDriver"]


@dataclass
class Transfer:
    """Beats to send on an input stream or a count to receive from an output stream."""

    beats: list | None = None
    count: int = 0
    pattern: object = None
    """``cycle -> bool`` gating the producer (idle) or consumer (back-pressure); None = never stall"""


class TransferTimeout(AssertionError):
    """A backend's stream transfer did not complete within its cycle budget.

    The backend leaves every stream idle (no ``valid``, no ``ready``) before raising it.
    It is an ``AssertionError`` so that a testbench reports a transfer that never
    completes as a failure.
    """


class Backend(Protocol):
    """What the driver needs from a simulator or a board."""

    async def write(self, word: int, value: int) -> None:
        """Write a 32-bit register at a word address."""

    async def read(self, word: int) -> int:
        """Read a 32-bit register at a word address."""

    async def transfer(self, transfers: dict[str, Transfer], *, max_cycles: int = 1_000_000) -> tuple[dict, int]:
        """Move stream traffic until every transfer is complete.

        Returns ``(received, cycles)``: the beats received per output stream and the
        cycles it took. Raises :class:`TransferTimeout` after ``max_cycles`` cycles
        without completing, with the streams left idle.
        """


@dataclass
class RunResult:
    """Outputs and measurements of one run."""

    outputs: list
    counters: dict[str, int]
    transfer_cycles: int


class SpikeCoreError(RuntimeError):
    """The core refused an operation (its ``STATUS.ERROR`` bit is set)."""

    def __init__(self, code: int):
        names = {c: (name, doc) for name, (c, doc) in ERRORS.items()}
        name, doc = names.get(code, (f"UNKNOWN_{code}", "unknown error code"))
        super().__init__(f"SpikeCore error {code} ({name}): {doc}")
        self.code = code
        self.name = name


def _integer(value) -> int | None:
    """``value`` as an int if it is an integer (Python, NumPy or a 0-d tensor; not a bool), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


class RunTimeout(TimeoutError):
    """A run did not finish within its timeout; the driver aborted it (``CTRL.ABORT``).

    ``counters`` holds the performance counters as the abort left them (``TOKENS_DONE``:
    the tokens whose outputs all left before it).
    """

    def __init__(self, message: str, counters: dict[str, int]):
        super().__init__(message)
        self.counters = counters


class SpikeCoreDriver:
    """Programs and runs a SpikeCore built for ``config`` through ``backend``."""

    def __init__(self, backend: Backend, config: AcceleratorConfig):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        self.backend = backend
        self.config = config
        self.regs = register_map(config)

    def _word(self, name: str, index: int = 0) -> int:
        reg = self.regs[name]
        if not 0 <= index < reg.count:
            raise ValueError(f"{name} has {reg.count} entries; index {index} is out of range")
        return reg.word + index

    async def write(self, name: str, value: int, index: int = 0) -> None:
        await self.backend.write(self._word(name, index), value)

    async def read(self, name: str, index: int = 0) -> int:
        return await self.backend.read(self._word(name, index))

    async def build(self) -> dict:
        """The build parameters the core reports in its ``HW_*`` registers, decoded through
        the register map's fields: configuration parameters and the datapath ``kind``."""
        words = {reg.name: await self.read(reg.name) for reg in self.regs.build_registers}
        return decode_build(self.regs, words)

    async def identify(self) -> dict:
        """Check that the core answers with the ID and the build parameters of ``config``;
        return them (:meth:`build`)."""
        ident = await self.read("ID")
        if ident != ID_VALUE:
            raise RuntimeError(f"ID register reads 0x{ident:08X}, expected 0x{ID_VALUE:08X}: not a SpikeCore")
        found = await self.build()
        wrong = {k: v for k, v in found.items() if k != "kind" and getattr(self.config, k) != v}
        if wrong:
            raise RuntimeError(f"core build parameters {wrong} differ from the configuration {self.config.name!r}")
        return found

    async def status(self) -> dict:
        """``busy``, ``done``, ``error``, ``aborted`` and ``error_code`` from ``STATUS``."""
        return {name.lower(): value for name, value in self.regs["STATUS"].unpack(await self.read("STATUS")).items()}

    async def check(self) -> None:
        """Raise :class:`SpikeCoreError` if the core reports an error."""
        s = await self.status()
        if s["error"]:
            raise SpikeCoreError(s["error_code"])

    async def start(self) -> None:
        """Start a run of ``TOKENS`` tokens (refusals show in :meth:`status`)."""
        await self.write("CTRL", self.regs["CTRL"].pack(START=1))

    async def abort(self) -> None:
        """Stop the run in progress: ``busy`` drops and everything in flight is dropped in
        the same clock edge (``STATUS.ABORTED`` says so); the loaded layer, the timestep
        table and the counters stay. Changes nothing while the core is idle."""
        await self.write("CTRL", self.regs["CTRL"].pack(ABORT=1))

    async def clear(self) -> None:
        """Clear ``done``, the error and (while idle) the performance counters."""
        await self.write("CTRL", self.regs["CTRL"].pack(CLEAR=1))

    async def counters(self) -> dict[str, int]:
        return {name: await self.read(name) for name, _doc in COUNTERS}

    async def set_timestep_table(self, entries: list[int]) -> None:
        """Program ``TTABLE``; entries of 0 (not reached) are left unprogrammed.

        Raises ``ValueError`` naming the first entry that is not an integer in
        ``[0, t_max]``, before anything is written."""
        if len(entries) != self.regs["TTABLE"].count:
            raise ValueError(f"timestep table needs {self.regs['TTABLE'].count} entries, not {len(entries)}")
        for index, T in enumerate(entries):
            if _integer(T) is None or not 0 <= T <= self.config.t_max:
                raise ValueError(f"timestep table entry {index} is {T!r}; entries are integers in [0, t_max={self.config.t_max}]")
        for index, T in enumerate(entries):
            if T:
                await self.write("TTABLE", T, index)
        await self.check()

    async def load_layer(self, program: LayerProgram) -> None:
        """Load weights, biases, requantizer parameters and the layer shape."""
        if not isinstance(program, LayerProgram):
            raise TypeError(f"program must be a LayerProgram (firmware.compiler.compile_layer), not {type(program).__name__}")
        if program.config != self.config:
            raise ValueError(f"program was compiled for {program.config.name!r}, the core is {self.config.name!r}")
        await self._check_ready("load_layer")
        transfers = {
            "weights": Transfer([{"addr": a, "row": list(r)} for a, r in program.weight_rows]),
            "bias": Transfer([{"tile": j, "bias": list(b)} for j, b in program.bias_tiles]),
            "params": Transfer([{"tile": j, "multiplier": list(m), "shift": list(s)} for j, m, s in program.param_tiles]),
        }
        await self.backend.transfer(transfers)
        await self.write("IN_FEATURES", program.padded_in)
        await self.write("OUT_FEATURES", program.padded_out)
        await self.check()

    async def _check_ready(self, what: str) -> None:
        """Raise if the core holds an error (it refuses START until :meth:`clear`) or is busy."""
        status = await self.status()
        if status["error"]:
            error = SpikeCoreError(status["error_code"])
            error.add_note(f"{what}: an earlier operation was refused and the error is still set; clear() it first")
            raise error
        if status["busy"]:
            done = await self.read("TOKENS_DONE")
            raise RuntimeError(f"{what}: the core is busy with a run ({done} of {await self.read('TOKENS')} tokens done); "
                               "wait for it or abort it")

    def _check_beats(self, beats: list[dict], tokens: int, chunks: int) -> None:
        """Raise ``ValueError`` naming the first beat the core's ``i`` port cannot carry, or
        a beat count that is not ``tokens`` x ``chunks``."""
        c = self.config
        if len(beats) != tokens * chunks:
            raise ValueError(f"{len(beats)} input beats for {tokens} tokens of {chunks} chunks (IN_FEATURES); "
                             f"expected {tokens * chunks}")
        low, high = -(1 << (c.act_bits - 1)), (1 << (c.act_bits - 1)) - 1
        for n, beat in enumerate(beats):
            if not isinstance(beat, dict) or set(beat) != {"values", "modality", "layer"}:
                raise ValueError(f"input beat {n} must be a dict with 'values', 'modality' and 'layer', not {beat!r:.80}")
            values = beat["values"]
            if not isinstance(values, (list, tuple)) or len(values) != c.lanes:
                raise ValueError(f"input beat {n}: 'values' must be {c.lanes} integers, not {values!r:.80}")
            for lane, v in enumerate(values):
                if _integer(v) is None or not low <= v <= high:
                    raise ValueError(f"input beat {n}, lane {lane}: {v!r} is not an integer in [{low}, {high}] (act_bits={c.act_bits})")
            if _integer(beat["modality"]) is None or beat["modality"] not in (0, 1):
                raise ValueError(f"input beat {n}: modality {beat['modality']!r} is not 0 (text) or 1 (vision)")
            # a tag the port carries but the table lacks is the core's to refuse (BAD_TOKEN)
            if _integer(beat["layer"]) is None or not 0 <= beat["layer"] < 1 << c.layer_width:
                raise ValueError(f"input beat {n}: layer {beat['layer']!r} is not in [0, {(1 << c.layer_width) - 1}]")

    async def run(self, beats: list[dict], *, tokens: int, out_tiles: int, in_pattern=None, out_pattern=None,
                  timeout: int = 1_000_000) -> RunResult:
        """Start a run of ``tokens`` tokens, stream ``beats`` in, collect the output tiles.

        ``timeout``: clock cycles the run's stream traffic may take. A run that has not
        finished by then is aborted (:meth:`abort`) and :class:`RunTimeout` is raised, so
        the core is idle and ready for the next run; a start the core refused, or a run it
        stopped on a fault, raises :class:`SpikeCoreError` instead.
        """
        if _integer(tokens) is None or tokens < 1:
            raise ValueError(f"tokens must be a positive integer, not {tokens!r}")
        if _integer(timeout) is None or timeout < 1:
            raise ValueError(f"timeout must be a positive number of cycles, not {timeout!r}")
        await self._check_ready("run")
        chunks = await self.read("IN_FEATURES") // self.config.lanes
        tiles = await self.read("OUT_FEATURES") // self.config.pes
        if out_tiles != tiles:
            raise ValueError(f"out_tiles={out_tiles!r}, but the loaded layer has {tiles} output tiles (OUT_FEATURES)")
        self._check_beats(beats, tokens, chunks)
        await self.write("TOKENS", tokens)
        await self.start()
        # The stream traffic starts in the cycle after start, so the core sees ideal input
        # when the patterns never stall; a refused start shows up as no progress.
        try:
            received, cycles = await self.backend.transfer(
                {"i": Transfer(beats, pattern=in_pattern), "o": Transfer(count=tokens * out_tiles, pattern=out_pattern)},
                max_cycles=timeout,
            )
        except TransferTimeout:
            await self.check()
            await self.abort()
            counters = await self.counters()
            raise RunTimeout(f"the run of {tokens} tokens did not finish within {timeout} cycles "
                             f"({counters['TOKENS_DONE']} tokens done); aborted", counters) from None
        status = await self.status()
        if status["error"]:
            raise SpikeCoreError(status["error_code"])
        if status["busy"] or not status["done"]:
            raise RuntimeError(f"run did not finish: status {status}")
        return RunResult(self.token_order(received["o"], tokens, out_tiles), await self.counters(), cycles)

    def token_order(self, beats: list, tokens: int, out_tiles: int) -> list:
        """Output beats in token order (each token's tiles in turn) from the order the core
        sends them: with ``bundle = B > 1``, per bundle of ``B`` tokens tile by tile
        (:func:`spikemllm.golden.bundle.output_order`)."""
        if self.config.bundle == 1:
            return list(beats)
        order = output_order(tokens, out_tiles, self.config.bundle)
        if len(beats) != len(order):
            raise ValueError(f"{len(beats)} output beats for {tokens} tokens of {out_tiles} tiles")
        place = {key: n for n, key in enumerate(order)}
        return [beats[place[(n, j)]] for n in range(tokens) for j in range(out_tiles)]
