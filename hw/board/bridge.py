"""The host bridge: a SpikeCore behind a UART that speaks the link protocol of
:mod:`.protocol` -- register reads and writes, pushes to the core's input and load
streams and pulls from its output stream.

Inside: the core, the UART (:mod:`.uart`), a payload buffer of ``max_payload`` bytes (a
request executes only after its CRC has checked, so its payload waits there), an input
buffer of ``in_depth`` token chunks in front of the core's ``i`` and an output buffer of
``out_depth`` output tiles behind its ``o``. Pushed chunks wait in the input buffer until
the core takes them, so a host that pushes a run's input before writing ``START`` gives
the core ideal input (as in simulation) however slow the link; the output buffer takes
the core's outputs as fast as it makes them until it is full.

The bridge reads the core's ``STATUS`` register whenever the bus is free and shows
``busy``, ``done`` and ``error`` on LED outputs, with ``link_error`` set by a refused frame
and cleared by the next good one.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikemllm.config import AcceleratorConfig
from spikemllm.hw.core import SpikeCore
from spikemllm.hw.registers import register_map

from .protocol import (CRC, PULL_STREAMS, PUSH_STREAMS, REQUEST_SYNC, RESPONSE_SYNC, Command, Status, beat_bytes,
                       stream_layouts)
from .uart import UARTReceiver, UARTTransmitter, check_divisor

__all__ = ["HostBridge"]


def _check_positive(name: str, value, low: int = 1, high: int = 65535) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], not {value!r}")
    return value


class HostBridge(wiring.Component):
    """A SpikeCore for ``config`` reachable through a UART.

    Parameters (keyword-only): ``divisor`` -- clock cycles per UART bit; ``max_payload``
    -- largest request payload in bytes (at least 4 and one beat of every input stream);
    ``in_depth``/``out_depth`` -- beats the input and output buffers hold;
    ``idle_timeout`` -- idle cycles on the receive line that end a refused or cut-short
    frame (default 64 bit times; on a board a few milliseconds, so that the gaps a USB
    serial adapter leaves inside a frame do not end it).

    Ports: ``rx``/``tx`` (the UART pins), ``busy``, ``done``, ``error`` (the core's
    ``STATUS`` bits) and ``link_error`` (the last frame was refused). Raises
    ``ValueError`` naming a parameter out of range.
    """

    def __new__(cls, *, src_loc_at: int = 0, **params):
        cls.check_parameters(**params)  # before the component exists: a refused bridge leaves nothing behind
        return super().__new__(cls, src_loc_at=src_loc_at + 1)

    @staticmethod
    def check_parameters(*, config: AcceleratorConfig, divisor: int, max_payload: int = 256, in_depth: int = 64,
                         out_depth: int = 128, idle_timeout: int | None = None) -> dict:
        """The parameters checked, with the default ``idle_timeout`` filled in; raises
        ``TypeError``/``ValueError`` naming a bad one."""
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        check_divisor(divisor)
        widest = max(beat_bytes(layout) for name, layout in stream_layouts(config).items() if name in PUSH_STREAMS)
        return {
            "config": config, "divisor": divisor,
            "max_payload": _check_positive("max_payload", max_payload, max(4, widest)),
            "in_depth": _check_positive("in_depth", in_depth),
            "out_depth": _check_positive("out_depth", out_depth),
            "idle_timeout": 64 * divisor if idle_timeout is None else
            _check_positive("idle_timeout", idle_timeout, 20 * divisor, 1 << 30),
        }

    def __init__(self, **params):
        for name, value in self.check_parameters(**params).items():
            setattr(self, name, value)
        self.layouts = stream_layouts(self.config)
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            "link_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        regs = register_map(self.config)
        core = m.submodules.core = SpikeCore(config=self.config)
        rx = m.submodules.uart_rx = UARTReceiver(divisor=self.divisor)
        tx = m.submodules.uart_tx = UARTTransmitter(divisor=self.divisor)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]
        byte = rx.o.payload

        # -- buffers around the core's streams -------------------------------------------------
        flush = Signal()
        width = {name: len(getattr(core, name).payload.as_value()) for name in self.layouts}
        in_fifo = SyncFIFOBuffered(width=width["i"], depth=self.in_depth)
        out_fifo = SyncFIFOBuffered(width=width["o"], depth=self.out_depth)
        m.submodules.in_buffer = ResetInserter(flush)(in_fifo)
        m.submodules.out_buffer = ResetInserter(flush)(out_fifo)
        m.d.comb += [
            core.i.valid.eq(in_fifo.r_rdy), core.i.payload.eq(in_fifo.r_data), in_fifo.r_en.eq(core.i.ready),
            out_fifo.w_en.eq(core.o.valid), out_fifo.w_data.eq(core.o.payload), core.o.ready.eq(out_fifo.w_rdy),
        ]
        o_bytes = beat_bytes(self.layouts["o"])
        in_free, out_level = Signal(16), Signal(16)
        m.d.comb += [in_free.eq(self.in_depth - in_fifo.level), out_level.eq(out_fifo.level)]

        # -- request receiver ------------------------------------------------------------------
        crc_rx = m.submodules.crc_rx = CRC.create()
        crc_tx = m.submodules.crc_tx = CRC.create()
        m.d.comb += crc_rx.data.eq(byte)
        idle = Signal(range(self.idle_timeout + 1))
        line_idle = Signal()
        m.d.comb += line_idle.eq(idle == self.idle_timeout)
        with m.If(rx.o.valid):
            m.d.sync += idle.eq(0)
        with m.Elif(~line_idle):
            m.d.sync += idle.eq(idle + 1)

        buffer = m.submodules.payload_buffer = Memory(shape=8, depth=self.max_payload, init=[])
        buf_w = buffer.write_port()
        buf_r = buffer.read_port()

        command = Signal(8)
        address = Signal(16)
        length = Signal(16)
        count = Signal(16)
        word = Signal(32)  # the last four payload bytes received, or a response's 32-bit payload
        status = Signal(Status)
        resp_length = Signal(16)
        resp_pull = Signal()  # the response payload is pulled beats rather than ``word``
        pull_left = Signal(16)
        index = Signal(range(max(4, o_bytes, *(beat_bytes(self.layouts[s]) for s in PUSH_STREAMS)) + 1))
        # Beats are shift registers: a pushed beat shifts in from the top, so a beat of n
        # bytes ends in the top n bytes; an output beat shifts out from the bottom.
        beat = Signal(8 * max(beat_bytes(self.layouts[s]) for s in PUSH_STREAMS))
        out_beat = Signal(8 * o_bytes)
        push_bytes = Array(Const(beat_bytes(self.layouts[s]), 8) for s in PUSH_STREAMS)[address[:2]]
        # the payload's position within a beat of the addressed stream: 0 at the end of a
        # frame of whole beats (a modulo without a divider)
        beat_position = Signal(range(len(beat) // 8))
        beats = Signal(16)  # whole beats in the payload

        def respond(code: Status, payload_length=0, pull=False):
            m.d.sync += [status.eq(code), resp_length.eq(payload_length), resp_pull.eq(pull),
                         self.link_error.eq(code != Status.OK)]
            m.next = "TX_SYNC"

        def refuse_later(code: Status):
            """Drop the rest of the frame: answer once the line has gone idle."""
            m.d.sync += status.eq(code)
            m.next = "DISCARD"

        def receive(next_state: str, *updates):
            """Take the next header or payload byte into the CRC; a frame cut short times out."""
            with m.If(rx.o.valid):
                m.d.comb += crc_rx.valid.eq(1)
                m.d.sync += list(updates)
                m.next = next_state
            with m.Elif(line_idle):
                respond(Status.TIMEOUT)

        # the bus reads STATUS whenever the bridge does not use it (for the LEDs)
        status_word = regs["STATUS"].word
        polled = Signal()
        bus_free = Signal(init=1)
        m.d.comb += [core.bus.addr.eq(status_word), core.bus.r_stb.eq(bus_free)]
        m.d.sync += polled.eq(bus_free)
        with m.If(polled):
            m.d.sync += [self.busy.eq(regs["STATUS"].field(core.bus.r_data, "BUSY")),
                         self.done.eq(regs["STATUS"].field(core.bus.r_data, "DONE")),
                         self.error.eq(regs["STATUS"].field(core.bus.r_data, "ERROR"))]

        with m.FSM():
            with m.State("SYNC"):
                with m.If(rx.o.valid):
                    with m.If(byte == REQUEST_SYNC):
                        m.d.comb += crc_rx.start.eq(1)
                        m.next = "COMMAND"
                    with m.Else():
                        refuse_later(Status.BAD_FRAME)
            with m.State("COMMAND"):
                receive("ADDRESS_LOW", command.eq(byte))
            with m.State("ADDRESS_LOW"):
                receive("ADDRESS_HIGH", address[:8].eq(byte))
            with m.State("ADDRESS_HIGH"):
                receive("LENGTH_LOW", address[8:].eq(byte))
            with m.State("LENGTH_LOW"):
                receive("LENGTH_HIGH", length[:8].eq(byte))
            with m.State("LENGTH_HIGH"):
                declared = Cat(length[:8], byte)
                with m.If(rx.o.valid):
                    m.d.comb += crc_rx.valid.eq(1)
                    m.d.sync += [length[8:].eq(byte), count.eq(0), beat_position.eq(0), beats.eq(0)]
                    with m.If(declared > self.max_payload):
                        refuse_later(Status.BAD_FRAME)
                    with m.Elif(declared == 0):
                        m.next = "CHECKSUM"
                    with m.Else():
                        m.next = "PAYLOAD"
                with m.Elif(line_idle):
                    respond(Status.TIMEOUT)
            with m.State("PAYLOAD"):
                m.d.comb += [buf_w.addr.eq(count), buf_w.data.eq(byte), buf_w.en.eq(rx.o.valid)]
                receive("PAYLOAD", word.eq(Cat(word[8:], byte)), count.eq(count + 1),
                        beat_position.eq(Mux(beat_position == push_bytes - 1, 0, beat_position + 1)))
                with m.If(rx.o.valid & (beat_position == push_bytes - 1)):
                    m.d.sync += beats.eq(beats + 1)
                with m.If(rx.o.valid & (count == length - 1)):
                    m.next = "CHECKSUM"
            with m.State("CHECKSUM"):
                receive("CHECK")
            with m.State("CHECK"):
                with m.If(~crc_rx.match_detected):
                    refuse_later(Status.BAD_CRC)
                with m.Elif((command == Command.WRITE) & (length == 4) & (address < regs.words)):
                    m.next = "WRITE"
                with m.Elif((command == Command.READ) & (length == 0) & (address < regs.words)):
                    m.next = "READ"
                with m.Elif((command == Command.PUSH) & (address < len(PUSH_STREAMS)) & (length != 0)
                            & (beat_position == 0)):
                    # a push the stream cannot take now would stall the bridge: refused
                    with m.If(Mux(address == 0, beats > in_free, self.busy)):
                        respond(Status.BUSY)
                    with m.Else():
                        m.d.sync += [count.eq(0), index.eq(0)]
                        m.next = "PUSH_READ"
                with m.Elif((command == Command.PULL) & (address < len(PULL_STREAMS)) & (length == 2)
                            & (word[16:] <= 0xFFFF // o_bytes)):
                    with m.If(word[16:] > out_level):
                        respond(Status.BUSY)
                    with m.Else():
                        m.d.sync += pull_left.eq(word[16:])
                        respond(Status.OK, word[16:] * o_bytes, pull=True)
                with m.Elif((command == Command.LEVELS) & (address == 0) & (length == 0)):
                    m.d.sync += word.eq(Cat(in_free, out_level))
                    respond(Status.OK, 4)
                with m.Elif((command == Command.FLUSH) & (address == 0) & (length == 0)):
                    m.d.comb += flush.eq(1)
                    respond(Status.OK)
                with m.Else():
                    respond(Status.BAD_FRAME)
            with m.State("DISCARD"):
                with m.If(line_idle):
                    respond(status)
            with m.State("WRITE"):
                m.d.comb += [bus_free.eq(0), core.bus.addr.eq(address), core.bus.w_data.eq(word), core.bus.w_stb.eq(1)]
                respond(Status.OK)
            with m.State("READ"):
                m.d.comb += [bus_free.eq(0), core.bus.addr.eq(address), core.bus.r_stb.eq(1)]
                m.next = "READ_DATA"
            with m.State("READ_DATA"):
                m.d.sync += word.eq(core.bus.r_data)
                respond(Status.OK, 4)
            # -- PUSH: beats assembled from the payload buffer, one byte a cycle --------------
            with m.State("PUSH_READ"):
                m.d.comb += buf_r.addr.eq(count)
                m.d.sync += count.eq(count + 1)
                m.next = "PUSH_BYTE"
            with m.State("PUSH_BYTE"):
                m.d.sync += beat.eq(Cat(beat[8:], buf_r.data))
                with m.If(index == push_bytes - 1):
                    m.d.sync += index.eq(0)
                    m.next = "PUSH_OFFER"
                with m.Else():
                    m.d.sync += index.eq(index + 1)
                    m.next = "PUSH_READ"
            with m.State("PUSH_OFFER"):
                targets = {"i": (in_fifo.w_en, in_fifo.w_data, in_fifo.w_rdy)}
                for name in PUSH_STREAMS[1:]:
                    port = getattr(core, name)
                    targets[name] = (port.valid, port.payload, port.ready)
                taken = Signal()
                with m.Switch(address[:2]):
                    for n, name in enumerate(PUSH_STREAMS):
                        valid, payload, ready = targets[name]
                        with m.Case(n):
                            top = len(beat) - 8 * beat_bytes(self.layouts[name])
                            m.d.comb += [valid.eq(1), payload.eq(beat[top:top + width[name]]), taken.eq(ready)]
                with m.If(taken):
                    with m.If(count == length):
                        respond(Status.OK)
                    with m.Else():
                        m.next = "PUSH_READ"
            # -- response -----------------------------------------------------------------------
            def send(data, next_state, *updates):
                m.d.comb += [tx.i.valid.eq(1), tx.i.payload.eq(data)]
                with m.If(tx.i.ready):
                    m.d.comb += crc_tx.valid.eq(1)
                    m.d.sync += list(updates)
                    m.next = next_state

            m.d.comb += crc_tx.data.eq(tx.i.payload)
            with m.State("TX_SYNC"):
                m.d.comb += [tx.i.valid.eq(1), tx.i.payload.eq(RESPONSE_SYNC), crc_tx.start.eq(tx.i.ready)]
                with m.If(tx.i.ready):
                    m.next = "TX_STATUS"
            with m.State("TX_STATUS"):
                send(status, "TX_LENGTH_LOW")
            with m.State("TX_LENGTH_LOW"):
                send(resp_length[:8], "TX_LENGTH_HIGH", index.eq(0))
            with m.State("TX_LENGTH_HIGH"):
                with m.If(resp_length == 0):
                    send(resp_length[8:], "TX_CHECKSUM")
                with m.Elif(resp_pull):
                    send(resp_length[8:], "PULL_WAIT")
                with m.Else():
                    send(resp_length[8:], "TX_WORD")
            with m.State("TX_WORD"):
                with m.If(index == resp_length - 1):
                    send(word[:8], "TX_CHECKSUM")
                with m.Else():
                    send(word[:8], "TX_WORD", index.eq(index + 1), word.eq(word >> 8))
            with m.State("PULL_WAIT"):
                with m.If(out_fifo.r_rdy):
                    m.d.comb += out_fifo.r_en.eq(1)
                    m.d.sync += [out_beat.eq(out_fifo.r_data), pull_left.eq(pull_left - 1), index.eq(0)]
                    m.next = "TX_BEAT"
            with m.State("TX_BEAT"):
                with m.If(index != o_bytes - 1):
                    send(out_beat[:8], "TX_BEAT", index.eq(index + 1), out_beat.eq(out_beat >> 8))
                with m.Elif(pull_left == 0):
                    send(out_beat[:8], "TX_CHECKSUM")
                with m.Else():
                    send(out_beat[:8], "PULL_WAIT")
            with m.State("TX_CHECKSUM"):
                m.d.comb += [tx.i.valid.eq(1), tx.i.payload.eq(crc_tx.crc)]
                with m.If(tx.i.ready):
                    m.next = "SYNC"
        return m
