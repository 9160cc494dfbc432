"""Pack and unpack stream payloads between Python values and the flat integers on a port.

Amaranth emits a stream's payload as one flat Verilog port (``i__payload``); the layouts
in :mod:`spikemllm.hw.signatures` say where every field sits. :class:`PayloadCodec`
compiles a layout once into ``(path, offset, width, signed)`` leaves so that testbenches
(cocotb and ``amaranth.sim`` alike) move payloads as plain dicts, lists and ints:

* a :class:`~amaranth.lib.data.StructLayout` is a ``dict`` of its fields;
* an :class:`~amaranth.lib.data.ArrayLayout` is a ``list``;
* a plain shape is an ``int`` (negative for signed fields).
"""

from __future__ import annotations

from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["PayloadCodec"]


class PayloadCodec:
    """Converts between nested Python values and the flat payload integer of ``layout``."""

    def __init__(self, layout):
        self.layout = layout
        self.width = Shape.cast(layout).width

    def pack(self, value) -> int:
        """Flat integer of ``value``; raises ``ValueError`` naming a field that does not fit."""
        return self._pack(self.layout, value, 0, "payload")

    def unpack(self, bits: int):
        """Nested value of the flat integer ``bits``."""
        return self._unpack(self.layout, int(bits), 0)

    def _pack(self, shape, value, offset, path):
        if isinstance(shape, data.StructLayout):
            if not isinstance(value, dict):
                raise TypeError(f"{path} must be a dict, not {value!r}")
            extra = set(value) - {name for name, _ in shape}
            if extra:
                raise ValueError(f"{path} has unknown fields {sorted(extra)}")
            bits = 0
            for name, field in shape:
                bits |= self._pack(field.shape, value.get(name, 0), offset + field.offset, f"{path}.{name}")
            return bits
        if isinstance(shape, data.ArrayLayout):
            value = list(value)
            if len(value) != shape.length:
                raise ValueError(f"{path} must have {shape.length} elements, not {len(value)}")
            stride = Shape.cast(shape.elem_shape).width
            bits = 0
            for n, v in enumerate(value):
                bits |= self._pack(shape.elem_shape, v, offset + n * stride, f"{path}[{n}]")
            return bits
        s = Shape.cast(shape)
        v = int(value)
        low, high = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)
        if not low <= v <= high:
            raise ValueError(f"{path} = {v} does not fit {s!r}")
        return (v & ((1 << s.width) - 1)) << offset

    def _unpack(self, shape, bits, offset):
        if isinstance(shape, data.StructLayout):
            return {name: self._unpack(field.shape, bits, offset + field.offset) for name, field in shape}
        if isinstance(shape, data.ArrayLayout):
            stride = Shape.cast(shape.elem_shape).width
            return [self._unpack(shape.elem_shape, bits, offset + n * stride) for n in range(shape.length)]
        s = Shape.cast(shape)
        v = (bits >> offset) & ((1 << s.width) - 1)
        if s.signed and v >> (s.width - 1):
            v -= 1 << s.width
        return v
