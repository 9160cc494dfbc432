"""Every block the generator emits, by name: the one list that generation, the testbenches
and the tool flows read.

A block key (``neuron_array``, ``core``, ...) names a component class and the Verilog
module (and file) it is written as. The four pipeline blocks have stream testbenches of
their own; the three cores -- the SpikeCore and the dense baselines -- share the core
testbench and are told apart by :class:`CoreKind`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .compactor import SpikeEventCompactor
from .core import SpikeCore
from .dense_core import DenseFP16Core, DenseInt8Core
from .neuron_array import TCLIFNeuronArray
from .pe_array import SparseAccumulatePEArray
from .registers import CoreKind
from .requantizer import Requantizer

__all__ = ["BlockInfo", "BLOCKS", "PIPELINE_BLOCKS", "CoreKind", "CORES", "core_kind", "check_block", "block_component",
           "block_refusal", "supported_blocks"]


@dataclass(frozen=True)
class BlockInfo:
    """A block of the generator: its Verilog module name and its component class."""

    key: str
    module: str
    component: type

    @property
    def file(self) -> str:
        """The Verilog file the block is written to."""
        return f"{self.module}.v"


BLOCKS = {
    info.key: info
    for info in (
        BlockInfo("neuron_array", "tclif_neuron_array", TCLIFNeuronArray),
        BlockInfo("compactor", "spike_event_compactor", SpikeEventCompactor),
        BlockInfo("pe_array", "sparse_accumulate_pe_array", SparseAccumulatePEArray),
        BlockInfo("requantizer", "requantizer", Requantizer),
        BlockInfo("core", "spike_core", SpikeCore),
        BlockInfo("int8_core", "dense_int8_core", DenseInt8Core),
        BlockInfo("fp16_core", "dense_fp16_core", DenseFP16Core),
    )
}
"""Block key -> :class:`BlockInfo`, in generation order."""

PIPELINE_BLOCKS = ("neuron_array", "compactor", "pe_array", "requantizer")
"""The blocks of the spike pipeline, each verified alone by the stream testbenches."""


CORES = {CoreKind.SPIKE: "core", CoreKind.INT8: "int8_core", CoreKind.FP16: "fp16_core"}
"""Block key of each kind of core."""


def core_kind(block: str) -> CoreKind:
    """The kind of a core's block key; raises ``ValueError`` for a block that is not a core."""
    for kind, key in CORES.items():
        if key == block:
            return kind
    raise ValueError(f"block must be one of {sorted(CORES.values())}, not {block!r}")


def check_block(block: str) -> BlockInfo:
    """The entry of ``block``; raises ``ValueError`` naming an unknown key."""
    if block not in BLOCKS:
        raise ValueError(f"unknown block {block!r}; known: {sorted(BLOCKS)}")
    return BLOCKS[block]


def block_component(block: str, config):
    """A fresh component of ``block`` for ``config``."""
    return check_block(block).component(config=config)


def block_refusal(block: str, config) -> str | None:
    """Why ``block`` cannot be built for ``config`` (the error its constructor would raise),
    or ``None`` if it can: the FP16 baseline needs activations exact in FP16, and the
    standalone neuron array encodes one token at a time (``bundle = 1``), and the
    standalone PE array has the one event stream of its block testbench (``slices = 1``;
    with lane slices it is verified inside the core); every other block takes any valid
    configuration."""
    info = check_block(block)
    try:
        info.component.check_config(config)
    except ValueError as exc:
        return str(exc)
    if block == "pe_array" and config.slices > 1:
        return (f"slices={config.slices}: the standalone PE array is built and verified with one event stream; "
                f"with lane slices it is verified inside the core")
    return None


def supported_blocks(config) -> list[str]:
    """The block keys (in :data:`BLOCKS` order) that can be built for ``config``."""
    return [key for key in BLOCKS if block_refusal(key, config) is None]
