"""Verification of the cores (the SpikeCore and the dense baselines) through the firmware
driver: compiled layers, token sequences mixing modalities, golden outputs and cycles.

* :mod:`.cases` -- random and real converted layers, their timestep tables and expectations.
* :mod:`.testbench` -- the cocotb test module run under Verilator by :mod:`spikemllm.flow.runner`.
* :mod:`.soak` -- the cocotb soak of many random layers (``make soak``).
* :mod:`.model_run` -- the shapes-VQA model with every linear layer's integer step on a core
  (golden or RTL), checked against the golden integer path and the cycle model.
* :mod:`.vqa` -- the cocotb test module that answers held-out questions on the RTL (``make eval-rtl``).
"""
