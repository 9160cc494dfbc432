"""Tiny Qwen2-VL and InternVL models built from configs, with matching input batches."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

IMAGE, VIDEO, V_START, V_END = 5, 6, 3, 4


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


def qwen2vl_config():
    from transformers import Qwen2VLConfig

    return Qwen2VLConfig(
        text_config=dict(
            vocab_size=48, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]},
            bos_token_id=1, eos_token_id=2, pad_token_id=0,
        ),
        vision_config=dict(
            depth=2, embed_dim=32, hidden_size=32, num_heads=4, mlp_ratio=2, patch_size=4,
            spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
        ),
        image_token_id=IMAGE, video_token_id=VIDEO, vision_start_token_id=V_START, vision_end_token_id=V_END,
    )


@pytest.fixture(scope="session")
def qwen2vl():
    from transformers import Qwen2VLForConditionalGeneration

    torch.manual_seed(0)
    return Qwen2VLForConditionalGeneration(qwen2vl_config()).eval()


@pytest.fixture(scope="session")
def qwen2vl_batch():
    """Two samples: 4 image tokens (8x8 patches grid of 4x4 merged 2x2) and differing text."""
    g = torch.Generator().manual_seed(1)
    text = [[10, 11, 12, 13, 14], [20, 21, 22, 0, 0]]
    ids, mask = [], []
    for t in text:
        real = [x for x in t if x]
        row = [1, V_START] + [IMAGE] * 4 + [V_END] + real
        pad = 12 - len(row)
        ids.append(row + [0] * pad)
        mask.append([1] * len(row) + [0] * pad)
    ids = torch.tensor(ids)
    return {
        "input_ids": ids,
        "attention_mask": torch.tensor(mask),
        "pixel_values": torch.randn(2 * 16, 3 * 2 * 4 * 4, generator=g),
        "image_grid_thw": torch.tensor([[1, 4, 4], [1, 4, 4]]),
        "mm_token_type_ids": (ids == IMAGE).long(),
    }


def internvl_config():
    from transformers import InternVLConfig

    return InternVLConfig(
        vision_config=dict(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            image_size=(16, 16), patch_size=(4, 4),
        ),
        text_config=dict(
            model_type="qwen2", vocab_size=48, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            pad_token_id=0, bos_token_id=1, eos_token_id=2,
        ),
        image_token_id=IMAGE, image_seq_length=4, downsample_ratio=0.5,
    )


@pytest.fixture(scope="session")
def internvl():
    from transformers import InternVLForConditionalGeneration

    torch.manual_seed(0)
    return InternVLForConditionalGeneration(internvl_config()).eval()


@pytest.fixture(scope="session")
def internvl_batch():
    g = torch.Generator().manual_seed(2)
    ids = torch.tensor([[1] + [IMAGE] * 4 + [10, 11, 12], [1] + [IMAGE] * 4 + [20, 21, 22]])
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "pixel_values": torch.randn(2, 3, 16, 16, generator=g),
    }
