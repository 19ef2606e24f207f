"""The global LPI INTID allocator: naturally aligned power-of-two blocks (a buddy allocator).

MultiMSI needs a function's vectors to be one block of 2^k INTIDs aligned to
2^k (the function ORs the vector number into the low bits of the data); the
allocator hands out exactly such blocks, in absolute INTID terms, lowest address
first.  A block can be constrained below an INTID bound (a plain PCI MSI
function carries only 16-bit data, so it can only receive INTIDs < 65536).

Cost does not depend on how much is allocated: per order there is a set of
free block bases (O(1) buddy lookup on free) and a min-heap of the same bases
with lazy deletion (lowest free block in O(log n)); an allocation looks at each
order once, a free merges up the orders once.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from heapq import heappop, heappush

from directlpi.kernel.errors import KernelError


def order_of(nr: int) -> int:
    """Smallest k with 2^k >= nr."""
    return (nr - 1).bit_length()


class LpiRangeAllocator:
    """Allocates aligned power-of-two blocks of INTIDs in ``[first, first + count)``."""

    def __init__(self, first: int, count: int) -> None:
        if first < 0 or count < 0:
            raise KernelError("an LPI range needs a non-negative start and size")
        self.first = first
        self.end = first + count
        self.max_order = max(count.bit_length(), 1)
        self._free: list[set[int]] = [set() for _ in range(self.max_order + 1)]
        self._heap: list[list[int]] = [[] for _ in range(self.max_order + 1)]
        self._allocated: dict[int, int] = {}
        self.free_count = 0
        #: Called as observer(op, base, size) with op "alloc" or "free" (invariant checks).
        self.observers: list[Callable[[str, int, int], None]] = []
        pos = first
        while pos < self.end:
            k = self.max_order
            while k > 0 and (pos % (1 << k) or pos + (1 << k) > self.end):
                k -= 1
            self._add(pos, k)
            pos += 1 << k

    def _add(self, base: int, k: int) -> None:
        self._free[k].add(base)
        heappush(self._heap[k], base)
        self.free_count += 1 << k

    def _lowest(self, k: int) -> int | None:
        heap = self._heap[k]
        free = self._free[k]
        while heap and heap[0] not in free:
            heappop(heap)
        return heap[0] if heap else None

    def alloc(self, nr: int, limit: int | None = None) -> int:
        """Base INTID of ``nr`` INTIDs rounded up to an aligned power-of-two block.

        ``limit`` bounds the block: every INTID of it is below ``limit``.
        Raises ENOSPC when no such block is free.
        """
        if nr < 1:
            raise KernelError(f"cannot allocate {nr} LPIs", errno.EINVAL)
        order = order_of(nr)
        size = 1 << order
        best: tuple[int, int] | None = None
        for k in range(order, self.max_order + 1):
            base = self._lowest(k)
            if base is None or (limit is not None and base + size > limit):
                continue
            if best is None or base < best[0]:
                best = (base, k)
        if best is None:
            bound = f" below INTID {limit}" if limit is not None else ""
            raise KernelError(f"no free aligned block of {size} LPI(s){bound}", errno.ENOSPC)
        base, k = best
        self._free[k].discard(base)
        self.free_count -= 1 << k
        while k > order:
            k -= 1
            self._add(base + (1 << k), k)
        self._allocated[base] = order
        for obs in self.observers:
            obs("alloc", base, size)
        return base

    def free(self, base: int, nr: int) -> None:
        """Give back a block returned by :meth:`alloc` for ``nr`` INTIDs."""
        order = self._allocated.get(base)
        if order is None or order != order_of(nr):
            raise KernelError(f"freeing {nr} LPI(s) at {base}, which is not an allocated block "
                              "of that size", errno.EINVAL)
        del self._allocated[base]
        for obs in self.observers:
            obs("free", base, 1 << order)
        k = order
        while k < self.max_order:
            buddy = base ^ (1 << k)
            if buddy not in self._free[k]:
                break
            self._free[k].discard(buddy)
            self.free_count -= 1 << k
            base = min(base, buddy)
            k += 1
        self._add(base, k)

    @property
    def allocated_count(self) -> int:
        return (self.end - self.first) - self.free_count

    def allocated_blocks(self) -> list[tuple[int, int]]:
        """(base, size) of every allocated block, by base."""
        return sorted((b, 1 << o) for b, o in self._allocated.items())

    def free_ranges(self) -> list[tuple[int, int]]:
        """Free space as maximal contiguous (start, end) ranges."""
        blocks = sorted((b, b + (1 << k)) for k, s in enumerate(self._free) for b in s)
        out: list[tuple[int, int]] = []
        for a, b in blocks:
            if out and out[-1][1] == a:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
        return out
