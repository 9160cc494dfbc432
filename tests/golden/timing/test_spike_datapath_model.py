"""The packing rule and the stepped datapath model: properties any spike-vector stream
must satisfy, and the timing the model gives from first principles."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spikemllm.golden.timing.spike_datapath import (
    SpikeDatapathModel,
    SpikeVectorCount,
    pack,
    run_back_to_back,
    run_tile,
    vector_counts,
)

from spikemllm.latency import COMPACTOR_DEPTH, COMPACTOR_LATENCY


@st.composite
def streams(draw):
    """Tiles of whole steps; spike counts from empty to full; ``more`` on some tile ends."""
    lanes = draw(st.sampled_from([4, 8, 16]))
    vectors = []
    tiles = draw(st.integers(1, 4))
    for tile in range(tiles):
        chunks, steps = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        counts = draw(st.lists(st.one_of(st.just(0), st.integers(0, lanes)), min_size=chunks * steps,
                               max_size=chunks * steps))
        vectors += vector_counts(counts, chunks, more=tile < tiles - 1 and draw(st.booleans()))
    return vectors


@settings(max_examples=300, deadline=None)
@given(vectors=streams(), E=st.integers(1, 8))
def test_packing_keeps_every_event_and_every_boundary(vectors, E):
    beats = pack(vectors, E)
    assert sum(b.events for b in beats) == sum(v.nonzero for v in vectors)
    assert all(0 <= b.events <= E and 0 <= b.split <= b.events for b in beats)
    # one boundary per beat, as many as step ends, the tile ends in the same order
    assert [b.last for b in beats if b.boundary] == [v.last for v in vectors if v.step_end]
    assert all(not b.last for b in beats if not b.boundary)
    kept = [v for v in vectors if v.kept]
    head = 0
    for b in beats:
        window = kept[head:head + 2]
        if b.events < E:  # a beat is full unless the rule stops it
            stopped = (
                b.pops == 2  # both vectors of the window used up
                or (window[0].last and not window[0].more)  # the tile's end, nothing follows
                or (b.pops == 1 and len(window) > 1 and window[1].step_end and b.next_offset == window[1].nonzero)
            )
            assert stopped, (b, window)
        head += b.pops
    assert head == len(kept)


def test_empty_vectors_cost_no_beat():
    V = SpikeVectorCount
    # 3 events spread over 6 vectors, 4 of them empty: two beats at E = 2
    vectors = [V(1), V(0), V(0), V(1), V(0), V(1, True, True)]
    assert [b.events for b in pack(vectors, 2)] == [2, 1]


def test_one_tile_from_an_empty_datapath():
    # one vector of E events: issue, activation read, spike register, FIFO, plan, select
    # (COMPACTOR_LATENCY after the handshake), PE array read, sums and accumulate
    run = run_tile([SpikeVectorCount(2, True, True)], 2)
    assert run.final_valid == 3 + COMPACTOR_LATENCY + 3
    assert (run.beats, run.active, run.events) == (1, 1, 2)


def test_the_fifo_lets_the_neuron_stage_run_ahead():
    # a dense step (8 beats per vector at E = 1) ahead of a sparse one: the neuron stage
    # issues the whole tile while the compactor works, up to the FIFO's depth
    dense = [8] * COMPACTOR_DEPTH
    model = SpikeDatapathModel(1)
    model.tick(begin=vector_counts(dense + [0] * 8, COMPACTOR_DEPTH))
    finished_at = None
    while finished_at is None:
        model.tick()
        if model.finished:
            finished_at = model.cycle
    assert finished_at < sum(dense)


def test_back_to_back_tiles_share_beats():
    tile = vector_counts([1], 1)
    # two one-event tiles at E = 2: the second tile's event joins the first tile's beat
    alone = run_tile(tile, 2).final_valid
    assert run_back_to_back([tile, tile], 2) < 2 * alone
    with pytest.raises(ValueError):
        run_back_to_back([], 2)
