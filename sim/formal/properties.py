"""Building blocks of the formal harnesses: free inputs, registered past values, the
valid/ready stream protocol (assumed of inputs, asserted of outputs) and access to a
block's internal registers for inductive invariants.

A harness drives every input of the block under proof from ``$anyseq`` values (the
solver picks them each cycle), so anything the properties do not assume is explored.
Reset is held low: every register starts at its ``init`` value, as after a reset.
"""

from __future__ import annotations

from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Fragment, Module, ResetSignal, Shape, Signal, Value

__all__ = ["hold_reset_low", "free", "past", "StreamIn", "StreamOut", "elaborate_into", "internal", "count_ones"]


def hold_reset_low(m: Module) -> None:
    """No reset during the proof: registers begin at their ``init`` values."""
    m.d.comb += Assume(~ResetSignal())


def free(m: Module, shape, *, name: str) -> Signal:
    """A signal the solver chooses freely in every cycle."""
    sig = Signal(shape, name=name)
    m.d.comb += sig.eq(AnySeq(sig.shape()))
    return sig


def past(m: Module, value, *, name: str) -> Signal:
    """``value`` one cycle ago (its ``init`` of 0 in the first cycle)."""
    value = Value.cast(value)
    sig = Signal(value.shape(), name=name)
    m.d.sync += sig.eq(value)
    return sig


class StreamIn:
    """Drives an input stream of the block from free values, assuming the protocol: once
    ``valid`` is high it stays high with a stable payload until ``ready``.

    ``contract(payload)`` may return a condition every offered payload satisfies (the
    block's input contract); it is assumed whenever ``valid`` is high.
    """

    def __init__(self, m: Module, port, *, name: str, contract=None):
        width = len(port.p.as_value())
        self.valid = free(m, 1, name=f"{name}_valid")
        self.payload = free(m, width, name=f"{name}_payload")
        m.d.comb += [port.valid.eq(self.valid), port.p.eq(self.payload)]
        self.port = port
        self.p = port.p
        self.fire = Signal(name=f"{name}_fire")
        m.d.comb += self.fire.eq(port.valid & port.ready)
        was_valid = past(m, port.valid, name=f"{name}_past_valid")
        was_ready = past(m, port.ready, name=f"{name}_past_ready")
        was_payload = past(m, self.payload, name=f"{name}_past_payload")
        with m.If(was_valid & ~was_ready):
            m.d.comb += Assume(self.valid & (self.payload == was_payload))
        if contract is not None:
            with m.If(self.valid):
                m.d.comb += Assume(contract(port.p))


class StreamOut:
    """Checks an output stream the block drives: ``ready`` is free, and once ``valid`` is
    high it stays high with a stable payload until ``ready`` (asserted).

    ``check=False`` only drives ``ready`` (a harness that proves something else).
    ``drop_valid=True`` is a broken view for testing the flow: the consumer sees
    ``valid`` fall in the cycle after a stall, which the property must report.
    ``withdraw``: a condition under which the block may drop what it offers at the next
    clock edge (the core's abort); the property is not checked in the cycle after it.
    """

    def __init__(self, m: Module, port, *, name: str, drop_valid: bool = False, check: bool = True, withdraw=None):
        self.ready = free(m, 1, name=f"{name}_ready")
        m.d.comb += port.ready.eq(self.ready)
        self.port = port
        self.p = port.p
        self.fire = Signal(name=f"{name}_fire")
        m.d.comb += self.fire.eq(port.valid & port.ready)
        payload = port.p.as_value()
        was_valid = past(m, port.valid, name=f"{name}_past_valid")
        was_ready = past(m, port.ready, name=f"{name}_past_ready")
        was_payload = past(m, payload, name=f"{name}_past_payload")
        stalled = was_valid & ~was_ready
        if withdraw is not None:
            stalled &= ~past(m, withdraw, name=f"{name}_past_withdraw")
        valid = port.valid & ~stalled if drop_valid else port.valid
        with m.If(stalled & check):
            m.d.comb += Assert(valid, f"{name}: valid fell before ready")
            m.d.comb += Assert(payload == was_payload, f"{name}: payload changed before ready")


def elaborate_into(m: Module, name: str, component, platform=None) -> Fragment:
    """Add ``component`` to ``m`` as submodule ``name``, elaborated here so that
    :func:`internal` can find its registers."""
    fragment = Fragment.get(component, platform)
    m.submodules[name] = fragment
    return fragment


def _driven(fragment: Fragment):
    for statements in fragment.statements.values():
        for statement in statements:
            yield from statement._lhs_signals()


def internal(fragment: Fragment, name: str, *, path: tuple[str, ...] = ()) -> Signal:
    """The signal ``name`` driven inside ``fragment`` (or the subfragment at ``path``).

    Used only to state invariants that tie a harness's bookkeeping to the block's state,
    so that k-induction converges; raises ``KeyError`` if there is no such signal, or if
    the name is ambiguous.
    """
    for part in path:
        found = [sub for sub, sub_name, _loc in fragment.subfragments if sub_name == part]
        if len(found) != 1:
            raise KeyError(f"no subfragment {part!r} in {[n for _s, n, _l in fragment.subfragments]}")
        fragment = found[0]
    matches = {id(sig): sig for sig in _driven(fragment) if sig.name == name}
    if len(matches) != 1:
        raise KeyError(f"{len(matches)} signals named {name!r} driven in the fragment (need exactly 1)")
    return next(iter(matches.values()))


def count_ones(bits) -> Value:
    """Number of set bits of ``bits`` (a plain sum: harness logic, not hardware)."""
    bits = Value.cast(bits)
    return sum((bits[n] for n in range(len(bits))), Value.cast(0))
