"""Amaranth generator of the spike-driven accelerator.

Blocks (each an :class:`amaranth.lib.wiring.Component` built from an
:class:`~spikemllm.config.AcceleratorConfig`):

* :class:`TCLIFNeuronArray` -- activations in, one ternary spike vector per timestep out.
* :class:`SpikeEventCompactor` -- spike vectors in, ``(index, sign)`` events out, zeros skipped.
* :class:`SparseAccumulatePEArray` -- events in, per-step accumulators of ``pes`` channels out.
* :class:`Requantizer` -- final accumulators in, requantized integers out.

Shared payload layouts and stream signatures live in :mod:`.signatures`, the base every
block shares in :mod:`.block`, the cores' shell in :mod:`.core_shell`, the register map in
:mod:`.registers`, the list of blocks by name in :mod:`.blocks`; Verilog for every block
comes from :mod:`.generate`. Importing this package does not import torch.
"""

from .compactor import SpikeEventCompactor
from .neuron_array import TCLIFNeuronArray
from .pe_array import SparseAccumulatePEArray
from .requantizer import Requantizer

__all__ = ["TCLIFNeuronArray", "SpikeEventCompactor", "SparseAccumulatePEArray", "Requantizer"]
