"""Backends that let the firmware driver run a SpikeCore in a simulator.

Both implement :class:`spikemllm.firmware.driver.Backend` and move bits only; the stream
traffic goes through the same :class:`~.streams.StreamDriver` / :class:`~.streams.StreamMonitor`
lockstep testbench logic as the block benches, so every stream is checked against the
valid/ready contract and can be crossed with stall patterns.

* :class:`PysimBackend`: inside an ``amaranth.sim`` testbench (fast, no build).
* :class:`CocotbBackend`: on a cocotb DUT (Verilator), where ``bus`` is the Verilog ports
  ``bus__addr``, ``bus__w_stb``, ... and a stream ``s`` is ``s__valid``/``s__ready``/``s__payload``.
"""

from __future__ import annotations

from amaranth.lib import data

from ..firmware.driver import Transfer
from .patterns import always
from .payload import PayloadCodec
from .streams import StreamDriver, StreamMonitor

__all__ = ["PysimBackend", "CocotbBackend", "stream_layouts"]


def stream_layouts(core) -> dict[str, data.Layout]:
    """Payload layouts of the core's streams, by port name."""
    return {name: getattr(core, name).payload.shape() for name in ("i", "o", "weights", "bias", "params")}


def _parties(layouts, transfers: dict[str, Transfer]):
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


class PysimBackend:
    """Drive a :class:`~spikemllm.hw.core.SpikeCore` from an ``amaranth.sim`` testbench."""

    def __init__(self, ctx, core):
        self.ctx = ctx
        self.core = core
        self.layouts = stream_layouts(core)

    async def write(self, word: int, value: int) -> None:
        bus = self.core.bus
        self.ctx.set(bus.addr, word)
        self.ctx.set(bus.w_data, value)
        self.ctx.set(bus.w_stb, 1)
        await self.ctx.tick()
        self.ctx.set(bus.w_stb, 0)

    async def read(self, word: int) -> int:
        bus = self.core.bus
        self.ctx.set(bus.addr, word)
        self.ctx.set(bus.r_stb, 1)
        await self.ctx.tick()
        self.ctx.set(bus.r_stb, 0)
        return self.ctx.get(bus.r_data)

    async def transfer(self, transfers, *, max_cycles: int = 1_000_000):
        from .pysim import run_phase

        drivers, monitors = _parties(self.layouts, transfers)
        result = await run_phase(self.ctx, self.core, drivers, monitors, max_cycles)
        return {m.name: m.beats for m in monitors}, result.cycles


class CocotbBackend:
    """Drive a SpikeCore DUT under cocotb; ``layouts`` are the streams' payload layouts."""

    def __init__(self, dut, layouts: dict):
        self.dut = dut
        self.layouts = layouts

    async def write(self, word: int, value: int) -> None:
        from cocotb.triggers import RisingEdge

        d = self.dut
        d.bus__addr.value = word
        d.bus__w_data.value = value
        d.bus__w_stb.value = 1
        await RisingEdge(d.clk)
        d.bus__w_stb.value = 0

    async def read(self, word: int) -> int:
        from cocotb.triggers import ReadOnly, RisingEdge

        d = self.dut
        d.bus__addr.value = word
        d.bus__r_stb.value = 1
        await RisingEdge(d.clk)
        d.bus__r_stb.value = 0
        await ReadOnly()
        value = int(d.bus__r_data.value)
        await RisingEdge(d.clk)
        return value

    async def transfer(self, transfers, *, max_cycles: int = 1_000_000):
        from .cocotb_bench import run_phase

        drivers, monitors = _parties(self.layouts, transfers)
        result = await run_phase(self.dut, drivers, monitors, max_cycles=max_cycles)
        return {m.name: m.beats for m in monitors}, result.cycles
