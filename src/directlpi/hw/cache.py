"""The PEs' data cache, for a GIC whose redistributors do not snoop it.

Arm IHI 0069 lets an implementation access its LPI tables without taking part
in the PEs' coherency (GICR_PROPBASER.Shareability / GICR_PENDBASER.Shareability
fixed as Non-shareable).  Then what the redistributor reads is what is at the
point of coherency, memory itself (:class:`~directlpi.hw.memory.PhysicalMemory`),
and what the PEs see is memory through their write-back data caches.
:class:`CpuDataCache` is that PE view.  The machine builds one when
``MachineConfig.rd_coherent`` is False, shared by every PE because the PEs are
coherent with each other (Inner Shareable); the redistributors keep reading and
writing PhysicalMemory.

The cache line is 64 bytes: software learns it from CTR_EL0.DminLine (log2 of
the number of 4-byte words in the smallest data cache line: 4), as Linux's
``dcache_line_size`` does.  The model has no MMU, so maintenance "by virtual
address" takes the physical addresses the model uses everywhere.  It acts on
every line overlapping the range, as Linux's ``dcache_by_line_op`` does.

Choices this module makes where the architecture allows several (each one
chosen so that a missing cache maintenance operation shows up instead of hiding):

* **No eviction.**  A line stays cached until DC IVAC, DC CIVAC or
  :meth:`CpuDataCache.clean_invalidate_all` drops it, and dirty data reaches
  memory only through DC CVAC / DC CIVAC.  (Real caches evict and write back at
  any time, which would make a missing clean work by luck.)
* **DC IVAC discards dirty data** in the lines it invalidates, including bytes
  of a partial line outside the range.  The architecture permits this, which is
  why Linux cleans and invalidates the partial lines at both ends of a range it
  invalidates.
* **Read-allocate, write-allocate.**  A PE read of a line not in the cache fills
  it from memory, a PE write allocates the line (filling the bytes it does not
  write) and makes it dirty.  So a later redistributor write to memory -- the
  pending table written back when EnableLPIs is cleared -- stays invisible to
  the PE until it invalidates the line, and a dirty line written back later
  overwrites what the redistributor wrote there in the meantime.
* **No speculative fills.**  A line is allocated only by a PE access.  (The
  architecture lets a PE prefetch any cacheable location at any time; not
  modelling that is the one lenient choice: a driver that reads a pending table
  it never read before sees memory even without invalidating first.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Protocol

from directlpi.hw.memory import PA_LIMIT, PhysicalMemory

LINE_SHIFT: Final = 6
LINE_SIZE: Final = 1 << LINE_SHIFT
"""Bytes per data cache line (CTR_EL0.DminLine = 4: 16 words)."""
LINE_MASK: Final = LINE_SIZE - 1

# The same validation, and the same DirectLPIError, as PhysicalMemory's bulk accesses.
_check = PhysicalMemory._check


class CpuMemory(Protocol):
    """What kernel code uses to access RAM: PhysicalMemory itself, or a :class:`CpuDataCache`."""

    def read(self, addr: int, n: int) -> bytes: ...

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None: ...

    def fill(self, addr: int, n: int, byte: int) -> None: ...

    def read_int(self, addr: int, size: int) -> int: ...

    def write_int(self, addr: int, value: int, size: int) -> None: ...

    def read_u8(self, addr: int) -> int: ...


class CpuDataCache:
    """Physical memory as the PEs see it through a write-back data cache nobody else snoops.

    Accesses have the signatures and results of :class:`PhysicalMemory`'s, as a
    PE observes them; they raise the same :class:`~directlpi.errors.DirectLPIError`
    (EFAULT outside the 52-bit physical address space, EINVAL for a negative
    length).  Storage is one 64-byte line per line touched, nothing before.
    """

    __slots__ = ("_dirty", "_lines", "_memory")

    def __init__(self, memory: PhysicalMemory) -> None:
        self._memory = memory
        #: Cached lines by line number (address >> LINE_SHIFT).
        self._lines: dict[int, bytearray] = {}
        #: Line numbers of cached lines written since they were last cleaned (dirty).
        self._dirty: set[int] = set()

    @property
    def memory(self) -> PhysicalMemory:
        """The point of coherency: what the redistributors read and write."""
        return self._memory

    @property
    def cached_bytes(self) -> int:
        """Bytes of memory currently held in the cache (a multiple of the line size)."""
        return len(self._lines) * LINE_SIZE

    def _fill(self, lno: int) -> bytearray:
        """Allocate line ``lno`` from memory (a read miss, or a partial write miss)."""
        line = self._lines[lno] = bytearray(self._memory.read(lno << LINE_SHIFT, LINE_SIZE))
        return line

    # -- PE accesses ------------------------------------------------------------

    def read(self, addr: int, n: int) -> bytes:
        """``n`` bytes from ``addr`` as the PE sees them (allocating every line read)."""
        _check(addr, n)
        out = bytearray()
        lines = self._lines
        end = addr + n
        while addr < end:
            off = addr & LINE_MASK
            chunk = min(end - addr, LINE_SIZE - off)
            line = lines.get(addr >> LINE_SHIFT)
            if line is None:
                line = self._fill(addr >> LINE_SHIFT)
            out += line[off:off + chunk]
            addr += chunk
        return bytes(out)

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` at ``addr`` in the cache; memory sees it only once cleaned."""
        view = memoryview(data if isinstance(data, bytes) else bytes(data))
        _check(addr, len(view))
        lines = self._lines
        dirty = self._dirty
        pos = 0
        while pos < len(view):
            off = addr & LINE_MASK
            chunk = min(len(view) - pos, LINE_SIZE - off)
            lno = addr >> LINE_SHIFT
            line = lines.get(lno)
            if line is None and chunk == LINE_SIZE:
                lines[lno] = bytearray(view[pos:pos + chunk])   # a whole line: nothing to fetch
            else:
                if line is None:
                    line = self._fill(lno)
                line[off:off + chunk] = view[pos:pos + chunk]
            dirty.add(lno)
            addr += chunk
            pos += chunk

    def fill(self, addr: int, n: int, byte: int) -> None:
        """Set ``n`` bytes at ``addr`` to ``byte`` in the cache."""
        _check(addr, n)
        self.write(addr, bytes((byte & 0xFF,)) * n)

    def read_int(self, addr: int, size: int) -> int:
        """Little-endian unsigned integer of ``size`` bytes at ``addr``, as the PE sees it."""
        off = addr & LINE_MASK
        if off + size <= LINE_SIZE and 0 <= addr < PA_LIMIT:
            line = self._lines.get(addr >> LINE_SHIFT)
            if line is None:
                line = self._fill(addr >> LINE_SHIFT)
            return int.from_bytes(line[off:off + size], "little")
        return int.from_bytes(self.read(addr, size), "little")

    def write_int(self, addr: int, value: int, size: int) -> None:
        """Store the low ``size`` bytes of ``value`` at ``addr``, little-endian, in the cache."""
        value &= (1 << (size * 8)) - 1
        off = addr & LINE_MASK
        if off + size <= LINE_SIZE and 0 <= addr < PA_LIMIT:
            lno = addr >> LINE_SHIFT
            line = self._lines.get(lno)
            if line is None:
                line = self._fill(lno)
            line[off:off + size] = value.to_bytes(size, "little")
            self._dirty.add(lno)
            return
        self.write(addr, value.to_bytes(size, "little"))

    def read_u8(self, addr: int) -> int:
        """The byte at ``addr``, as the PE sees it."""
        line = self._lines.get(addr >> LINE_SHIFT)
        if line is None:
            _check(addr, 1)
            line = self._fill(addr >> LINE_SHIFT)
        return line[addr & LINE_MASK]

    # -- cache maintenance by address (DC CVAC, DC IVAC, DC CIVAC) ----------------

    def clean(self, addr: int, n: int) -> None:
        """DC CVAC over ``[addr, addr + n)``: write dirty lines back; they stay cached, clean."""
        _check(addr, n)
        self._write_back(self._in_range(self._dirty, addr, n))

    def invalidate(self, addr: int, n: int) -> None:
        """DC IVAC over ``[addr, addr + n)``: drop the lines, discarding dirty data in them."""
        _check(addr, n)
        lines = self._lines
        dirty = self._dirty
        for lno in self._in_range(lines, addr, n):
            del lines[lno]
            dirty.discard(lno)

    def clean_invalidate(self, addr: int, n: int) -> None:
        """DC CIVAC over ``[addr, addr + n)``: write dirty lines back, then drop the lines."""
        self.clean(addr, n)
        self.invalidate(addr, n)

    def clean_invalidate_all(self) -> None:
        """Write every dirty line back and empty the cache.

        The stand-in for the cache maintenance before a kexec'd kernel starts:
        the next kernel begins with memory up to date and nothing cached.
        """
        self._write_back(sorted(self._dirty))
        self._lines.clear()

    def _in_range(self, held: set[int] | dict[int, bytearray], addr: int, n: int) -> list[int]:
        """Line numbers in ``held`` that overlap ``[addr, addr + n)``, ascending."""
        if n == 0 or not held:
            return []
        first = addr >> LINE_SHIFT
        last = (addr + n - 1) >> LINE_SHIFT
        if last - first < len(held):
            return [lno for lno in range(first, last + 1) if lno in held]
        return sorted(lno for lno in held if first <= lno <= last)

    def _write_back(self, lnos: Iterable[int]) -> None:
        """Copy dirty lines ``lnos`` (ascending) to memory, contiguous lines in one write."""
        lines = self._lines
        dirty = self._dirty
        memory = self._memory
        run: list[bytearray] = []
        start = nxt = -1
        for lno in lnos:
            if lno != nxt and run:
                memory.write(start << LINE_SHIFT, b"".join(run))
                run = []
            if not run:
                start = lno
            run.append(lines[lno])
            dirty.discard(lno)
            nxt = lno + 1
        if run:
            memory.write(start << LINE_SHIFT, b"".join(run))

