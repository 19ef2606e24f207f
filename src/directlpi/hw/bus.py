"""The system bus: routes each access to an MMIO frame, to RAM, or to nothing.

MMIO frames are 64 KiB and 64 KiB aligned, so routing is one dict lookup on
``addr >> 16``.  Every access names its bus master: ``None`` for a CPU, a
string (a PCI BDF, a device name) for a DMA write -- an MSI is one -- so that
later layers can audit who wrote which doorbell (the Direct LPI isolation hole).

Nothing raises out of the bus: an access to no frame and no RAM, to a hole in a
redistributor region, or with a width other than 1, 2, 4 or 8 bytes reads as
zero, is ignored when written, and is recorded as a ``BAD_ACCESS`` event.

**Posted writes** (option ``posted``, after the PCIe ordering rules, PCIe Base
Specification, "Transaction Ordering"): a DMA write is *issued* when the device
puts it on the bus -- the issue hooks run and ``DMA_WRITE`` is emitted then --
and *lands* when it reaches its target, possibly much later.  Writes are posted
per bus master in a FIFO: one master's writes never pass each other, different
masters' writes may (:meth:`Bus.deliver_one` picks which master's oldest write
lands next from the bus's own seeded ``random.Random``).  A read that completes
from a device cannot pass that device's posted writes, so such a read lands them
first: the device side does it, through :meth:`Bus.flush` (the PCI host bridge
for config space and BAR reads, a platform device for its register read-back).
CPU stores are never posted.  Without the option every write lands as soon as it
is issued, so landing hooks and ``DMA_LANDED`` can be relied on in both modes.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from directlpi.hw.events import Event, EventHub, EventKind
from directlpi.hw.memory import PA_LIMIT, PhysicalMemory
from directlpi.hw.mmio import MmioFrame

FRAME_SHIFT: Final = 16
_MASKS: Final = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: 0xFFFFFFFFFFFFFFFF}
_EV_DMA: Final = EventKind.DMA_WRITE
_EV_LANDED: Final = EventKind.DMA_LANDED
_EV_MMIO_R: Final = EventKind.MMIO_READ
_EV_MMIO_W: Final = EventKind.MMIO_WRITE


class MmioWindow(Protocol):
    """A device-side MMIO region larger than a frame (PCI ECAM, PCI memory space)."""

    window_name: str

    def window_read(self, offset: int, size: int) -> int: ...
    def window_write(self, offset: int, value: int, size: int) -> None: ...


DmaHook = Callable[[int, int, int, str], None]
"""``hook(addr, value, size, master)``: called for a DMA write (at issue or at landing)."""


def _without(hooks: tuple[DmaHook, ...], hook: DmaHook) -> tuple[DmaHook, ...]:
    """``hooks`` less the first ``hook`` in it (unchanged if absent)."""
    if hook not in hooks:
        return hooks
    i = hooks.index(hook)
    return hooks[:i] + hooks[i + 1:]


class Bus:
    """Physical address decoder shared by CPUs and devices."""

    __slots__ = (
        "_busy",
        "_devwindows",
        "_dma_drop",
        "_dma_hooks",
        "_doorbells",
        "_drop_rng",
        "_frames",
        "_hub",
        "_landing",
        "_landing_hooks",
        "_memory",
        "_mid",
        "_now_hooks",
        "_on",
        "_posted",
        "_queues",
        "_ram",
        "_rng",
        "_windows",
        "posted_pending",
    )

    def __init__(self, memory: PhysicalMemory, hub: EventHub,
                 ram: Sequence[tuple[int, int]], *, posted: bool = False,
                 seed: int = 0, dma_drop: float = 0.0, fault_seed: int = 0) -> None:
        self._memory = memory
        self._hub = hub
        self._on = hub.on
        self._frames: dict[int, MmioFrame] = {}
        #: Fused doorbells (``addr << 4 | size`` -> frame, handler): accesses a frame's
        #: table routes to one handler every MSI reaches (GICR_SETLPIR), called directly.
        self._doorbells: dict[int, tuple[MmioFrame, Callable[[int], None]]] = {}
        #: RAM as (start, end) pairs.
        self._ram = tuple((base, base + size) for base, size in ram)
        #: MMIO windows claimed by a device, as (start, end, name), for messages.
        self._windows: list[tuple[int, int, str]] = []
        #: Larger device windows (start, end, handler), looked up after the frames.
        self._devwindows: list[tuple[int, int, MmioWindow]] = []
        #: Issue hooks: called for every DMA write when the device puts it on the bus.
        self._dma_hooks: tuple[DmaHook, ...] = ()
        #: Landing hooks: called for every DMA write just before it is routed.
        self._landing_hooks: tuple[DmaHook, ...] = ()
        #: Derived: the issue hooks then the landing hooks, for a write that lands as
        #: it is issued (one loop on the unposted path).
        self._now_hooks: tuple[DmaHook, ...] = ()
        self._posted = posted
        self._rng = random.Random(seed)
        #: Fault injection: the probability that the interconnect drops a DMA write once
        #: it is issued (recorded as DMA_DROPPED), and its own seeded generator.
        self._dma_drop = dma_drop
        self._drop_rng = random.Random(fault_seed)
        #: Posted writes in flight, per master, oldest first, as (addr, value, size).
        self._queues: dict[str, deque[tuple[int, int, int]]] = {}
        #: Masters with at least one write in flight, in the order they got their first
        #: one (so that the seeded choice among them is reproducible).
        self._busy: list[str] = []
        #: How many posted DMA writes are in flight (issued, not landed yet).
        self.posted_pending = 0
        #: Set by _land_next for the one write() call that lands a queued write (it is
        #: consumed there, so a write the landing causes is issued and posted as usual).
        self._landing = False
        #: Masters one of whose writes is landing now (its landing hooks, listeners and
        #: routing): a flush or delivery re-entered from there skips them.
        self._mid: list[str] = []

    def map_frame(self, base: int, frame: MmioFrame) -> None:
        """Map a 64 KiB MMIO frame at ``base`` (64 KiB aligned)."""
        if base & 0xFFFF:
            raise ValueError(f"MMIO frame base {base:#x} is not 64 KiB aligned")
        key = base >> FRAME_SHIFT
        if key in self._frames:
            raise ValueError(f"two MMIO frames at {base:#x}")
        self._frames[key] = frame

    def add_doorbell(self, addr: int, size: int, handler: Callable[[int], None]) -> None:
        """Route a ``size``-byte write at ``addr`` straight to ``handler(value)``: what the
        frame mapped there does for it through its table (the common MSI write, fused).
        The frame must implement that access; ``handler`` must do what its table entry
        does with the zero-extended value."""
        frame = self._frames.get(addr >> FRAME_SHIFT)
        if frame is None or not frame.implements_write(addr & 0xFFFF, size):
            raise ValueError(f"no MMIO frame implements a {size}-byte write at {addr:#x}")
        self._doorbells[(addr << 4) | size] = (frame, handler)

    def claim_window(self, base: int, size: int, name: str) -> None:
        """Name an MMIO window (e.g. a GICR region) so accesses to its holes are explained."""
        self._windows.append((base, base + size, name))

    def add_dma_hook(self, hook: DmaHook) -> None:
        """Call ``hook(addr, value, size, master)`` at the *issue* of every DMA write.

        An issue hook judges what a device put on the bus (e.g. the MSI spoofing
        audit); with posted writes the write has not reached its target yet.
        """
        self._dma_hooks += (hook,)
        self._now_hooks = self._dma_hooks + self._landing_hooks

    def remove_dma_hook(self, hook: DmaHook) -> None:
        self._dma_hooks = _without(self._dma_hooks, hook)
        self._now_hooks = self._dma_hooks + self._landing_hooks

    def add_landing_hook(self, hook: DmaHook) -> None:
        """Call ``hook(addr, value, size, master)`` when a DMA write lands, just before it
        is routed to its target (right after its issue unless writes are posted)."""
        self._landing_hooks += (hook,)
        self._now_hooks = self._dma_hooks + self._landing_hooks

    def remove_landing_hook(self, hook: DmaHook) -> None:
        self._landing_hooks = _without(self._landing_hooks, hook)
        self._now_hooks = self._dma_hooks + self._landing_hooks

    def map_window(self, base: int, size: int, window: MmioWindow) -> None:
        """Route ``[base, base + size)`` to ``window`` (e.g. a PCI host bridge's ECAM)."""
        for start, end, _ in self._devwindows:
            if base < end and start < base + size:
                raise ValueError(f"MMIO window at {base:#x} overlaps another")
        self._devwindows.append((base, base + size, window))
        self.claim_window(base, size, window.window_name)

    def _window(self, addr: int, size: int) -> tuple[MmioWindow, int] | None:
        for start, end, window in self._devwindows:
            if start <= addr and addr + size <= end:
                return window, addr - start
        return None

    def frame_at(self, addr: int) -> MmioFrame | None:
        return self._frames.get(addr >> FRAME_SHIFT)

    def is_ram(self, addr: int, size: int = 1) -> bool:
        # A loop, not any() over a generator: this is on every RAM and window access.
        for start, end in self._ram:  # noqa: SIM110
            if start <= addr and addr + size <= end:
                return True
        return False

    # -- the two entry points ---------------------------------------------------

    def write(self, addr: int, value: int, size: int, master: str | None = None) -> None:
        """Write ``size`` (1, 2, 4 or 8) bytes of ``value`` at ``addr``.

        ``master`` is None for a CPU store and names the device for a DMA write,
        which is issued now and lands now, or later if writes are posted.
        Never raises (except ``ArchitectureViolation`` under ``strict``).
        """
        on = self._on
        hub = self._hub
        if master is not None:
            if self._posted:
                if not self._landing:
                    self._post(addr, value, size, master)
                    return
                self._landing = False           # this call lands a queued write
                hooks = self._landing_hooks
            elif self._dma_drop:
                if on[_EV_DMA]:
                    hub.emit(Event(_EV_DMA, "BUS", addr=addr, value=value, master=master,
                                   detail=f"{size}-byte"))
                for hook in self._dma_hooks:
                    hook(addr, value, size, master)
                if self._dropped(addr, value, master):
                    return
                hooks = self._landing_hooks
            else:
                # Issued and landing at once: DMA_WRITE, the issue hooks, the landing
                # hooks (one loop over both), then DMA_LANDED.
                if on[_EV_DMA]:
                    hub.emit(Event(_EV_DMA, "BUS", addr=addr, value=value, master=master,
                                   detail=f"{size}-byte"))
                hooks = self._now_hooks
            for hook in hooks:
                hook(addr, value, size, master)
            if on[_EV_LANDED]:
                hub.emit(Event(_EV_LANDED, "BUS", addr=addr, value=value, master=master,
                               detail=f"{size}-byte"))
        # The requester is restored, not cleared: a DMA write caused while routing
        # another (an MSI-X unmask by a peer's write) must not erase the outer one.
        outer = hub.requester
        hub.requester = master
        try:
            bell = self._doorbells.get((addr << 4) | size)
            if bell is not None:
                value &= _MASKS[size]
                if on[_EV_MMIO_W]:
                    hub.emit(Event(_EV_MMIO_W, bell[0].frame_name, addr=addr, value=value,
                                   master=master))
                bell[1](value)
                return
            frame = self._frames.get(addr >> FRAME_SHIFT)
            mask = _MASKS.get(size)
            if frame is not None and mask is not None:
                value &= mask
                if on[_EV_MMIO_W]:
                    hub.emit(Event(_EV_MMIO_W, frame.frame_name, addr=addr, value=value,
                                   master=master))
                frame.write(addr & 0xFFFF, value, size)
                return
            if mask is not None and self.is_ram(addr, size):
                self._memory.write_int(addr, value, size)
                return
            hit = self._window(addr, size) if mask is not None else None
            if hit is not None and mask is not None:
                if on[_EV_MMIO_W]:
                    hub.emit(Event(_EV_MMIO_W, hit[0].window_name, addr=addr,
                                   value=value & mask, master=master))
                hit[0].window_write(hit[1], value & mask, size)
                return
            self._unmapped(addr, size, value, master)
        finally:
            hub.requester = outer

    # -- posted writes ------------------------------------------------------------------

    def _post(self, addr: int, value: int, size: int, master: str) -> None:
        """Issue a DMA write and queue it behind its master's earlier ones."""
        if self._on[_EV_DMA]:
            self._hub.emit(Event(_EV_DMA, "BUS", addr=addr, value=value, master=master,
                                 detail=f"{size}-byte"))
        for hook in self._dma_hooks:
            hook(addr, value, size, master)
        if self._dma_drop and self._dropped(addr, value, master):
            return
        queue = self._queues.get(master)
        if queue is None:
            queue = self._queues[master] = deque()
        if not queue:
            self._busy.append(master)
        queue.append((addr, value, size))
        self.posted_pending += 1

    def _dropped(self, addr: int, value: int, master: str) -> bool:
        """The interconnect loses this issued write (fault injection, ``dma_drop``): it
        never lands, and the loss is recorded where the platform can be blamed."""
        if self._drop_rng.random() >= self._dma_drop:
            return False
        self._hub.report(Event(EventKind.DMA_DROPPED, "BUS", addr=addr, value=value,
                               master=master, reason="fault-dma-drop",
                               detail=f"the interconnect dropped {master}'s write of "
                                      f"{value:#x} to {addr:#x} (injected fault)"))
        return True

    def _land_next(self, master: str) -> None:
        """Land ``master``'s oldest write in flight (the queue must not be empty)."""
        queue = self._queues[master]
        addr, value, size = queue.popleft()
        self.posted_pending -= 1
        if not queue:
            self._busy.remove(master)
        self._landing = True
        self._mid.append(master)
        try:
            self.write(addr, value, size, master)
        finally:
            self._landing = False
            self._mid.pop()

    def deliver_one(self) -> bool:
        """Land the oldest write of one master, chosen uniformly at random (seeded) among
        the masters with writes in flight (re-entered from a landing: but the landing
        ones).  False if there was none."""
        busy = self._busy
        if self._mid:
            busy = [m for m in busy if m not in self._mid]
        if not busy:
            return False
        self._land_next(busy[self._rng.randrange(len(busy))])
        return True

    def land_oldest(self, master: str) -> bool:
        """Land ``master``'s oldest write in flight -- when a timed run's scheduler says it
        reaches its target.  False if it has none in flight (a read from the device landed
        them), or one of its writes is landing now (the later one must not act first)."""
        if master in self._mid or not self._queues.get(master):
            return False
        self._land_next(master)
        return True

    def flush(self, master: str) -> None:
        """Land, in issue order, every write of ``master`` in flight now.

        What a read completing from that device does first.  A write that landing
        causes the same master to issue was issued after the read, so it stays
        in flight.  Re-entered while one of ``master``'s writes is landing (from a
        hook or a listener), it lands nothing: the later writes must not act before
        the one that is landing.
        """
        if master in self._mid:
            return
        queue = self._queues.get(master)
        for _ in range(len(queue) if queue else 0):
            self._land_next(master)

    def flush_all(self) -> None:
        """Land every write in flight now: master by master, in the order the masters got
        their oldest write in flight, each master's in issue order (as :meth:`flush`)."""
        for master in tuple(self._busy):
            self.flush(master)

    def read(self, addr: int, size: int, master: str | None = None) -> int:
        """Read ``size`` bytes at ``addr``; never raises (RAZ where nothing answers)."""
        frame = self._frames.get(addr >> FRAME_SHIFT)
        if frame is not None and size in _MASKS:
            value = frame.read(addr & 0xFFFF, size)
            if self._on[_EV_MMIO_R]:
                self._hub.emit(Event(_EV_MMIO_R, frame.frame_name, addr=addr, value=value,
                                     master=master))
            return value
        if size in _MASKS and self.is_ram(addr, size):
            return self._memory.read_int(addr, size)
        hit = self._window(addr, size) if size in _MASKS else None
        if hit is not None:
            value = hit[0].window_read(hit[1], size)
            if self._on[_EV_MMIO_R]:
                self._hub.emit(Event(_EV_MMIO_R, hit[0].window_name, addr=addr, value=value,
                                     master=master))
            return value
        self._unmapped(addr, size, None, master)
        return 0

    def _unmapped(self, addr: int, size: int, value: int | None, master: str | None) -> None:
        op = "read" if value is None else f"write of {value:#x}"
        if size not in _MASKS:
            reason, why = "bad-size", f"{size}-byte accesses do not exist (1, 2, 4 or 8)"
        elif not 0 <= addr < PA_LIMIT:
            reason, why = "bad-address", "outside the 52-bit physical address space"
        else:
            reason, why = "unmapped", "no RAM and no MMIO frame there"
            for start, end, name in self._windows:
                if start <= addr < end:
                    why = f"a hole in {name} (no frame at this address)"
                    break
        who = "CPU" if master is None else master
        self._hub.report(Event(
            EventKind.BAD_ACCESS, "BUS", addr=addr if addr >= 0 else -1,
            value=-1 if value is None else value, master=master, reason=reason,
            detail=f"{who} {size}-byte {op} at {addr:#x}: {why}"))
