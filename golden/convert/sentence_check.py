"""Real pretrained weights, converted the same way: all-MiniLM-L6-v2 sentence embeddings.

The packaged MiniLM (a 6-layer BERT, :mod:`.real_data`) is a text-only model, so every
token is routed as text. Sentence embeddings are the attention-masked mean of the last
hidden states, L2-normalized (how sentence-transformers pools this model); the check is
the cosine similarity of each sentence's spiking embedding to its float embedding.
"""

from __future__ import annotations

import torch
from spikemllm.golden.real_data import SENTENCES, load_minilm

from .model import convert_model, discover_layers, set_schedule
from .schedule import uniform_schedule

__all__ = ["EXTRA_SENTENCES", "sentence_embeddings", "minilm_similarity"]

EXTRA_SENTENCES = (
    "A small robot sorts colored blocks on a conveyor belt.",
    "The weather forecast predicts heavy rain tomorrow afternoon.",
    "She answered every question on the exam in under an hour.",
    "Neurons communicate through brief electrical pulses called spikes.",
    "The museum opens at nine and closes at five on weekdays.",
    "Compilers translate source code into machine instructions.",
    "Two cats were sleeping on the warm windowsill.",
    "Memory bandwidth limits how fast a large model can decode tokens.",
)


def sentence_embeddings(model, tokenizer, sentences) -> torch.Tensor:
    """Mean-pooled, L2-normalized last hidden states, ``(sentences, hidden)``."""
    batch = tokenizer(list(sentences), padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1)


def minilm_similarity(timesteps=(2, 3, 4, 5, 7), *, kind: str = "spike", sentences=SENTENCES + EXTRA_SENTENCES) -> dict:
    """Cosine similarity of converted-MiniLM embeddings to the float ones, per ``T``.

    Returns ``{str(T): {"mean": ..., "min": ...}}`` plus ``"sentences"``.
    """
    model, tokenizer = load_minilm()
    reference = sentence_embeddings(model, tokenizer, sentences)
    layers = discover_layers(model)
    converted = convert_model(model, uniform_schedule(layers, text=timesteps[0]), kind=kind)
    out = {"sentences": len(sentences), "kind": kind, "weight_bits": 8}
    for T in timesteps:
        set_schedule(converted, uniform_schedule(layers, text=T))
        cos = (sentence_embeddings(converted, tokenizer, sentences) * reference).sum(-1)
        out[str(T)] = {"mean": float(cos.mean()), "min": float(cos.min())}
    return out
