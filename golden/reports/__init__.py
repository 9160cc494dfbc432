"""Command-line reports of the golden model (entry points, not library code).

* :mod:`.demo` -- ``make demo``: the golden core on a real pretrained layer.
* :mod:`.bench` -- ``make bench-golden``: ``spike_linear`` against a float matmul.
* :mod:`.plots` -- ``make plots``: spike rasters and events per value.
"""
