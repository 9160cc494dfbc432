"""The host link's framing, declared once: the bridge (:mod:`.bridge`) is built from it and
the host's serial backend (:mod:`spikemllm.firmware.serial_backend`) encodes and decodes
with it.

Every exchange is one request frame from the host and one response frame from the board;
the host sends the next request only after the response. Multi-byte fields are little
endian; the checksum is CRC-8/SMBUS (polynomial 0x07, initial value 0, from
:mod:`amaranth.lib.crc`, the same algorithm in the hardware and on the host) over every
byte after the sync byte.

Request::

    0x5A | command | address (2 bytes) | length (2 bytes) | payload (length bytes) | CRC-8

Response::

    0xA5 | status | length (2 bytes) | payload (length bytes) | CRC-8

=========  ==========================  =================================  ==========================
command    address                     request payload                    response payload
=========  ==========================  =================================  ==========================
WRITE 1    register word               the 32-bit value (4 bytes)         none
READ 2     register word               none                               the 32-bit value
PUSH 3     input stream (PUSH_STREAMS) whole beats of the stream          none
PULL 4     output stream (0: ``o``)    beat count (2 bytes)               that many beats
LEVELS 5   0                           none                               free input-buffer beats (2), buffered output beats (2)
FLUSH 6    0                           none                               none
=========  ==========================  =================================  ==========================

A beat is the stream's payload as the core's port carries it (the flat integer of its
layout, :class:`spikemllm.sim.payload.PayloadCodec`) in ``ceil(width / 8)`` bytes. Beats
pushed to ``i`` wait in the bridge's input buffer, which feeds the core at full rate
once a run starts; output beats wait in the output buffer until pulled. ``FLUSH`` empties
both buffers.

Errors (``status``): the bridge executes a request only after its CRC checks and its
command, address and length make sense. A frame with a bad CRC, a wrong sync byte or a
length beyond ``max_payload`` is discarded together with every byte that follows it until
the line has been idle for ``idle_timeout`` cycles, and then answered with an error;
a frame cut short is answered with ``TIMEOUT`` once the line has been idle that long; a
frame that checks but asks for something impossible (unknown command, address or length)
is answered at once, and so is a push or pull the stream cannot serve now (``BUSY``: a
load stream while the core runs, more input beats than the input buffer has free, more
output beats than it holds), which would otherwise stall the bridge. An error response
has no payload; nothing was executed.
"""

from __future__ import annotations

import enum
import math

from amaranth.hdl import Shape
from amaranth.lib.crc import catalog

__all__ = [
    "REQUEST_SYNC", "RESPONSE_SYNC", "Command", "Status", "PUSH_STREAMS", "PULL_STREAMS", "CRC",
    "crc8", "beat_bytes", "stream_layouts", "encode_request", "encode_response", "LinkError",
]

REQUEST_SYNC = 0x5A
RESPONSE_SYNC = 0xA5


class Command(enum.IntEnum):
    WRITE = 1
    READ = 2
    PUSH = 3
    PULL = 4
    LEVELS = 5
    FLUSH = 6


class Status(enum.IntEnum):
    OK = 0
    BAD_CRC = 1
    BAD_FRAME = 2
    """wrong sync byte, unknown command, address or length"""
    TIMEOUT = 3
    """the frame stopped before its declared end"""
    BUSY = 4
    """a push or pull the stream cannot serve now: a load stream while the core runs, more
    input beats than the input buffer has free, more output beats than it holds"""


PUSH_STREAMS = ("i", "weights", "bias", "params")
"""Input streams of the core by PUSH address."""
PULL_STREAMS = ("o",)
"""Output streams of the core by PULL address."""

CRC = catalog.CRC8_SMBUS(data_width=8)
"""The link's checksum parameters (``.compute`` on the host, ``.create()`` in the hardware)."""


class LinkError(RuntimeError):
    """A frame the board refused or a response the host could not trust."""

    def __init__(self, message: str, status: Status | None = None):
        super().__init__(message)
        self.status = status


def stream_layouts(config) -> dict:
    """Payload layouts of the core's streams the link carries, by name (the core's port layouts)."""
    from spikemllm.hw.core_shell import core_output_layout, tile_bias_layout, tile_params_layout, token_layout
    from spikemllm.hw.signatures import weight_write_layout

    return {"i": token_layout(config), "weights": weight_write_layout(config), "bias": tile_bias_layout(config),
            "params": tile_params_layout(config), "o": core_output_layout(config)}


def crc8(data: bytes) -> int:
    """CRC-8/SMBUS of ``data``."""
    return CRC.compute(data)


def beat_bytes(layout) -> int:
    """Bytes a beat of ``layout`` takes on the link."""
    return math.ceil(Shape.cast(layout).width / 8)


def _u16(name: str, value) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 16:
        raise ValueError(f"{name} must be an integer in [0, 65535], not {value!r}")
    return value.to_bytes(2, "little")


def encode_request(command: Command, address: int, payload: bytes = b"") -> bytes:
    """The request frame of ``command`` at ``address`` carrying ``payload``."""
    body = bytes([Command(command)]) + _u16("address", address) + _u16("payload length", len(payload)) + bytes(payload)
    return bytes([REQUEST_SYNC]) + body + bytes([crc8(body)])


def encode_response(status: Status, payload: bytes = b"") -> bytes:
    """The response frame of ``status`` carrying ``payload`` (what the bridge sends)."""
    body = bytes([Status(status)]) + _u16("payload length", len(payload)) + bytes(payload)
    return bytes([RESPONSE_SYNC]) + body + bytes([crc8(body)])
