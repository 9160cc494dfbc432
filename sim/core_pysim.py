"""Run firmware-driver coroutines against a SpikeCore in ``amaranth.sim`` (no build step)."""

from __future__ import annotations

from amaranth.sim import Simulator

from ..config import AcceleratorConfig
from ..firmware.driver import SpikeCoreDriver
from ..hw.core import SpikeCore
from .core_backends import PysimBackend

__all__ = ["run_with_driver"]


def run_with_driver(config: AcceleratorConfig, body, *, vcd: str | None = None, core_class=SpikeCore):
    """Build a core (``core_class``, default :class:`SpikeCore`) for ``config``, run
    ``await body(driver)`` in simulation, return its result."""
    core = core_class(config=config)
    result = {}

    async def bench(ctx):
        result["value"] = await body(SpikeCoreDriver(PysimBackend(ctx, core), config))

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return result["value"]
