"""Verification of the accelerator against the golden model, cycle by cycle.

Simulator-independent parts, used by every testbench:

* :mod:`.payload` -- stream payloads <-> the flat integers on the Verilog ports.
* :mod:`.patterns` -- idle and back-pressure patterns.
* :mod:`.streams` -- driver, monitor and checker of valid/ready streams.

Then, by folder:

* :mod:`.backends` -- ``amaranth.sim`` and cocotb (Verilator) backends.
* :mod:`.blocks` -- the pipeline blocks: golden beats, cases, benches, cocotb testbench.
* :mod:`.core` -- the cores through the firmware driver: cases, cocotb testbench.
* :mod:`.formal` -- formal harnesses of the blocks and the core (``make formal``).
* ``fixtures/`` -- real captured data (package data) and its generator.
"""
