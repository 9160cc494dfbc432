"""The board's host link: the UART, the framing, the bridge with its core simulated in
amaranth.sim behind a pseudo-terminal, and the serial backend driving it through pyserial.

The end-to-end tests run the firmware driver unchanged over :class:`SerialBackend` and
check a real layer's outputs bit-exactly against the golden model and the core's
``CYCLES`` against the cycle model, then send frames that must be refused (a corrupted
CRC, a frame cut short, an unknown command) and check that nothing was executed and the
next run is right again.
"""

import asyncio

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator
from spikemllm.firmware.driver import SpikeCoreDriver, Transfer
from spikemllm.firmware.serial_backend import SerialBackend, open_port
from spikemllm.flow.board import board_case, run_layer
from spikemllm.hw.board.bridge import HostBridge
from spikemllm.hw.board.protocol import (
    Command,
    LinkError,
    Status,
    crc8,
    encode_request,
    encode_response,
)
from spikemllm.hw.board.top import BAUD
from spikemllm.hw.board.uart import UARTReceiver, UARTTransmitter
from spikemllm.hw.registers import register_map
from spikemllm.sim.backends.uart_pty import SimulatedBoard
from spikemllm.sim.core.cases import qwen2vl_case

from spikemllm.config import PRESETS

SIM_TIMEOUT_S = 120
"""The simulated board is slow: a response to a long frame takes seconds of wall time."""


def test_crc_is_crc8_smbus():
    # the catalogued check value of CRC-8/SMBUS over "123456789"
    assert crc8(b"123456789") == 0xF4
    frame = encode_request(Command.WRITE, 0x1234, b"\x01\x02\x03\x04")
    assert frame[:6] == bytes([0x5A, 1, 0x34, 0x12, 4, 0])
    assert frame[-1] == crc8(frame[1:-1])


def test_uart_loopback_at_an_odd_divisor():
    """Bytes through the transmitter into the receiver at 7 cycles per bit arrive intact."""
    sent = [0x00, 0xFF, 0x5A, 0xA5, 0x01, 0x80]
    tx, rx = UARTTransmitter(divisor=7), UARTReceiver(divisor=7)
    got = []

    async def bench(ctx):
        for byte in sent:
            ctx.set(tx.i.valid, 1)
            ctx.set(tx.i.payload, byte)
            await ctx.tick().until(tx.i.ready)
            ctx.set(tx.i.valid, 0)
            for _ in range(12 * 7):
                ctx.set(rx.rx, ctx.get(tx.tx))
                await ctx.tick()
                if ctx.get(rx.o.valid):
                    got.append(ctx.get(rx.o.payload))

    m = Module()
    m.submodules.tx, m.submodules.rx = tx, rx
    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == sent


@pytest.mark.parametrize("params, match", [
    ({"divisor": 3}, "divisor"),
    ({"divisor": 4, "max_payload": 3}, "max_payload"),
    ({"divisor": 4, "in_depth": 0}, "in_depth"),
    ({"divisor": 4, "idle_timeout": 10}, "idle_timeout"),
])
def test_bridge_refuses_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        HostBridge(config=PRESETS["small"], **params)


class _FakePort:
    """A port that answers with fixed bytes."""

    def __init__(self, answer: bytes):
        self.answer, self.written = answer, b""

    def write(self, data):
        self.written += data

    def read(self, n):
        out, self.answer = self.answer[:n], self.answer[n:]
        return out


def test_backend_checks_responses():
    config = PRESETS["small"]
    good = encode_response(Status.OK, (0x534D4C31).to_bytes(4, "little"))
    backend = SerialBackend(_FakePort(good), config)
    assert asyncio.run(backend.read(0)) == 0x534D4C31
    corrupted = good[:-2] + bytes([good[-2] ^ 1]) + good[-1:]
    with pytest.raises(LinkError, match="CRC"):
        asyncio.run(SerialBackend(_FakePort(corrupted), config).read(0))
    with pytest.raises(LinkError, match="BAD_CRC") as refused:
        asyncio.run(SerialBackend(_FakePort(encode_response(Status.BAD_CRC)), config).read(0))
    assert refused.value.status is Status.BAD_CRC
    with pytest.raises(LinkError, match="0 of the 4 bytes"):
        asyncio.run(SerialBackend(_FakePort(b""), config).read(0))
    with pytest.raises(ValueError, match="simulation-only"):
        asyncio.run(backend.transfer({"i": Transfer([], pattern=lambda c: True)}))


def test_missing_port_is_named():
    with pytest.raises(FileNotFoundError, match="/dev/ttyNOSUCH"):
        open_port("/dev/ttyNOSUCH", baud=BAUD)


def _recrc(frame: bytes) -> bytes:
    """``frame`` (without its CRC byte) with a correct CRC appended."""
    return frame + bytes([crc8(frame[1:])])


def _refusals(board: SimulatedBoard, backend: SerialBackend, config) -> None:
    """Frames the bridge must refuse, each leaving ``TOKENS`` as it was."""
    regs = register_map(config)
    tokens = regs["TOKENS"].word
    backend.request(Command.WRITE, tokens, (5).to_bytes(4, "little"))
    good = encode_request(Command.WRITE, tokens, (9).to_bytes(4, "little"))
    corrupted = good[:7] + bytes([good[7] ^ 0x04]) + good[8:]  # one payload bit flipped, CRC kept
    cases = [(corrupted, Status.BAD_CRC), (good[:5], Status.TIMEOUT),
             (_recrc(bytes([0x5A, 0x7F]) + good[2:-1]), Status.BAD_FRAME),  # no command 0x7F
             (b"\x00" + good, Status.BAD_FRAME),  # a stray byte before the sync byte
             (encode_request(Command.PULL, 0, (1).to_bytes(2, "little")), Status.BUSY)]  # the output buffer is empty
    for frame, status in cases:
        backend.port.write(frame)
        with pytest.raises(LinkError) as refused:
            backend.response()
        assert refused.value.status is status, f"{frame.hex()}: {refused.value}"
        assert int.from_bytes(backend.request(Command.READ, tokens), "little") == 5, f"{frame.hex()} was executed"


def _check(result: dict) -> None:
    assert result["bit_exact"], f"output tiles {result['mismatched_tiles']} differ from the golden model"
    assert result["rtl_cycles"] == result["model_cycles"] == result["transfer_cycles"], result
    assert result["events"] == result["model_events"]
    assert result["stall_cycles"] == 0 and result["idle_input_cycles"] == 0


def test_real_layer_through_the_serial_link():
    """The Qwen2-VL layer on ``small`` (12 tokens) through pyserial, a pseudo-terminal,
    the simulated UART and the bridge: bit- and cycle-exact; then refused frames, and the
    same run again."""
    config = PRESETS["small"]
    case = qwen2vl_case(config, tokens=12)
    with SimulatedBoard(config, divisor=4) as board:
        with open_port(board.port, baud=BAUD, timeout=SIM_TIMEOUT_S) as port:
            backend = SerialBackend(port, config)
            driver = SpikeCoreDriver(backend, config)
            _check(asyncio.run(run_layer(driver, case)))
            _refusals(board, backend, config)
            again = asyncio.run(driver.run(case.beats, tokens=case.tokens, out_tiles=case.program.out_tiles))
    assert again.outputs == case.expected and again.counters["CYCLES"] == case.model.cycles


@pytest.mark.parametrize("name", ["board_ice40", "small"])
def test_board_configuration_through_the_serial_link(name):
    """The iCEBreaker's configuration on its board layer (random, 39 tokens), and
    the Qwen2-VL layer's 39 tokens on ``small`` (more tokens than the input buffer holds
    with a 32-beat buffer, so the run streams through the link)."""
    config = PRESETS[name]
    if name == "board_ice40":
        case, params = board_case(config), {}
    else:
        case, params = qwen2vl_case(config), {"in_depth": 32}
    with SimulatedBoard(config, divisor=4, **params) as board:
        with open_port(board.port, baud=BAUD, timeout=SIM_TIMEOUT_S) as port:
            result = asyncio.run(run_layer(SpikeCoreDriver(SerialBackend(port, config), config), case))
    assert result["bit_exact"], result
    if not params:
        _check(result)
    else:  # the core waited for the link: CYCLES counts it, the model does not
        assert result["rtl_cycles"] == result["transfer_cycles"] > result["model_cycles"]
        assert result["idle_input_cycles"] > 0

