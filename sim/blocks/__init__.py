"""Verification of the four pipeline blocks (neuron array, compactor, PE array,
requantizer) against the golden model, cycle by cycle.

* :mod:`.expect` -- the golden model of every block as the beats its streams carry.
* :mod:`.cases` -- edge, random, extreme and real-data cases.
* :mod:`.benches` -- per block: phases, expected beats, cycle-model prediction; runs on
  either backend (:mod:`spikemllm.sim.backends`).
* :mod:`.testbench` -- the cocotb test module run under Verilator by :mod:`spikemllm.flow.runner`.
"""
