"""Physical page allocation for the kernel (what memblock and the page allocator give the GIC).

First fit, lowest address first, over the RAM ranges firmware described, minus
the kernel image and the ranges a previous kernel reserved persistently
(``memreserve`` -- how a kexec'd kernel finds the LPI tables it must not
overwrite).  Allocations are zeroed, as with ``__GFP_ZERO``.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence

from directlpi.hw.cache import CpuMemory
from directlpi.kernel.errors import KernelError

KERNEL_IMAGE_SIZE = 16 << 20
"""RAM kept for the (notional) kernel image at the start of the first RAM range."""


def _align_up(x: int, a: int) -> int:
    return (x + a - 1) & ~(a - 1)


class PhysAllocator:
    """Allocates physical ranges from RAM; knows what is reserved across kexec."""

    def __init__(self, memory: CpuMemory, ram: Sequence[tuple[int, int]],
                 memreserve: Sequence[tuple[int, int]] = ()) -> None:
        self._memory = memory
        self._free: list[tuple[int, int]] = []
        for k, (base, size) in enumerate(sorted(ram)):
            start = base + (KERNEL_IMAGE_SIZE if k == 0 else 0)
            if start < base + size:
                self._free.append((start, base + size))
        self.allocated: dict[int, int] = {}
        #: Ranges reserved by a previous kernel and handed over (EFI memreserve).
        self.inherited: tuple[tuple[int, int], ...] = tuple(memreserve)
        #: Ranges this kernel asks the next one to keep (gic_reserve_range).
        self.persistent: list[tuple[int, int]] = []
        for base, size in memreserve:
            self._carve(base, base + size)

    def _carve(self, start: int, end: int) -> None:
        out = []
        for a, b in self._free:
            if b <= start or end <= a:
                out.append((a, b))
                continue
            if a < start:
                out.append((a, start))
            if end < b:
                out.append((end, b))
        self._free = out

    def alloc(self, size: int, align: int = 4096, zero: bool = True) -> int:
        """A physical range of ``size`` bytes aligned to ``align``; ENOMEM if none."""
        for i, (a, b) in enumerate(self._free):
            start = _align_up(a, align)
            if start + size <= b:
                self._free[i:i + 1] = [r for r in ((a, start), (start + size, b)) if r[0] < r[1]]
                self.allocated[start] = size
                if zero:
                    self._memory.fill(start, size, 0)
                return start
        raise KernelError(f"out of memory: no {size:#x} bytes aligned to {align:#x}",
                          errno.ENOMEM)

    def free(self, pa: int) -> None:
        size = self.allocated.pop(pa)
        if (pa, size) in self.persistent:         # no longer in use: nothing to hand over
            self.persistent.remove((pa, size))
        self._free.append((pa, pa + size))
        self._free.sort()
        merged: list[tuple[int, int]] = []
        for a, b in self._free:
            if merged and merged[-1][1] == a:
                merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        self._free = merged

    def is_inherited_reserved(self, base: int, size: int) -> bool:
        """Whether ``[base, base + size)`` lies in a range a previous kernel reserved."""
        return any(r <= base and base + size <= r + n for r, n in self.inherited)

    def reserve_persistent(self, base: int, size: int) -> None:
        """``gic_reserve_range``: ask the next (kexec'd) kernel to keep this range."""
        if (base, size) not in self.persistent:
            self.persistent.append((base, size))
