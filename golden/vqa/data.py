"""A procedurally generated visual question-answering task ("shapes VQA").

Images are ``48 x 48`` RGB scenes on a ``3 x 3`` grid of ``16 x 16`` cells; one to four
objects (square, circle, triangle; red, green, blue, yellow) sit in distinct cells with
random size, offset and colour jitter on a noisy dark background. Every question has a
one-word answer:

=============  ==============================================  ===================
kind           question                                        answers
=============  ==============================================  ===================
count_color    how many red objects are there ?                0 1 2 3 4
count_shape    how many circles are there ?                    0 1 2 3 4
color_of       what color is the circle ?                      red green blue yellow
shape_of       what shape is the red object ?                  square circle triangle
column_of      which column is the red circle in ?             left middle right
row_of         which row is the red circle in ?                top middle bottom
exists         is there a blue square ?                        yes no
=============  ==============================================  ===================

``color_of``, ``shape_of``, ``column_of`` and ``row_of`` are asked only where the object
they name is unique. Everything is deterministic from a seed: the train and held-out
splits come from different seeds of one generator.

Held out means held out: the key space of ``(object layout, question)`` pairs is
partitioned by a hash of the pair (:func:`pair_key`, :func:`key_split`), one pair in
``HELDOUT_SHARE`` belongs to the held-out split and the rest to training. Scenes with few
objects have few distinct layouts (one object: 108), so without the partition a held-out
question often repeats a training pair exactly with only the rendering jitter changed.

The tokenizer is a small word-level vocabulary built here (no pretrained tokenizer
exists offline). A sample becomes the sequence::

    <bos> <vision_start> <image> x 9 <vision_end> question words

and the model must produce the answer word as the next token. With 8-pixel patches and a
2 x 2 spatial merge (Qwen2-VL), each grid cell is exactly one image token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "COLORS",
    "SHAPES",
    "KINDS",
    "IMAGE_SIZE",
    "GRID",
    "Scene",
    "Sample",
    "Vocabulary",
    "make_scene",
    "SPLITS",
    "HELDOUT_SHARE",
    "pair_key",
    "key_split",
    "render",
    "ask",
    "generate",
    "VOCAB",
    "to_patches",
    "collate",
    "TrainingScene",
    "generate_training",
    "collate_training",
]

COLORS = {"red": (220, 50, 40), "green": (40, 190, 70), "blue": (50, 90, 230), "yellow": (230, 210, 40)}
SHAPES = ("square", "circle", "triangle")
PLURAL = {"square": "squares", "circle": "circles", "triangle": "triangles"}
KINDS = ("count_color", "count_shape", "color_of", "shape_of", "column_of", "row_of", "exists")
COLUMNS = ("left", "middle", "right")
ROWS = ("top", "middle", "bottom")
NUMBERS = ("0", "1", "2", "3", "4")
GRID = 3
CELL = 16
IMAGE_SIZE = GRID * CELL
MAX_OBJECTS = 4
MAX_QUESTION_WORDS = 8
SPLITS = ("train", "heldout")
HELDOUT_SHARE = 8
"""One (layout, question) pair in ``HELDOUT_SHARE`` belongs to the held-out split."""
_ASK_TRIES = 32


@dataclass(frozen=True)
class Scene:
    """Objects as ``(cell, color, shape)``; cell ``r * 3 + c`` (row-major)."""

    objects: tuple[tuple[int, str, str], ...]
    image: np.ndarray  # uint8 (48, 48, 3)


@dataclass(frozen=True)
class Sample:
    scene: Scene
    kind: str
    question: tuple[str, ...]
    answer: str


def make_scene(rng: np.random.Generator) -> Scene:
    n = int(rng.integers(1, MAX_OBJECTS + 1))
    cells = rng.choice(GRID * GRID, size=n, replace=False)
    names = list(COLORS)
    objects = tuple(
        sorted((int(c), names[int(rng.integers(len(names)))], SHAPES[int(rng.integers(len(SHAPES)))]) for c in cells)
    )
    return Scene(objects, render(objects, rng))


def render(objects, rng: np.random.Generator) -> np.ndarray:
    """Draw the objects with size, offset and colour jitter on a noisy background."""
    img = rng.integers(0, 40, size=(IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float64)
    yy, xx = np.mgrid[0:CELL, 0:CELL].astype(np.float64)
    for cell, color, shape in objects:
        r, c = divmod(cell, GRID)
        radius = rng.uniform(4.5, 6.5)
        cy = CELL / 2 - 0.5 + rng.uniform(-1.0, 1.0)
        cx = CELL / 2 - 0.5 + rng.uniform(-1.0, 1.0)
        dy, dx = yy - cy, xx - cx
        if shape == "square":
            mask = (np.abs(dx) <= radius * 0.85) & (np.abs(dy) <= radius * 0.85)
        elif shape == "circle":
            mask = dx**2 + dy**2 <= radius**2
        else:  # triangle, apex up
            mask = (dy >= -radius) & (dy <= radius) & (np.abs(dx) <= (dy + radius) / 2)
        rgb = np.clip(np.array(COLORS[color], dtype=np.float64) + rng.uniform(-20, 20, size=3), 0, 255)
        patch = img[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL]
        patch[mask] = rgb
    return img.round().astype(np.uint8)


def ask(scene: Scene, rng: np.random.Generator) -> tuple[str, tuple[str, ...], str]:
    """Pick an answerable question about ``scene``: ``(kind, words, answer)``."""
    objs = scene.objects
    colors = list(COLORS)
    by_shape = {s: [o for o in objs if o[2] == s] for s in SHAPES}
    by_color = {c: [o for o in objs if o[1] == c] for c in colors}
    by_both = {(c, s): [o for o in objs if o[1] == c and o[2] == s] for c in colors for s in SHAPES}
    unique_shapes = [s for s in SHAPES if len(by_shape[s]) == 1]
    unique_colors = [c for c in colors if len(by_color[c]) == 1]
    unique_pairs = [k for k, v in by_both.items() if len(v) == 1]
    kinds = ["count_color", "count_shape", "exists"]
    if unique_shapes:
        kinds.append("color_of")
    if unique_colors:
        kinds.append("shape_of")
    if unique_pairs:
        kinds += ["column_of", "row_of"]
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "count_color":
        c = colors[int(rng.integers(len(colors)))]
        return kind, ("how", "many", c, "objects", "are", "there", "?"), NUMBERS[len(by_color[c])]
    if kind == "count_shape":
        s = SHAPES[int(rng.integers(len(SHAPES)))]
        return kind, ("how", "many", PLURAL[s], "are", "there", "?"), NUMBERS[len(by_shape[s])]
    if kind == "color_of":
        s = unique_shapes[int(rng.integers(len(unique_shapes)))]
        return kind, ("what", "color", "is", "the", s, "?"), by_shape[s][0][1]
    if kind == "shape_of":
        c = unique_colors[int(rng.integers(len(unique_colors)))]
        return kind, ("what", "shape", "is", "the", c, "object", "?"), by_color[c][0][2]
    if kind in ("column_of", "row_of"):
        c, s = unique_pairs[int(rng.integers(len(unique_pairs)))]
        row, col = divmod(by_both[(c, s)][0][0], GRID)
        word = "column" if kind == "column_of" else "row"
        answer = COLUMNS[col] if kind == "column_of" else ROWS[row]
        return kind, ("which", word, "is", "the", c, s, "in", "?"), answer
    # exists: half the time ask about a present pair, half about an absent one
    present = [k for k, v in by_both.items() if v]
    absent = [k for k, v in by_both.items() if not v]
    pool = present if (rng.random() < 0.5 or not absent) else absent
    c, s = pool[int(rng.integers(len(pool)))]
    return kind, ("is", "there", "a", c, s, "?"), "yes" if by_both[(c, s)] else "no"


def pair_key(objects, question) -> tuple:
    """Canonical ``(object layout, question)`` key: objects as sorted ``(cell, color, shape)``."""
    return tuple(sorted(tuple(o) for o in objects)), tuple(question)


def key_split(objects, question) -> str:
    """``"heldout"`` or ``"train"``: the split that owns this (layout, question) pair.

    A fixed hash of the canonical key (not Python's salted ``hash``), so the partition is
    the same in every process.
    """
    digest = hashlib.blake2b(repr(pair_key(objects, question)).encode(), digest_size=8).digest()
    return "heldout" if int.from_bytes(digest, "little") % HELDOUT_SHARE == 0 else "train"


def _check_split(split):
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, not {split!r}")


def _ask_in(scene: Scene, rng: np.random.Generator, split) -> tuple | None:
    """A question about ``scene`` whose pair belongs to ``split`` (any when None), or None."""
    for _ in range(1 if split is None else _ASK_TRIES):
        kind, words, answer = ask(scene, rng)
        if split is None or key_split(scene.objects, words) == split:
            return kind, words, answer
    return None


def generate(n: int, seed: int, *, split: str | None = None) -> list[Sample]:
    """``n`` samples, deterministic from ``seed`` (one question per scene).

    ``split`` keeps only (layout, question) pairs of that split (``"heldout"`` for the
    evaluation, ``"train"`` for calibration): questions are re-asked, and a scene with no
    such question after a few tries is replaced. ``None`` keeps every pair (the generator
    before the partition; the captured Qwen2-VL fixture used it).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, not {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, not {seed!r}")
    _check_split(split)
    rng = np.random.default_rng(seed)
    samples = []
    while len(samples) < n:
        scene = make_scene(rng)
        asked = _ask_in(scene, rng, split)
        if asked is not None:
            samples.append(Sample(scene, *asked))
    return samples


class Vocabulary:
    """Word-level tokenizer: special tokens first, then every word the task uses."""

    SPECIALS = ("<pad>", "<bos>", "<eos>", "<vision_start>", "<vision_end>", "<image>", "<video>")

    def __init__(self, words):
        self.tokens = list(self.SPECIALS) + sorted(set(words) - set(self.SPECIALS))
        self.ids = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, token: str) -> int:
        if token not in self.ids:
            raise KeyError(f"word {token!r} is not in the vocabulary")
        return self.ids[token]

    def encode(self, words) -> list[int]:
        return [self[w] for w in words]

    def decode(self, ids) -> list[str]:
        return [self.tokens[int(i)] for i in ids]


def _all_words():
    words = {"how", "many", "objects", "are", "there", "?", "what", "color", "is", "the", "shape", "object"}
    words |= {"which", "column", "row", "in", "a", "yes", "no"}
    words |= set(COLORS) | set(SHAPES) | set(PLURAL.values()) | set(COLUMNS) | set(ROWS) | set(NUMBERS)
    return words


VOCAB = Vocabulary(_all_words())
"""The task's vocabulary (fixed; its ids are the model's token ids)."""

PATCH = 8
MERGE = 2
TEMPORAL_PATCH = 2
IMAGE_TOKENS = (IMAGE_SIZE // PATCH // MERGE) ** 2


def to_patches(images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen2-VL pixel layout for ``(B, 48, 48, 3)`` uint8 images.

    Pixels are scaled to ``[-1, 1]``; each ``8 x 8`` patch is flattened as
    ``(channel, temporal, y, x)`` with the still image repeated over the 2 temporal
    slots, and patches are ordered by 2 x 2 merge window (window row, window column,
    row inside, column inside), which is the order Qwen2-VL's vision tower and patch
    merger expect. Returns ``(pixel_values (B*36, 384), image_grid_thw (B, 3))``.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div(127.5).sub(1.0).permute(0, 3, 1, 2)
    B, C, H, W = x.shape
    gh, gw = H // PATCH, W // PATCH
    x = x.reshape(B, C, gh // MERGE, MERGE, PATCH, gw // MERGE, MERGE, PATCH)
    x = x.permute(0, 2, 5, 3, 6, 1, 4, 7)  # B, wh, ww, mh, mw, C, py, px
    x = x.unsqueeze(6).expand(-1, -1, -1, -1, -1, -1, TEMPORAL_PATCH, -1, -1)
    pixel_values = x.reshape(B * gh * gw, C * TEMPORAL_PATCH * PATCH * PATCH)
    grid = torch.tensor([[1, gh, gw]] * B, dtype=torch.int64)
    return pixel_values.contiguous(), grid


def _model_inputs(seqs: list[list[int]], images: list, length: int, vocab: Vocabulary) -> dict:
    """Right-padded token ids of ``length``, their mask, the images' patches and token types."""
    ids = torch.full((len(seqs), length), vocab["<pad>"], dtype=torch.int64)
    mask = torch.zeros((len(seqs), length), dtype=torch.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    pixel_values, grid = to_patches(np.stack(images))
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values": pixel_values,
        "image_grid_thw": grid,
        "mm_token_type_ids": (ids == vocab["<image>"]).to(torch.int64),
    }


def collate(samples: list[Sample], vocab: Vocabulary = VOCAB) -> dict:
    """Model inputs for a batch plus the answer targets.

    Sequences are right-padded; ``answer_index[b]`` is the position whose next-token
    logits must give ``answer[b]``. Returns a dict with ``inputs`` (keyword arguments for
    ``Qwen2VLForConditionalGeneration``), ``answer`` and ``answer_index``.
    """
    prefix = ["<bos>", "<vision_start>"] + ["<image>"] * IMAGE_TOKENS + ["<vision_end>"]
    seqs = [vocab.encode(prefix + list(s.question)) for s in samples]
    inputs = _model_inputs(seqs, [s.scene.image for s in samples], max(len(s) for s in seqs), vocab)
    answer = torch.tensor([vocab[s.answer] for s in samples], dtype=torch.int64)
    answer_index = inputs["attention_mask"].sum(dim=1) - 1
    return {"inputs": inputs, "answer": answer, "answer_index": answer_index}


@dataclass(frozen=True)
class TrainingScene:
    """A scene with several questions, packed into one training sequence."""

    scene: Scene
    questions: tuple[tuple[str, tuple[str, ...], str], ...]


def generate_training(n: int, seed: int, *, questions: int = 4, split: str | None = "train") -> list[TrainingScene]:
    """``n`` scenes with ``questions`` questions each, deterministic from ``seed``.

    Every question's (layout, question) pair belongs to ``split`` (default the training
    split; see :func:`generate`).
    """
    if isinstance(questions, bool) or not isinstance(questions, int) or questions < 1:
        raise ValueError(f"questions must be a positive int, not {questions!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, not {n!r}")
    _check_split(split)
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        scene = make_scene(rng)
        asked = [_ask_in(scene, rng, split) for _ in range(questions)]
        if all(a is not None for a in asked):
            out.append(TrainingScene(scene, tuple(asked)))
    return out


def collate_training(scenes: list[TrainingScene], vocab: Vocabulary = VOCAB) -> dict:
    """Packed training batch: ``image, q1, a1, q2, a2, ..., qk`` per sequence.

    The first question sits exactly where an evaluation sample's question does (the
    prefix of a packed sequence is an evaluation sequence); later questions add supervision
    for the same image at little extra cost. Returns ``inputs``, ``answer`` and
    ``answer_index`` of shape ``(B, k)``.
    """
    prefix = ["<bos>", "<vision_start>"] + ["<image>"] * IMAGE_TOKENS + ["<vision_end>"]
    seqs, positions, targets = [], [], []
    for item in scenes:
        words = list(prefix)
        pos, ans = [], []
        for i, (_kind, question, answer) in enumerate(item.questions):
            words += list(question)
            pos.append(len(words) - 1)
            ans.append(vocab[answer])
            if i + 1 < len(item.questions):
                words.append(answer)
        seqs.append(vocab.encode(words))
        positions.append(pos)
        targets.append(ans)
    # One padded length for every batch: a fixed shape keeps the CPU kernels' set-up cached.
    length = max(len(prefix) + len(scenes[0].questions) * (MAX_QUESTION_WORDS + 1), max(len(s) for s in seqs))
    inputs = _model_inputs(seqs, [item.scene.image for item in scenes], length, vocab)
    return {"inputs": inputs, "answer": torch.tensor(targets), "answer_index": torch.tensor(positions)}
