"""The SpikeCore on FPGA boards: a UART host link (:mod:`.protocol`, :mod:`.uart`,
:mod:`.bridge`) and board top levels from ``amaranth-boards`` platforms (:mod:`.top`)."""
