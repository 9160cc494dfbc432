"""The small Qwen2-VL model of the shapes-VQA task: configuration, checkpoint, scoring.

The architecture is ``transformers``' own ``Qwen2VLForConditionalGeneration`` built from a
small configuration (2-block vision encoder with 8-pixel patches and 2 x 2 patch merging,
2-layer language model with M-RoPE, word-level vocabulary), so conversion code exercised
here is the code that converts a full-size Qwen2-VL.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .data import MERGE, PATCH, TEMPORAL_PATCH, VOCAB, Sample, collate

__all__ = ["DEFAULT_CHECKPOINT", "COMMITTED_CHECKPOINT", "default_checkpoint", "model_config", "build_model",
           "save_checkpoint", "load_checkpoint", "answers", "accuracy"]

DEFAULT_CHECKPOINT = Path("build") / "vqa" / "qwen2vl_shapes.pt"
"""Where ``make train`` writes the trained model (relative to the repository root)."""
COMMITTED_CHECKPOINT = Path(__file__).with_name("qwen2vl_shapes.pt")
"""The trained model shipped with the package (1.6 MB), so that evaluation and the RTL run
need no training: written by ``make train`` (``python -m spikemllm.golden.vqa.train`` with
its defaults; the settings are in the checkpoint's ``meta``); float accuracy 90.90% on the
1,000 held-out questions ``make eval`` measures. Retraining gives the same model up to the
last bits of the weights, which depend on the number of CPU threads."""


def default_checkpoint() -> Path:
    """:data:`DEFAULT_CHECKPOINT` when ``make train`` has written one, else :data:`COMMITTED_CHECKPOINT`."""
    return DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.is_file() else COMMITTED_CHECKPOINT

SIZES = {
    # name: (vision width, vision depth, text width, text layers, text MLP width)
    "small": (64, 2, 96, 2, 256),
    "tiny": (32, 1, 32, 1, 64),
}


def model_config(size: str = "small", *, init_std: float = 0.02):
    """``Qwen2VLConfig`` of the given size (``"small"`` is trained; ``"tiny"`` is for tests)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, not {size!r}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import Qwen2VLConfig

    v_width, v_depth, t_width, t_layers, t_mlp = SIZES[size]
    heads = 4
    half = t_width // heads // 2
    section = [half - 2 * (half // 3), half // 3, half // 3]
    return Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(VOCAB),
            hidden_size=t_width,
            intermediate_size=t_mlp,
            num_hidden_layers=t_layers,
            num_attention_heads=heads,
            num_key_value_heads=2,
            max_position_embeddings=64,
            initializer_range=init_std,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": section},
            bos_token_id=VOCAB["<bos>"],
            eos_token_id=VOCAB["<eos>"],
            pad_token_id=VOCAB["<pad>"],
        ),
        vision_config=dict(
            depth=v_depth,
            embed_dim=v_width,
            hidden_size=t_width,
            num_heads=heads,
            mlp_ratio=2,
            patch_size=PATCH,
            spatial_merge_size=MERGE,
            temporal_patch_size=TEMPORAL_PATCH,
            in_channels=3,
            initializer_range=init_std,
        ),
        image_token_id=VOCAB["<image>"],
        video_token_id=VOCAB["<video>"],
        vision_start_token_id=VOCAB["<vision_start>"],
        vision_end_token_id=VOCAB["<vision_end>"],
        tie_word_embeddings=False,
    )


def build_model(size: str = "small", *, seed: int = 0, init_std: float = 0.02):
    """A freshly initialized model (deterministic from ``seed``)."""
    from transformers import Qwen2VLForConditionalGeneration

    config = model_config(size, init_std=init_std)
    torch.manual_seed(seed)
    return Qwen2VLForConditionalGeneration(config)


def save_checkpoint(model, path: str | Path, meta: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"size": meta["size"], "state_dict": model.state_dict(), "meta": meta}, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path):
    """``(model in eval mode, meta)`` from a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; run 'make train' or use the committed {COMMITTED_CHECKPOINT}")
    data = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(data["size"])
    model.load_state_dict(data["state_dict"])
    model.eval()
    return model, data["meta"]


def answers(model, batch: dict) -> torch.Tensor:
    """Greedy next-token answer ids at each sample's answer position."""
    logits = model(**batch["inputs"]).logits
    rows = torch.arange(logits.shape[0])
    return logits[rows, batch["answer_index"]].argmax(dim=-1)


def accuracy(model, samples: list[Sample], *, batch_size: int = 100, progress=None) -> dict:
    """Exact-match accuracy of the greedy one-word answer, overall and per question kind.

    ``hits`` lists whether each sample was answered correctly (for paired comparisons).
    """
    correct = []
    kinds = []
    with torch.no_grad():
        for start in range(0, len(samples), batch_size):
            chunk = samples[start : start + batch_size]
            batch = collate(chunk)
            correct.append(answers(model, batch) == batch["answer"])
            kinds += [s.kind for s in chunk]
            if progress is not None:
                progress(min(start + batch_size, len(samples)), len(samples))
    hits = torch.cat(correct)
    per_kind = {}
    for kind in sorted(set(kinds)):
        idx = torch.tensor([k == kind for k in kinds])
        per_kind[kind] = float(hits[idx].float().mean())
    return {"accuracy": float(hits.float().mean()), "correct": int(hits.sum()), "total": len(samples), "per_kind": per_kind,
            "hits": hits.tolist()}
