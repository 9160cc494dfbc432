"""Pack and unpack stream payloads between Python values and the flat integers on a port.

Amaranth emits a stream's payload as one flat Verilog port (``i__payload``); the layouts
in :mod:`spikemllm.hw.signatures` say where every field sits. :class:`PayloadCodec`
compiles a layout once into packers and unpackers of its fields so that testbenches
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
    """Converts between nested Python values and the flat payload integer of ``layout``.

    The layout is compiled once into nested packers and unpackers (a plain shape's range
    and mask, an array's stride, a struct's field offsets), so that a beat costs a few
    integer operations per field: testbenches pack every beat of every weight row and
    token they stream.
    """

    def __init__(self, layout):
        self.layout = layout
        self.width = Shape.cast(layout).width
        self._packer = _packer(layout)
        self._unpacker = _unpacker(layout)

    def pack(self, value) -> int:
        """Flat integer of ``value``; raises ``ValueError`` naming a field that does not fit."""
        return self._packer(value, 0, "payload")

    def unpack(self, bits: int):
        """Nested value of the flat integer ``bits``."""
        return self._unpacker(int(bits), 0)


def _plain(shape) -> tuple[Shape, int, int, int]:
    s = Shape.cast(shape)
    low, high = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)
    return s, low, high, (1 << s.width) - 1


def _packer(shape):
    """``pack(value, offset, path) -> int`` for ``shape`` (``path`` names the value in errors)."""
    if isinstance(shape, data.StructLayout):
        fields = [(name, _packer(field.shape), field.offset) for name, field in shape]
        names = {name for name, _, _ in fields}

        def pack_struct(value, offset, path):
            if not isinstance(value, dict):
                raise TypeError(f"{path} must be a dict, not {value!r}")
            if not names.issuperset(value):
                raise ValueError(f"{path} has unknown fields {sorted(set(value) - names)}")
            bits = 0
            for name, pack, field_offset in fields:
                bits |= pack(value.get(name, 0), offset + field_offset, f"{path}.{name}")
            return bits

        return pack_struct
    if isinstance(shape, data.ArrayLayout):
        length, stride = shape.length, Shape.cast(shape.elem_shape).width
        if isinstance(shape.elem_shape, (data.StructLayout, data.ArrayLayout)):
            pack_elem = _packer(shape.elem_shape)

            def pack_array(value, offset, path):
                value = list(value)
                if len(value) != length:
                    raise ValueError(f"{path} must have {length} elements, not {len(value)}")
                bits = 0
                for n, v in enumerate(value):
                    bits |= pack_elem(v, offset + n * stride, f"{path}[{n}]")
                return bits

            return pack_array
        s, low, high, mask = _plain(shape.elem_shape)

        def pack_plain_array(value, offset, path):
            value = [int(v) for v in value]
            if len(value) != length:
                raise ValueError(f"{path} must have {length} elements, not {len(value)}")
            if min(value) < low or max(value) > high:
                n, v = next((n, v) for n, v in enumerate(value) if not low <= v <= high)
                raise ValueError(f"{path}[{n}] = {v} does not fit {s!r}")
            bits = 0
            for v in reversed(value):
                bits = (bits << stride) | (v & mask)
            return bits << offset

        return pack_plain_array
    s, low, high, mask = _plain(shape)

    def pack_plain(value, offset, path):
        v = int(value)
        if not low <= v <= high:
            raise ValueError(f"{path} = {v} does not fit {s!r}")
        return (v & mask) << offset

    return pack_plain


def _unpacker(shape):
    """``unpack(bits, offset) -> value`` for ``shape``."""
    if isinstance(shape, data.StructLayout):
        fields = [(name, _unpacker(field.shape), field.offset) for name, field in shape]
        return lambda bits, offset: {name: unpack(bits, offset + at) for name, unpack, at in fields}
    if isinstance(shape, data.ArrayLayout):
        stride, length = Shape.cast(shape.elem_shape).width, shape.length
        if isinstance(shape.elem_shape, (data.StructLayout, data.ArrayLayout)):
            unpack_elem = _unpacker(shape.elem_shape)
            return lambda bits, offset: [unpack_elem(bits, offset + n * stride) for n in range(length)]
        mask, sign = _sign(shape.elem_shape)

        def unpack_plain_array(bits, offset):
            bits >>= offset
            values = []
            for _ in range(length):
                v = bits & mask
                values.append(v - (sign << 1) if v & sign else v)
                bits >>= stride
            return values

        return unpack_plain_array
    mask, sign = _sign(shape)

    def unpack_plain(bits, offset):
        v = (bits >> offset) & mask
        return v - (sign << 1) if v & sign else v

    return unpack_plain


def _sign(shape) -> tuple[int, int]:
    """Mask of a plain shape's bits and its sign bit (0 when unsigned)."""
    s = Shape.cast(shape)
    return (1 << s.width) - 1, (1 << (s.width - 1)) if s.signed else 0
