"""What every accelerator block shares: a configuration checked before the block exists,
and the ``config`` and ``latency`` properties."""

from __future__ import annotations

from amaranth.lib import wiring

from spikemllm.config import AcceleratorConfig

__all__ = ["Block"]


class Block(wiring.Component):
    """Base of the accelerator's components, built from an :class:`AcceleratorConfig`.

    The configuration (and any other constructor parameter a subclass checks in
    :meth:`check_config`) is validated before the component is created, so a refused
    block raises its error alone and leaves no half-built design behind.

    Subclasses set :attr:`LATENCY` (cycles, from :mod:`spikemllm.latency`; ``None`` for a
    block whose timing depends on the data) and pass their signature to ``__init__``.
    """

    LATENCY: int | None = None

    def __new__(cls, *args, config=None, src_loc_at: int = 0, **params):
        cls.check_config(config, **params)
        return super().__new__(cls, *args, config=config, src_loc_at=src_loc_at + 1, **params)

    @classmethod
    def check_config(cls, config, **params) -> None:
        """Raise ``TypeError`` if ``config`` is not an :class:`AcceleratorConfig`; subclasses
        add their own checks (raising ``ValueError`` naming the value)."""
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")

    def __init__(self, signature, *, config: AcceleratorConfig):
        self._config = config
        super().__init__(signature)

    @property
    def config(self) -> AcceleratorConfig:
        return self._config

    @property
    def latency(self) -> int | None:
        """Cycles from an input's handshake to its first output being valid (see the class
        documentation for which input and output); ``None`` if it depends on the data."""
        return self.LATENCY
