"""Tool flows around the generated Verilog, and the reports they produce.

* :mod:`.lint` -- Verilator lint with explained waivers (``make verilog``).
* :mod:`.runner` -- build a block or core with Verilator or Icarus Verilog and run its cocotb testbench.
* :mod:`.tools` -- installs the system tools the flows need (Icarus Verilog) through apt when missing.
* :mod:`.sky130` -- a synthesis library derived from the sky130 PDK's own files.
* :mod:`.synth` -- Yosys synthesis (generic, sky130) and nextpnr place and route.
* :mod:`.activity` -- what the RTL did in a traced run: cycles, toggles, memory accesses, enables.
* :mod:`.power` -- the energy that activity implies (logic, clock with clock-gating credit).
* :mod:`.cellmodels` -- Verilog models of the characterized library's cells.
* :mod:`.gatelevel` -- gate-level power: the mapped netlist simulated on the workload, energy per net and cell.
* :mod:`.sram` -- memories costed as OpenRAM sky130 SRAM macros (area, access energy).
* :mod:`.ppa` -- ``make synth``: area, timing and energy of the spike and dense cores.
* :mod:`.perf` -- ``make perf``: a real layer on the RTL and full-size projections.
* :mod:`.formal` -- ``make formal``: SymbiYosys proofs of the blocks and the core.
"""
