"""SpikeMLLM: golden model, hardware generator, verification and firmware for a
spike-driven accelerator running spiking-converted multimodal LLMs.

Shared, pure-Python facts (no torch, no Amaranth):

* :mod:`spikemllm.config` -- :class:`~spikemllm.config.AcceleratorConfig`, presets,
  :class:`~spikemllm.config.Coding`, and loading a configuration for an entry point.
* :mod:`spikemllm.modality` -- token modalities and the timestep-table index.
* :mod:`spikemllm.latency` -- block latencies and the cores' per-tile overhead.

Subpackages:

* :mod:`spikemllm.golden` -- torch reference of every number the hardware produces, and
  the timing, conversion and VQA models around it.
* :mod:`spikemllm.hw` -- Amaranth generator of the accelerator.
* :mod:`spikemllm.sim` -- testbenches: stream drivers and monitors, simulator backends,
  block and core verification.
* :mod:`spikemllm.firmware` -- register map, driver and layer compiler.
* :mod:`spikemllm.flow` -- lint, Verilator runner, synthesis, power and the reports.
"""

__version__ = "0.1.0"
