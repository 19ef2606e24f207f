"""The system bus: routes each access to an MMIO frame, to RAM, or to nothing.

MMIO frames are 64 KiB and 64 KiB aligned, so routing is one dict lookup on
``addr >> 16``.  Every access names its bus master: ``None`` for a CPU, a
string (a PCI BDF, a device name) for a DMA write -- an MSI is one -- so that
later layers can audit who wrote which doorbell (the Direct LPI isolation hole).

Nothing raises out of the bus: an access to no frame and no RAM, to a hole in a
redistributor region, or with a width other than 1, 2, 4 or 8 bytes reads as
zero, is ignored when written, and is recorded as a ``BAD_ACCESS`` event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from directlpi.hw.events import Event, EventHub, EventKind
from directlpi.hw.memory import PA_LIMIT, PhysicalMemory
from directlpi.hw.mmio import MmioFrame

FRAME_SHIFT = 16
_MASKS = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: 0xFFFFFFFFFFFFFFFF}
_EV_DMA = EventKind.DMA_WRITE
_EV_MMIO_R = EventKind.MMIO_READ
_EV_MMIO_W = EventKind.MMIO_WRITE


class MmioWindow(Protocol):
    """A device-side MMIO region larger than a frame (PCI ECAM, PCI memory space)."""

    window_name: str

    def window_read(self, offset: int, size: int) -> int: ...
    def window_write(self, offset: int, value: int, size: int) -> None: ...


class Bus:
    """Physical address decoder shared by CPUs and devices."""

    __slots__ = ("_devwindows", "_dma_hooks", "_frames", "_hub", "_memory", "_on", "_ram",
                 "_windows")

    def __init__(self, memory: PhysicalMemory, hub: EventHub,
                 ram: Sequence[tuple[int, int]]) -> None:
        self._memory = memory
        self._hub = hub
        self._on = hub.on
        self._frames: dict[int, MmioFrame] = {}
        #: RAM as (start, end) pairs.
        self._ram = tuple((base, base + size) for base, size in ram)
        #: MMIO windows claimed by a device, as (start, end, name), for messages.
        self._windows: list[tuple[int, int, str]] = []
        #: Larger device windows (start, end, handler), looked up after the frames.
        self._devwindows: list[tuple[int, int, MmioWindow]] = []
        #: Called as hook(addr, value, size, master) before every DMA write is routed.
        self._dma_hooks: list[Callable[[int, int, int, str], None]] = []

    def map_frame(self, base: int, frame: MmioFrame) -> None:
        """Map a 64 KiB MMIO frame at ``base`` (64 KiB aligned)."""
        if base & 0xFFFF:
            raise ValueError(f"MMIO frame base {base:#x} is not 64 KiB aligned")
        key = base >> FRAME_SHIFT
        if key in self._frames:
            raise ValueError(f"two MMIO frames at {base:#x}")
        self._frames[key] = frame

    def claim_window(self, base: int, size: int, name: str) -> None:
        """Name an MMIO window (e.g. a GICR region) so accesses to its holes are explained."""
        self._windows.append((base, base + size, name))

    def add_dma_hook(self, hook: Callable[[int, int, int, str], None]) -> None:
        """Audit every write by a bus master other than a CPU (e.g. MSI spoofing checks)."""
        self._dma_hooks.append(hook)

    def remove_dma_hook(self, hook: Callable[[int, int, int, str], None]) -> None:
        if hook in self._dma_hooks:
            self._dma_hooks.remove(hook)

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
        return any(start <= addr and addr + size <= end for start, end in self._ram)

    # -- the two entry points ---------------------------------------------------

    def write(self, addr: int, value: int, size: int, master: str | None = None) -> None:
        """Write ``size`` (1, 2, 4 or 8) bytes of ``value`` at ``addr``.

        ``master`` is None for a CPU store and names the device for a DMA write.
        Never raises.
        """
        on = self._on
        if master is not None:
            if on[_EV_DMA]:
                self._hub.emit(Event(_EV_DMA, "BUS", addr=addr, value=value, master=master,
                                     detail=f"{size}-byte"))
            for hook in self._dma_hooks:
                hook(addr, value, size, master)
        frame = self._frames.get(addr >> FRAME_SHIFT)
        mask = _MASKS.get(size)
        if frame is not None and mask is not None:
            value &= mask
            if on[_EV_MMIO_W]:
                self._hub.emit(Event(_EV_MMIO_W, frame.frame_name, addr=addr, value=value,
                                     master=master))
            frame.write(addr & 0xFFFF, value, size)
            return
        if mask is not None and self.is_ram(addr, size):
            self._memory.write_int(addr, value, size)
            return
        hit = self._window(addr, size) if mask is not None else None
        if hit is not None and mask is not None:
            if on[_EV_MMIO_W]:
                self._hub.emit(Event(_EV_MMIO_W, hit[0].window_name, addr=addr,
                                     value=value & mask, master=master))
            hit[0].window_write(hit[1], value & mask, size)
            return
        self._unmapped(addr, size, value, master)

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
