"""Verification of the cores (the SpikeCore and the dense baselines) through the firmware
driver: compiled layers, token sequences mixing modalities, golden outputs and cycles.

* :mod:`.cases` -- random and real converted layers, their timestep tables and expectations.
* :mod:`.testbench` -- the cocotb test module run under Verilator by :mod:`spikemllm.flow.runner`.
"""
