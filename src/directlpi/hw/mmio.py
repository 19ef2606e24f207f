"""One dispatcher per MMIO frame, built from the register map.

A frame class names its register namespace (:mod:`directlpi.hw.regs`) and
implements small handlers found by register name: ``_r_<ATTR>`` to read and
``_w_<ATTR>`` to write, where ``<ATTR>`` is the namespace attribute (``CTLR``,
``SETLPIR``, ``IPRIORITYR``).  Array handlers take the element index first.

From those, :class:`MmioFrame` builds, once per frame class and feature set, two
dicts keyed by ``offset << 4 | size``: every architecturally supported access
(natural width; either 32-bit half of a 64-bit register; bytes of a
byte-accessible register) maps to a function.  Everything else -- reserved
offsets, unsupported widths, misalignment -- misses the table and takes the one
explicit default: RAZ/WI plus a recorded ``BAD_ACCESS`` event.  So do writes to
RO registers and reads of WO registers, explicitly.

Partial accesses are composed here, never in handlers: a 32-bit write to half of
a 64-bit RW register is a read-modify-write of the whole register; to a WO
register it is the whole-register write of the zero-extended value (which is how
a 32-bit GICR_SETLPIR write is zero-extended).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, ClassVar

from directlpi.hw.events import Event, EventHub, EventKind
from directlpi.hw.regs import Access, Reg, registers

Reader = Callable[[Any], int]
Writer = Callable[[Any, int], None]
Tables = tuple[dict[int, Reader], dict[int, Writer], dict[int, tuple[Reg, int]]]

_TABLE_CACHE: dict[tuple[type, Hashable], Tables] = {}


def _raz(self: Any) -> int:
    return 0


def _wi(self: Any, value: int) -> None:
    return None


class MmioFrame:
    """Base of every MMIO frame: ``read(offset, size)`` and ``write(offset, value, size)``."""

    __slots__ = ("_hub", "_rtab", "_words", "_wtab", "frame_name")

    #: The register namespace class (e.g. :class:`~directlpi.hw.regs.GICD`).
    REGISTERS: ClassVar[type]

    def __init__(self, name: str, hub: EventHub) -> None:
        self.frame_name = name
        self._hub = hub
        key = (type(self), self._table_key())
        tables = _TABLE_CACHE.get(key)
        if tables is None:
            tables = self._build_tables()
            _TABLE_CACHE[key] = tables
        self._rtab, self._wtab, self._words = tables

    # -- configuration hooks for subclasses -------------------------------

    def _table_key(self) -> Hashable:
        """Everything that changes which registers exist (features, array sizes)."""
        return ()

    def _has_feature(self, feature: str) -> bool:
        return not feature

    def _indices(self, attr: str, reg: Reg) -> range:
        """Implemented elements of array ``reg`` (all by default)."""
        return range(reg.count)

    def _raz_indices(self, attr: str, reg: Reg) -> range:
        """Elements that exist architecturally but are RAZ/WI in this configuration."""
        return range(0)

    # -- the two entry points ---------------------------------------------

    def read(self, offset: int, size: int) -> int:
        """Read ``size`` bytes at ``offset``; never raises (RAZ on a bad access)."""
        fn = self._rtab.get((offset << 4) | size)
        if fn is None:
            self._bad_access(offset, size, None)
            return 0
        return fn(self)

    def write(self, offset: int, value: int, size: int) -> None:
        """Write ``size`` bytes at ``offset``; never raises (WI on a bad access)."""
        fn = self._wtab.get((offset << 4) | size)
        if fn is None:
            self._bad_access(offset, size, value)
            return
        fn(self, value)

    def implements_write(self, offset: int, size: int) -> bool:
        """Whether a ``size``-byte write at ``offset`` is an architected access here."""
        return ((offset << 4) | size) in self._wtab

    # -- failure paths ------------------------------------------------------

    def _describe(self, offset: int) -> str:
        hit = self._words.get(offset & ~3)
        if hit is None:
            return f"reserved offset {offset:#x}"
        reg, n = hit
        name = reg.name if reg.count == 1 else f"{reg.name}{n}"
        return f"{name} (offset {offset:#x})"

    def _bad_access(self, offset: int, size: int, value: int | None) -> None:
        what = self._describe(offset)
        if value is None:
            detail = f"{size}-byte read of {what}: not an architected access; reads as zero"
        else:
            detail = (f"{size}-byte write of {value:#x} to {what}: not an architected access; "
                      "ignored")
        if not what.startswith("reserved"):
            if size not in (1, 2, 4, 8):
                reason = "bad-size"
            elif offset % size:
                reason = "misaligned"
            else:
                reason = "unsupported-width"
        else:
            reason = "reserved"
        self._hub.report(Event(EventKind.BAD_ACCESS, self.frame_name, addr=offset,
                               value=-1 if value is None else value, reason=reason,
                               detail=detail))

    def _ro_write(self, reg: Reg, n: int) -> Writer:
        def write_to_ro(self: MmioFrame, value: int) -> None:
            self._hub.report(Event(
                EventKind.BAD_ACCESS, self.frame_name, addr=reg.at(n), value=value,
                reason="write-to-ro",
                detail=f"write of {value:#x} to read-only {reg.name}: ignored"))
        return write_to_ro

    def _wo_read(self, reg: Reg, n: int) -> Reader:
        def read_of_wo(self: MmioFrame) -> int:
            self._hub.report(Event(
                EventKind.BAD_ACCESS, self.frame_name, addr=reg.at(n), reason="read-of-wo",
                detail=f"read of write-only {reg.name}: reads as zero"))
            return 0
        return read_of_wo

    # -- table construction -------------------------------------------------

    def _build_tables(self) -> Tables:
        rtab: dict[int, Reader] = {}
        wtab: dict[int, Writer] = {}
        words: dict[int, tuple[Reg, int]] = {}
        cls = type(self)
        for attr, reg in self._declared():
            if not self._has_feature(reg.feature):
                continue
            raz = set(self._raz_indices(attr, reg))
            elements = range(1) if reg.count == 1 else self._indices(attr, reg)
            for n in sorted(set(elements) | raz):
                for w in range(0, reg.size, 4):
                    words[reg.at(n) + w] = (reg, n)
                if reg.access is Access.RAZ_WI or n in raz:
                    reader: Reader = _raz
                    writer: Writer = _wi
                else:
                    reader, writer = self._handlers(cls, attr, reg, n)
                self._add_accesses(rtab, wtab, reg, n, reader, writer)
        return rtab, wtab, words

    def _declared(self) -> list[tuple[str, Reg]]:
        ns = self.REGISTERS
        by_reg = {id(v): k for k, v in vars(ns).items() if isinstance(v, Reg)}
        return [(by_reg[id(r)], r) for r in registers(ns)]

    def _handlers(self, cls: type, attr: str, reg: Reg, n: int) -> tuple[Reader, Writer]:
        r = getattr(cls, "_r_" + attr, None)
        w = getattr(cls, "_w_" + attr, None)
        array = reg.count > 1
        if reg.access is Access.WO:
            reader = self._wo_read(reg, n)
        elif r is None:
            raise TypeError(f"{cls.__name__} lacks _r_{attr} for {reg.name}")
        else:
            reader = _bind_index_reader(r, n) if array else r
        if reg.access is Access.RO:
            writer = self._ro_write(reg, n)
        elif w is None:
            raise TypeError(f"{cls.__name__} lacks _w_{attr} for {reg.name}")
        else:
            writer = _bind_index_writer(w, n) if array else w
        return reader, writer

    @staticmethod
    def _add_accesses(rtab: dict[int, Reader], wtab: dict[int, Writer], reg: Reg, n: int,
                      reader: Reader, writer: Writer) -> None:
        base = reg.at(n)
        size = reg.size
        rtab[(base << 4) | size] = reader
        wtab[(base << 4) | size] = writer
        parts: list[tuple[int, int]] = []
        if size == 8:
            parts += [(0, 4), (4, 4)]
        if reg.byte_access:
            parts += [(i, 1) for i in range(size)]
        rmw = reg.access in (Access.RW, Access.RAZ_WI)
        for sub, width in parts:
            shift = sub * 8
            mask = (1 << (width * 8)) - 1
            rtab[((base + sub) << 4) | width] = _part_reader(reader, shift, mask)
            wtab[((base + sub) << 4) | width] = (
                _part_rmw_writer(reader, writer, shift, mask) if rmw
                else _part_writer(writer, shift, mask))


# Closures that adapt one handler to one table entry.  An array element's index
# is bound here; partial accesses are composed here (see the module docstring).

def _bind_index_reader(r: Callable[[Any, int], int], n: int) -> Reader:
    def read(self: Any) -> int:
        return r(self, n)
    return read


def _bind_index_writer(w: Callable[[Any, int, int], None], n: int) -> Writer:
    def write(self: Any, value: int) -> None:
        w(self, n, value)
    return write


def _part_reader(reader: Reader, shift: int, mask: int) -> Reader:
    def read(self: Any) -> int:
        return (reader(self) >> shift) & mask
    return read


def _part_rmw_writer(reader: Reader, writer: Writer, shift: int, mask: int) -> Writer:
    def write(self: Any, value: int) -> None:
        writer(self, (reader(self) & ~(mask << shift)) | ((value & mask) << shift))
    return write


def _part_writer(writer: Writer, shift: int, mask: int) -> Writer:
    def write(self: Any, value: int) -> None:
        writer(self, (value & mask) << shift)
    return write
