"""Tool flows around the generated Verilog, and the reports they produce.

* :mod:`.lint` -- Verilator lint with explained waivers (``make verilog``).
* :mod:`.runner` -- build a block or core with Verilator and run its cocotb testbench.
* :mod:`.sky130` -- a synthesis library derived from the sky130 PDK's own files.
* :mod:`.synth` -- Yosys synthesis (generic, sky130) and nextpnr place and route.
* :mod:`.power` -- switching activity of a simulation and the energy it implies.
* :mod:`.ppa` -- ``make synth``: area, timing and energy of the spike and dense cores.
* :mod:`.perf` -- ``make perf``: a real layer on the RTL and full-size projections.
"""
