"""Formal harnesses: the blocks and the core wrapped with assumptions about their inputs
and assertions about their outputs, proved with SymbiYosys by :mod:`spikemllm.flow.formal`.

* :mod:`.properties` -- free inputs, past values, the stream protocol (assumed of inputs,
  asserted of outputs), access to a block's registers for invariants.
* :mod:`.blocks` -- the four pipeline blocks: stream protocol, conservation, no overflow.
* :mod:`.core` -- the SpikeCore: stream protocol of ``o``, refused operations.
"""
