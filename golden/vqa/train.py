"""Train the small Qwen2-VL on shapes-VQA and cache the checkpoint.

``python -m spikemllm.golden.vqa.train [--out build/vqa/qwen2vl_shapes.pt] [--steps N] ...``

Seeded data, initialization and batch order (results can differ in the last bits with
the number of CPU threads, which changes float summation order). Each training sequence
packs several questions about one scene; AdamW minimizes the cross-entropy of every
answer token, with warm-up then cosine learning rate. Held-out accuracy is reported at
the end and stored in the checkpoint's ``meta`` with the settings and the wall time.
Exit status 1 if held-out accuracy is below ``--target``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

from .data import collate_training, generate, generate_training
from .model import DEFAULT_CHECKPOINT, accuracy, build_model, save_checkpoint

__all__ = ["TRAIN_SEED", "HELDOUT_SEED", "train", "main"]

TRAIN_SEED = 1
HELDOUT_SEED = 2


def _positions(model, inputs: dict) -> torch.Tensor:
    """M-RoPE position ids of a packed batch, computed once from its first sequence.

    Every training sequence has the same image block at the same place and text after
    it, so all rows share one set of positions for their real tokens (padding comes last
    and, under causal attention, influences nothing). This skips the model's per-sample
    Python loop over token groups, which costs as much as a layer at this size.
    """
    positions, _ = model.model.get_rope_index(
        inputs["input_ids"][:1], inputs["mm_token_type_ids"][:1], inputs["image_grid_thw"][:1]
    )
    return positions.expand(3, inputs["input_ids"].shape[0], -1)


def _lr(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    *,
    size: str = "small",
    steps: int = 4000,
    batch_size: int = 32,
    train_size: int = 40000,
    lr: float = 2e-3,
    questions: int = 6,
    init_std: float = 0.1,
    seed: int = 0,
    log_every: int = 100,
    log=print,
):
    """Train a fresh model; returns ``(model in eval mode, meta dict)``."""
    for name, value in (("steps", steps), ("batch_size", batch_size), ("train_size", train_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, not {value!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, not {lr!r}")
    start = time.time()
    data = generate_training(train_size, TRAIN_SEED, questions=questions)
    log(f"generated {train_size} training scenes x {questions} questions in {time.time() - start:.1f}s")
    model = build_model(size, seed=seed, init_std=init_std)
    model.train()
    params = sum(p.numel() for p in model.parameters())
    log(f"model: Qwen2-VL '{size}' with {params} parameters")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(train_size, generator=gen)
    cursor = 0
    warmup = max(1, steps // 20)
    running = None
    for step in range(steps):
        if cursor + batch_size > train_size:
            order = torch.randperm(train_size, generator=gen)
            cursor = 0
        batch = collate_training([data[int(i)] for i in order[cursor : cursor + batch_size]])
        cursor += batch_size
        for group in opt.param_groups:
            group["lr"] = _lr(step, steps, lr, warmup)
        logits = model(**batch["inputs"], position_ids=_positions(model, batch["inputs"])).logits
        rows = torch.arange(logits.shape[0])[:, None]
        picked = logits[rows, batch["answer_index"]].flatten(0, 1)
        loss = torch.nn.functional.cross_entropy(picked, batch["answer"].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        value = float(loss.detach())
        running = value if running is None else 0.95 * running + 0.05 * value
        if (step + 1) % log_every == 0 or step + 1 == steps:
            acc = float((picked.argmax(-1) == batch["answer"].flatten()).float().mean())
            log(f"step {step + 1}/{steps}  loss {running:.4f}  batch acc {acc:.3f}  {time.time() - start:.0f}s")
    model.eval()
    meta = {
        "size": size,
        "steps": steps,
        "batch_size": batch_size,
        "train_size": train_size,
        "questions_per_scene": questions,
        "train_seed": TRAIN_SEED,
        "lr": lr,
        "seed": seed,
        "init_std": init_std,
        "parameters": params,
        "final_train_loss": running,
        "train_seconds": round(time.time() - start, 1),
    }
    return model, meta


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--size", default="small")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=32, help="scenes per step")
    parser.add_argument("--train-size", type=int, default=40000)
    parser.add_argument("--heldout-size", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--init-std", type=float, default=0.1, help="weight initialization std (0.02 plateaus far longer)")
    parser.add_argument("--questions", type=int, default=6, help="questions packed per training scene")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--target", type=float, default=0.9, help="minimum held-out accuracy (exit 1 below it)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    # Early in training many activations and gradients are tiny; denormal arithmetic is
    # slow on CPUs and changes nothing that matters here.
    torch.set_flush_denormal(True)
    model, meta = train(
        size=args.size,
        steps=args.steps,
        batch_size=args.batch_size,
        train_size=args.train_size,
        lr=args.lr,
        questions=args.questions,
        init_std=args.init_std,
        seed=args.seed,
        log_every=args.log_every,
        log=lambda msg: print(msg, flush=True),
    )
    heldout = generate(args.heldout_size, HELDOUT_SEED, split="heldout")
    result = accuracy(model, heldout)
    meta.update(heldout_seed=HELDOUT_SEED, heldout_size=args.heldout_size, heldout_accuracy=result["accuracy"])
    meta["heldout_per_kind"] = result["per_kind"]
    save_checkpoint(model, args.out, meta)
    print(f"held-out accuracy {result['accuracy']:.4f} ({result['correct']}/{result['total']}); per kind:", flush=True)
    for kind, acc in result["per_kind"].items():
        print(f"  {kind:12s} {acc:.4f}")
    print(f"checkpoint -> {args.out}")
    if result["accuracy"] < args.target:
        print(f"held-out accuracy {result['accuracy']:.4f} is below the target {args.target}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
