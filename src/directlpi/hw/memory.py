"""Sparse physical memory.

The whole 52-bit physical address space reads as zero until written.  Storage is
allocated one 4 KiB page at a time, on first write of a non-zero value, so a
512-CPU platform with 24-bit LPI tables costs only what software touched.
Multi-byte values are little-endian, as the GIC's tables are.

This is the backing store; the bus (:mod:`directlpi.hw.bus`) decides which
physical addresses are RAM.  The redistributors read and write their LPI tables
here directly, as the GIC's own memory port would.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Final

from directlpi.errors import DirectLPIError

PAGE_SHIFT: Final = 12
PAGE_SIZE: Final = 1 << PAGE_SHIFT
PAGE_MASK: Final = PAGE_SIZE - 1
PA_BITS: Final = 52
PA_LIMIT: Final = 1 << PA_BITS

_ZERO_PAGE: Final = bytes(PAGE_SIZE)


class PhysicalMemory:
    """Byte-addressed, little-endian, sparse memory of ``2**52`` bytes."""

    __slots__ = ("_pages",)

    def __init__(self) -> None:
        self._pages: dict[int, bytearray] = {}

    # -- validation (failure path only) --------------------------------------

    @staticmethod
    def _check(addr: int, n: int) -> None:
        if not isinstance(addr, int) or not isinstance(n, int):
            raise DirectLPIError("physical addresses and lengths are integers", errno.EINVAL)
        if n < 0:
            raise DirectLPIError(f"negative length {n}", errno.EINVAL)
        if addr < 0 or addr + n > PA_LIMIT:
            raise DirectLPIError(
                f"physical range {addr:#x}+{n:#x} lies outside the {PA_BITS}-bit physical "
                "address space", errno.EFAULT)

    # -- bulk access -----------------------------------------------------------

    def read(self, addr: int, n: int) -> bytes:
        """``n`` bytes from ``addr`` (zeros where never written)."""
        self._check(addr, n)
        out = bytearray()
        pages = self._pages
        while n > 0:
            off = addr & PAGE_MASK
            chunk = min(n, PAGE_SIZE - off)
            page = pages.get(addr >> PAGE_SHIFT)
            out += page[off:off + chunk] if page is not None else _ZERO_PAGE[:chunk]
            addr += chunk
            n -= chunk
        return bytes(out)

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        """Copy ``data`` to ``addr``.  Writing zeros to untouched pages allocates nothing."""
        view = memoryview(bytes(data)) if not isinstance(data, bytes) else memoryview(data)
        self._check(addr, len(view))
        pages = self._pages
        pos = 0
        while pos < len(view):
            off = addr & PAGE_MASK
            chunk = min(len(view) - pos, PAGE_SIZE - off)
            piece = view[pos:pos + chunk]
            pno = addr >> PAGE_SHIFT
            page = pages.get(pno)
            if page is None:
                if not any(piece):
                    addr += chunk
                    pos += chunk
                    continue
                page = pages[pno] = bytearray(PAGE_SIZE)
            page[off:off + chunk] = piece
            addr += chunk
            pos += chunk

    def fill(self, addr: int, n: int, byte: int) -> None:
        """Set ``n`` bytes at ``addr`` to ``byte`` (zero-filling frees whole pages)."""
        self._check(addr, n)
        byte &= 0xFF
        pages = self._pages
        while n > 0:
            off = addr & PAGE_MASK
            chunk = min(n, PAGE_SIZE - off)
            pno = addr >> PAGE_SHIFT
            if byte == 0 and chunk == PAGE_SIZE:
                pages.pop(pno, None)
            else:
                page = pages.get(pno)
                if page is None:
                    if byte == 0:
                        addr += chunk
                        n -= chunk
                        continue
                    page = pages[pno] = bytearray(PAGE_SIZE)
                page[off:off + chunk] = bytes((byte,)) * chunk
            addr += chunk
            n -= chunk

    # -- scalar access (hot paths use these) -----------------------------------

    def read_int(self, addr: int, size: int) -> int:
        """Little-endian unsigned integer of ``size`` bytes at ``addr``."""
        off = addr & PAGE_MASK
        if off + size <= PAGE_SIZE and 0 <= addr < PA_LIMIT:
            page = self._pages.get(addr >> PAGE_SHIFT)
            if page is None:
                return 0
            return int.from_bytes(page[off:off + size], "little")
        return int.from_bytes(self.read(addr, size), "little")

    def write_int(self, addr: int, value: int, size: int) -> None:
        """Store the low ``size`` bytes of ``value`` at ``addr``, little-endian."""
        value &= (1 << (size * 8)) - 1
        off = addr & PAGE_MASK
        if off + size <= PAGE_SIZE and 0 <= addr < PA_LIMIT:
            pno = addr >> PAGE_SHIFT
            page = self._pages.get(pno)
            if page is None:
                if not value:
                    return
                page = self._pages[pno] = bytearray(PAGE_SIZE)
            page[off:off + size] = value.to_bytes(size, "little")
            return
        self.write(addr, value.to_bytes(size, "little"))

    def read_u8(self, addr: int) -> int:
        page = self._pages.get(addr >> PAGE_SHIFT)
        return 0 if page is None else page[addr & PAGE_MASK]

    # -- introspection ----------------------------------------------------------

    @property
    def allocated_bytes(self) -> int:
        """Bytes of storage actually allocated (a multiple of the page size)."""
        return len(self._pages) * PAGE_SIZE

    def snapshot(self) -> dict[int, bytes]:
        """A copy of every allocated page, by page number (for before/after comparisons)."""
        return {k: bytes(v) for k, v in self._pages.items()}

    def pages_in(self, addr: int, n: int) -> Iterator[tuple[int, bytearray]]:
        """Allocated pages overlapping ``[addr, addr + n)``, as (page base, page), in order."""
        first = addr >> PAGE_SHIFT
        last = (addr + n - 1) >> PAGE_SHIFT
        pages = self._pages
        if last - first + 1 <= len(pages):
            for pno in range(first, last + 1):
                page = pages.get(pno)
                if page is not None:
                    yield pno << PAGE_SHIFT, page
        else:
            for pno in sorted(p for p in pages if first <= p <= last):
                yield pno << PAGE_SHIFT, pages[pno]
