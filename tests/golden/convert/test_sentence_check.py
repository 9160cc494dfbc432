"""The packaged pretrained MiniLM converted the same way: embeddings stay close to float."""

from __future__ import annotations

import torch
from spikemllm.golden.convert.model import convert_model, discover_layers
from spikemllm.golden.convert.schedule import uniform_schedule
from spikemllm.golden.convert.sentence_check import minilm_similarity, sentence_embeddings
from spikemllm.golden.real_data import SENTENCES, load_minilm


def test_minilm_spike_embeddings_track_the_float_model():
    result = minilm_similarity(timesteps=(3, 7), sentences=SENTENCES[:4])
    assert result["7"]["min"] > 0.99
    assert result["3"]["mean"] < result["7"]["mean"]


def test_minilm_spike_path_equals_fake_quant():
    model, tokenizer = load_minilm()
    schedule = uniform_schedule(discover_layers(model), text=4)
    spike = sentence_embeddings(convert_model(model, schedule, kind="spike"), tokenizer, SENTENCES[:3])
    fake = sentence_embeddings(convert_model(model, schedule, kind="fake_quant"), tokenizer, SENTENCES[:3])
    assert torch.equal(spike, fake)
