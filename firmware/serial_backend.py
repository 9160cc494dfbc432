"""A :class:`~spikemllm.firmware.driver.Backend` over a serial port: the host side of the
board link (:mod:`spikemllm.hw.board.protocol`), so :class:`SpikeCoreDriver` runs
unchanged on a board.

Register reads and writes are one request each. A transfer pushes its input beats in
frames of whole beats and pulls the output beats the bridge holds, reading its buffer
levels (``LEVELS``) so that it never pushes more than the input buffer can take.

A run is staged: the driver writes ``CTRL.START`` before it calls :meth:`transfer`; this
backend holds that write back until the run's input beats (as many as the bridge's input
buffer holds) are in the buffer, so the core reads its input at full rate as it does in
simulation. The cycles :meth:`transfer` returns are then the core's own ``CYCLES``
counter, read after the run: clock cycles of the board's clock from ``START`` to the last
output tile. They equal the cycle model when the run's input fits the input buffer and
its output the output buffer; otherwise the core also waits for the link, and
``IDLE_IN_CYCLES`` and ``STALL_CYCLES`` say for how long. Load transfers (weights,
biases, parameters) take no counted cycles and return 0.

Stall patterns (``Transfer.pattern``) are a simulation feature: a board's streams stall
as the link makes them, so a pattern is refused.
"""

from __future__ import annotations

from pathlib import Path

from spikemllm.hw.board.protocol import (
    PULL_STREAMS,
    PUSH_STREAMS,
    RESPONSE_SYNC,
    Command,
    LinkError,
    Status,
    beat_bytes,
    crc8,
    encode_request,
    stream_layouts,
)
from spikemllm.hw.registers import register_map
from spikemllm.sim.payload import PayloadCodec

from spikemllm.config import AcceleratorConfig

from .driver import Transfer, TransferTimeout

__all__ = ["SerialBackend", "open_port"]

DEFAULT_TIMEOUT_S = 2.0
"""Seconds the backend waits for a response before it gives up on the board."""


def open_port(path: str, *, baud: int, timeout: float = DEFAULT_TIMEOUT_S):
    """A pyserial port at ``path`` (8N1, ``baud``); ``FileNotFoundError`` naming the path if
    there is no such device."""
    import serial

    if not Path(path).exists():
        raise FileNotFoundError(f"no serial port at {path!r}: connect the board (its USB serial adapter) "
                                "or name the right device, e.g. PORT=/dev/ttyUSB1")
    return serial.Serial(path, baudrate=baud, timeout=timeout)


class SerialBackend:
    """Reaches a board's :class:`~spikemllm.hw.board.bridge.HostBridge` built for ``config``
    through ``port`` (an open pyserial ``Serial``, or anything with its ``read``/``write``).

    ``max_payload`` must not exceed the bridge's. Raises
    :class:`~spikemllm.hw.board.protocol.LinkError` when the board refuses a request or
    does not answer within the port's timeout.
    """

    def __init__(self, port, config: AcceleratorConfig, *, max_payload: int = 256):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        self.port = port
        self.config = config
        self.max_payload = max_payload
        self.codecs = {name: PayloadCodec(layout) for name, layout in stream_layouts(config).items()}
        regs = register_map(config)
        self._ctrl, self._start = regs["CTRL"], regs["CTRL"].pack(START=1)
        self._cycles = regs["CYCLES"].word
        self._status = regs["STATUS"]
        self._pending_start: int | None = None

    # -- frames ------------------------------------------------------------------------------
    def _read_exactly(self, n: int, what: str) -> bytes:
        data = self.port.read(n)
        if len(data) != n:
            raise LinkError(f"the board sent {len(data)} of the {n} bytes of a response's {what} "
                            "before the port's timeout: is the bitstream loaded and the baud rate right?")
        return data

    def request(self, command: Command, address: int = 0, payload: bytes = b"") -> bytes:
        """Send one request and return the response's payload; ``LinkError`` if the board
        refused it (``status`` says why) or the response is malformed."""
        self.port.write(encode_request(command, address, payload))
        return self.response()

    def response(self) -> bytes:
        """Read one response frame; return its payload or raise ``LinkError``."""
        head = self._read_exactly(4, "header")
        if head[0] != RESPONSE_SYNC:
            raise LinkError(f"response starts with 0x{head[0]:02X}, not the sync byte 0x{RESPONSE_SYNC:02X}")
        length = int.from_bytes(head[2:4], "little")
        body = head[1:] + self._read_exactly(length + 1, "payload and CRC")
        if crc8(body[:-1]) != body[-1]:
            raise LinkError(f"response CRC 0x{body[-1]:02X} does not match its bytes (0x{crc8(body[:-1]):02X})")
        try:
            status = Status(head[1])
        except ValueError:
            raise LinkError(f"unknown response status {head[1]}") from None
        if status is not Status.OK:
            raise LinkError(f"the board refused the request: {status.name}", status)
        return body[3:-1]

    # -- Backend -----------------------------------------------------------------------------
    async def write(self, word: int, value: int) -> None:
        self._send_start()
        if word == self._ctrl.word and value == self._start:
            self._pending_start = value  # sent with the run's input (see the module's documentation)
            return
        self.request(Command.WRITE, word, int(value).to_bytes(4, "little"))

    async def read(self, word: int) -> int:
        self._send_start()
        return int.from_bytes(self.request(Command.READ, word), "little")

    def _send_start(self) -> None:
        if self._pending_start is not None:
            value, self._pending_start = self._pending_start, None
            self.request(Command.WRITE, self._ctrl.word, value.to_bytes(4, "little"))

    def levels(self) -> tuple[int, int]:
        """Free beats in the bridge's input buffer and beats waiting in its output buffer."""
        data = self.request(Command.LEVELS)
        return int.from_bytes(data[:2], "little"), int.from_bytes(data[2:], "little")

    def push(self, stream: str, beats: list) -> None:
        """Push ``beats`` to ``stream`` in frames of at most ``max_payload`` bytes."""
        codec = self.codecs[stream]
        size = beat_bytes(codec.layout)
        per_frame = max(1, self.max_payload // size)
        for n in range(0, len(beats), per_frame):
            payload = b"".join(codec.pack(b).to_bytes(size, "little") for b in beats[n:n + per_frame])
            self.request(Command.PUSH, PUSH_STREAMS.index(stream), payload)

    def pull(self, stream: str, count: int) -> list:
        """Pull ``count`` beats (that the bridge holds) from ``stream``."""
        codec = self.codecs[stream]
        size = beat_bytes(codec.layout)
        data = self.request(Command.PULL, PULL_STREAMS.index(stream), count.to_bytes(2, "little"))
        if len(data) != count * size:
            raise LinkError(f"PULL of {count} beats returned {len(data)} bytes, expected {count * size}")
        return [codec.unpack(int.from_bytes(data[k:k + size], "little")) for k in range(0, len(data), size)]

    async def transfer(self, transfers: dict[str, Transfer], *, max_cycles: int = 1_000_000) -> tuple[dict, int]:
        """Push every input transfer, pull every output transfer; return the beats received
        and the core's ``CYCLES`` (0 without an output transfer).

        Raises :class:`TransferTimeout` (after emptying the bridge's buffers) when the core
        stops making progress (it is not busy or reports an error while outputs are
        missing) or ``CYCLES`` passes ``max_cycles``.
        """
        for name, t in transfers.items():
            if name not in self.codecs:
                raise ValueError(f"no stream named {name!r}; streams are {sorted(self.codecs)}")
            if t.pattern is not None:
                raise ValueError(f"stream {name!r}: stall patterns are simulation-only; a board's streams stall "
                                 "as the link makes them")
        loads = [n for n in PUSH_STREAMS[1:] if n in transfers]
        for name in loads:
            self.push(name, list(transfers[name].beats))
        if "i" not in transfers and "o" not in transfers:
            self._send_start()
            return {}, 0
        return await self._run(list(transfers["i"].beats) if "i" in transfers else [],
                               transfers["o"].count if "o" in transfers else 0, max_cycles)

    async def _run(self, beats: list, count: int, max_cycles: int) -> tuple[dict, int]:
        sent, received = 0, []
        free, _ = self.levels()
        first = beats[:free]
        if first:
            self.push("i", first)
            sent = len(first)
        self._send_start()
        stuck = False
        while sent < len(beats) or len(received) < count:
            free, ready = self.levels()
            if ready and len(received) < count:
                received += self.pull("o", min(ready, count - len(received), 0xFFFF // beat_bytes(self.codecs["o"].layout)))
            if free and sent < len(beats):
                chunk = beats[sent:sent + free]
                self.push("i", chunk)
                sent += len(chunk)
            if ready or free and sent < len(beats):
                stuck = False
                continue
            status = self._status.unpack(int.from_bytes(self.request(Command.READ, self._status.word), "little"))
            cycles = int.from_bytes(self.request(Command.READ, self._cycles), "little")
            # A run that ended between LEVELS and STATUS has its outputs in the buffer by the
            # next LEVELS: the core is stuck only if it is idle twice in a row.
            stuck, was_stuck = bool(status["ERROR"] or not status["BUSY"]), stuck
            if cycles > max_cycles or (stuck and was_stuck):
                self.request(Command.FLUSH)
                raise TransferTimeout(f"transfer not complete: {sent}/{len(beats)} input beats sent, "
                                      f"{len(received)}/{count} outputs received after {cycles} core cycles "
                                      f"(status {status})")
        cycles = int.from_bytes(self.request(Command.READ, self._cycles), "little") if count else 0
        return {"o": received}, cycles
