"""The global LPI allocator: aligned power-of-two blocks, never an INTID twice, full reuse."""

from __future__ import annotations

import errno

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from directlpi.kernel.errors import KernelError
from directlpi.kernel.irqchip.lpi_range import LpiRangeAllocator

FIRST = 8192
COUNT = (1 << 14) - 8192 + 2048          # a range whose end is not a power of two


class AllocatorMachine(RuleBasedStateMachine):
    blocks = Bundle("blocks")

    def __init__(self) -> None:
        super().__init__()
        self.alloc = LpiRangeAllocator(FIRST, COUNT)
        self.owned: dict[int, int] = {}       # base -> size

    @rule(target=blocks, nr=st.sampled_from([1, 1, 2, 3, 4, 8, 16, 32, 256, 1024]),
          limit=st.one_of(st.none(), st.integers(FIRST, FIRST + COUNT)))
    def allocate(self, nr: int, limit: int | None) -> tuple[int, int]:
        size = 1 << (nr - 1).bit_length()
        try:
            base = self.alloc.alloc(nr, limit)
        except KernelError as exc:
            assert exc.errno == errno.ENOSPC
            # ENOSPC only when no aligned free block fits (under the limit).
            top = FIRST + COUNT if limit is None else min(limit, FIRST + COUNT)
            taken = [(b, b + s) for b, s in self.owned.items()]
            for cand in range((FIRST + size - 1) // size * size, top - size + 1, size):
                assert any(a < cand + size and cand < b for a, b in taken)
            return (-1, 0)
        assert base % size == 0, "blocks are naturally aligned in absolute INTID terms"
        assert base >= FIRST and base + size <= FIRST + COUNT
        if limit is not None:
            assert base + size <= limit
        for b, s in self.owned.items():
            assert base + size <= b or b + s <= base, "an INTID was handed out twice"
        self.owned[base] = size
        return (base, nr)

    @rule(block=consumes(blocks))
    def release(self, block: tuple[int, int]) -> None:
        base, nr = block
        if base < 0:
            return
        self.alloc.free(base, nr)
        del self.owned[base]

    @invariant()
    def accounting(self) -> None:
        assert self.alloc.allocated_count == sum(self.owned.values())

    def teardown(self) -> None:
        for base, size in list(self.owned.items()):
            self.alloc.free(base, size)
        assert self.alloc.free_ranges() == [(FIRST, FIRST + COUNT)], "not one block again"


TestAllocatorMachine = AllocatorMachine.TestCase


def test_plain_msi_bound_keeps_intids_below_65536() -> None:
    alloc = LpiRangeAllocator(FIRST, (1 << 17) - FIRST)
    low = [alloc.alloc(32, limit=65536) for _ in range((65536 - FIRST) // 32)]
    assert all(b + 32 <= 65536 for b in low)
    with pytest.raises(KernelError) as exc:
        alloc.alloc(1, limit=65536)
    assert exc.value.errno == errno.ENOSPC and "below INTID 65536" in str(exc.value)
    assert alloc.alloc(1) >= 65536                         # unbounded requests still fit


def test_exhaustion_and_reuse() -> None:
    alloc = LpiRangeAllocator(FIRST, 64)
    bases = [alloc.alloc(1) for _ in range(64)]
    assert sorted(bases) == list(range(FIRST, FIRST + 64))
    with pytest.raises(KernelError):
        alloc.alloc(1)
    alloc.free(FIRST + 5, 1)
    assert alloc.alloc(1) == FIRST + 5


def test_freeing_what_was_not_allocated_is_einval() -> None:
    alloc = LpiRangeAllocator(FIRST, 1024)
    base = alloc.alloc(4)
    for bad in ((base + 1, 1), (base, 8), (FIRST + 512, 1)):
        with pytest.raises(KernelError) as exc:
            alloc.free(*bad)
        assert exc.value.errno == errno.EINVAL
    alloc.free(base, 3)                                    # 3 rounds up to the same block
