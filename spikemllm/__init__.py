"""SpikeMLLM: golden model, hardware generator, verification and firmware for a
spike-driven accelerator running spiking-converted multimodal LLMs.

Subpackages:

* :mod:`spikemllm.golden` -- torch reference of every number the hardware produces.
* :mod:`spikemllm.hw` -- Amaranth generator of the accelerator.
* :mod:`spikemllm.sim` -- cocotb/Verilator testbenches.
* :mod:`spikemllm.firmware` -- register map, driver and layer compiler.
"""

__version__ = "0.1.0"
