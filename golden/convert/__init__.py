"""Conversion of a multimodal LLM to spike form, with modality-specific timesteps.

* :mod:`.model` -- find a model's linear layers, replace them by spiking (or fake-quant,
  or count-coding) twins that route each token to its modality's ``T``.
* :mod:`.schedule` -- the timestep schedule (``T`` per layer and modality), its JSON file,
  and the allocators that choose it (uniform, MED-guided, error-driven knapsack: MSTS).
* :mod:`.med` -- modality evolution discrepancy, measured layer by layer.
* :mod:`.sentence_check` -- a real-weights sanity check of a conversion on MiniLM.
"""

from .model import convert_model, discover_layers, set_schedule, token_modality
from .schedule import Schedule, uniform_schedule

__all__ = ["convert_model", "discover_layers", "set_schedule", "token_modality", "Schedule", "uniform_schedule"]
