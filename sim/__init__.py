"""Verification of the accelerator blocks against the golden model, cycle by cycle.

* :mod:`.payload` -- stream payloads <-> the flat integers on the Verilog ports.
* :mod:`.patterns` -- idle and back-pressure patterns.
* :mod:`.streams` -- simulator-independent driver, monitor and checker.
* :mod:`.expect` -- the golden model of every block as the beats its streams carry.
* :mod:`.cases` -- edge, random, extreme and real-data cases.
* :mod:`.benches` -- per block: phases, expected beats, cycle-model prediction.
* :mod:`.pysim` / :mod:`.cocotb_bench` -- run a bench in ``amaranth.sim`` / cocotb.
* :mod:`.tb_blocks` -- the cocotb test module; :mod:`.runner` builds with Verilator and runs it.
"""
