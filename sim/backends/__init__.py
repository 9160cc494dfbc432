"""Simulator backends: move bits between the simulator-independent testbench parts
(:mod:`spikemllm.sim.streams`) and a simulated design.

* :mod:`.amaranth_sim` -- Amaranth's Python simulator, no build step (unit tests).
* :mod:`.cocotb_sim` -- cocotb on a Verilator or Icarus Verilog model of the generated Verilog.
"""
