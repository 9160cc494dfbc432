"""Timing models: how many cycles the hardware takes, predicted from its inputs.

* :mod:`.cycle_model` -- exact cycles and beats of each block under ideal streams.
* :mod:`.core_model` -- exact cycles and counters of a whole core (spike and dense) on a run.
* :mod:`.projection` -- projected throughput of full-size MLLMs, too large to simulate.

The block latencies they build on live in :mod:`spikemllm.latency`, which the hardware
blocks read too.
"""
