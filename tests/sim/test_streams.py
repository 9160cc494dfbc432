"""The stream monitor enforces the valid/ready contract on a block's outputs."""

import pytest
from spikemllm.sim.blocks.benches import codecs
from spikemllm.sim.patterns import pattern
from spikemllm.sim.streams import StreamMonitor, StreamProtocolError

from spikemllm.config import SMALL_CONFIG


def test_monitor_catches_a_payload_changing_while_stalled():
    codec = codecs(SMALL_CONFIG)["output"]
    monitor = StreamMonitor("o", codec, 1, pattern("always"))
    monitor.observe(0, 1, 0, 5)
    with pytest.raises(StreamProtocolError, match="payload changed"):
        monitor.observe(1, 1, 1, 6)
    monitor = StreamMonitor("o", codec, 1, pattern("always"))
    monitor.observe(0, 1, 0, 5)
    with pytest.raises(StreamProtocolError, match="valid dropped"):
        monitor.observe(1, 0, 1, 5)
