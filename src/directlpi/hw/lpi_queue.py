"""The pending LPIs of one redistributor, ordered for the highest priority pending interrupt.

One min-heap of ``priority << 24 | INTID`` keys per priority, and a heap of the priorities
that have one: pushing or taking the highest priority LPI costs the same whether 1 or
65,536 LPIs of other priorities are pending (one heap of every key sifts through log2(n)
levels of them on every push and pop: 16 at 65,536).  Keys are not checked here: the
redistributor drops the stale ones it finds on top (an LPI no longer pending, disabled or
reprioritised since it was pushed).
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush


class LpiQueue:
    """Keys ``priority << 24 | INTID``, lowest first (ties: the lowest INTID).

    ``_prios`` holds each priority whose heap is not empty, once; an emptied heap stays in
    ``_by_prio`` (at most one per priority) so that a cycle of one LPI allocates nothing.
    """

    __slots__ = ("_by_prio", "_prios", "n")

    def __init__(self) -> None:
        self._by_prio: dict[int, list[int]] = {}
        self._prios: list[int] = []
        #: How many keys are queued (stale ones included).
        self.n = 0

    def push(self, key: int) -> None:
        prio = key >> 24
        heap = self._by_prio.get(prio)
        if heap is None:
            self._by_prio[prio] = [key]
            heappush(self._prios, prio)
        elif heap:
            heappush(heap, key)
        else:                       # an emptied priority's heap is kept, not reallocated
            heap.append(key)
            heappush(self._prios, prio)
        self.n += 1

    def top(self) -> int:
        """The lowest key; the queue must not be empty."""
        return self._by_prio[self._prios[0]][0]

    def pop(self) -> None:
        """Drop the lowest key; the queue must not be empty."""
        prio = self._prios[0]
        heap = self._by_prio[prio]
        heappop(heap)
        self.n -= 1
        if not heap:
            heappop(self._prios)

    def clear(self) -> None:
        self._by_prio.clear()
        self._prios.clear()
        self.n = 0

    def rebuild(self, keys: list[int]) -> None:
        """Hold exactly ``keys``."""
        by_prio: dict[int, list[int]] = {}
        for key in keys:
            heap = by_prio.get(key >> 24)
            if heap is None:
                by_prio[key >> 24] = [key]
            else:
                heap.append(key)
        for heap in by_prio.values():
            heapify(heap)
        self._by_prio = by_prio
        self._prios = list(by_prio)
        heapify(self._prios)
        self.n = len(keys)
