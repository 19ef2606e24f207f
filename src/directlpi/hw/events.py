"""Observation of architectural events.

Invariant checkers, traces and the Direct LPI spoofing audit hang off this.  The
hardware blocks share one :class:`EventHub`; each emission site tests a single
byte (``hub.on[kind]``) before building anything, so an event nobody listens to
costs one index and one truth test.

Five kinds are *counted* even when nobody listens, because they sit on failure
paths only: :attr:`EventKind.BAD_ACCESS`, :attr:`EventKind.UNPREDICTABLE`,
:attr:`EventKind.IGNORED`, :attr:`EventKind.ITS_COMMAND_ERROR` and
:attr:`EventKind.MSI_DROPPED`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import IntEnum
from typing import Final, NamedTuple

from directlpi.errors import ArchitectureViolation


class EventKind(IntEnum):
    """What happened.  Values are stable; new kinds are appended."""

    DMA_WRITE = 0
    """A bus master other than a CPU *issued* a write (an MSI is one): addr, value, master.

    With posted writes on, it reaches its target later: see :attr:`DMA_LANDED`."""
    MMIO_READ = 1
    """Any access that reached an MMIO frame (addr, value, master)."""
    MMIO_WRITE = 2
    LPI_PENDING = 3
    """An RD made an LPI pending (``reason``: "setlpir", "pending-table", "its" -- an ITS
    translated it or ran INT -- or "its-move": a MOVI/MOVALL brought its pending state)."""
    LPI_CLEARED = 4
    """GICR_CLRLPIR (or an ITS CLEAR/DISCARD: register "ITS") removed an LPI's pending state."""
    SPI_PENDING = 5
    """An SPI became pending (``reason``: "line", "ispendr", "setspi")."""
    ACK = 6
    """A CPU interface acknowledged an interrupt (IAR read): cpu, intid, value=priority."""
    EOI = 7
    """Priority drop (EOIR write): cpu, intid."""
    DEACTIVATE = 8
    """An interrupt left the active state (EOIR with EOImode 0, or DIR)."""
    INVALIDATE = 9
    """GICR_INVLPIR (intid) or GICR_INVALLR (intid = -1) on the RD of ``cpu``."""
    SYNC = 10
    """GICR_SYNCR read 0 after an operation had made it busy."""
    CONFIG_LOAD = 11
    """An RD read an LPI configuration byte from memory into its cache (value = byte)."""
    LPIS_ENABLED = 12
    LPIS_DISABLED = 13
    IGNORED = 14
    """A write the architecture defines to have no effect (``reason`` says which rule)."""
    BAD_ACCESS = 15
    """Reserved offset, unsupported width or alignment, RO write, WO read, unmapped address."""
    UNPREDICTABLE = 16
    """A write the architecture calls (CONSTRAINED) UNPREDICTABLE; the model ignored it."""
    SGI_GENERATED = 17
    """ICC_SGI1R_EL1 made an SGI pending on a target PE."""
    SPI_CLEARED = 18
    """Software removed an SPI's pending state (``reason``: "icpendr", "clrspi")."""
    DMA_LANDED = 19
    """A DMA write reached its target (frame, RAM or window), just before it acts there:
    addr, value, master.  In the same bus write as its DMA_WRITE unless writes are posted."""
    ITS_COMMAND = 20
    """An ITS executed a command (value = command number, reason = its name)."""
    ITS_COMMAND_ERROR = 21
    """An ITS command failed (value = the architected error number, e.g. 0x010a04); it had
    no effect and the command queue stalled."""
    MSI_DROPPED = 22
    """An MSI doorbell write was dropped (ITS: addr = DeviceID, value = EventID; GICv2m
    frame: intid = the SPI written).  ``reason``: "its-disabled", "no-device-id",
    "unmapped-device", "event-out-of-range", "unmapped-event", "unmapped-collection",
    "spi-out-of-range"; a Hyper-V-style host's doorbell: "not-granted" (value = the data,
    master = the writer)."""
    ITS_TRANSLATED = 23
    """An ITS translated an MSI: addr = DeviceID, value = EventID, intid, cpu, master."""
    DMA_DROPPED = 24
    """The interconnect dropped an issued DMA write (the ``dma_drop`` fault): addr, value,
    master.  It never lands: the platform lost it, not the driver."""


#: Kinds counted whether or not anyone listens (failure paths only).
COUNTED_KINDS: Final = (EventKind.BAD_ACCESS, EventKind.UNPREDICTABLE, EventKind.IGNORED,
                 EventKind.ITS_COMMAND_ERROR, EventKind.MSI_DROPPED, EventKind.DMA_DROPPED)


class Event(NamedTuple):
    """One architectural event.  Fields that do not apply are -1 / None / ""."""

    kind: EventKind
    source: str
    """Which block: "GICD", "GICR<n>", "ICC<n>", "BUS"."""
    cpu: int = -1
    intid: int = -1
    addr: int = -1
    value: int = -1
    master: str | None = None
    reason: str = ""
    """A short stable code for the rule that applied (e.g. "already-pending")."""
    detail: str = ""
    """A sentence for people."""
    register: str = ""
    """The register whose access caused the event, when one did (e.g. "GICR_SETLPIR")."""

    def __str__(self) -> str:
        parts = [self.kind.name, self.source]
        if self.cpu >= 0:
            parts.append(f"cpu={self.cpu}")
        if self.intid >= 0:
            parts.append(f"intid={self.intid}")
        if self.addr >= 0:
            parts.append(f"addr={self.addr:#x}")
        if self.value >= 0:
            parts.append(f"value={self.value:#x}")
        if self.master is not None:
            parts.append(f"master={self.master}")
        if self.register:
            parts.append(f"register={self.register}")
        if self.reason:
            parts.append(f"reason={self.reason}")
        if self.detail:
            parts.append(f"-- {self.detail}")
        return " ".join(parts)


Listener = Callable[[Event], None]


class Subscription:
    """Handle returned by :meth:`EventHub.subscribe`; call :meth:`cancel` to stop."""

    __slots__ = ("_hub", "_kinds", "_listener")

    def __init__(self, hub: EventHub, listener: Listener, kinds: tuple[EventKind, ...]) -> None:
        self._hub = hub
        self._listener = listener
        self._kinds = kinds

    def cancel(self) -> None:
        self._hub._remove(self._listener, self._kinds)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class EventHub:
    """Fan-out of events to subscribers, plus always-on counters for failure kinds."""

    __slots__ = ("_listeners", "counts", "on", "requester", "strict")

    def __init__(self, *, strict: bool = False) -> None:
        n = len(EventKind)
        #: ``on[kind]`` is non-zero while at least one listener wants ``kind``.
        self.on = bytearray(n)
        self._listeners: list[list[Listener]] = [[] for _ in range(n)]
        #: Counts of the kinds in :data:`COUNTED_KINDS` (and of any observed kind).
        self.counts = [0] * n
        self.strict = strict
        #: The bus master of the DMA write the bus is routing right now (None while a CPU
        #: access, or nothing, is).  Set by the bus around routing only; emission sites
        #: read it inside their ``on[kind]`` branch, so that it costs nothing unobserved.
        self.requester: str | None = None

    def subscribe(
        self, listener: Listener, kinds: Iterable[EventKind] | None = None
    ) -> Subscription:
        """Call ``listener(event)`` for every event of ``kinds`` (all kinds if None)."""
        chosen = tuple(EventKind) if kinds is None else tuple(EventKind(k) for k in kinds)
        for k in chosen:
            self._listeners[k].append(listener)
            self.on[k] = 1
        return Subscription(self, listener, chosen)

    def _remove(self, listener: Listener, kinds: tuple[EventKind, ...]) -> None:
        for k in kinds:
            lst = self._listeners[k]
            if listener in lst:
                lst.remove(listener)
            self.on[k] = 1 if lst else 0

    def emit(self, event: Event) -> None:
        """Deliver ``event``; callers test ``on[kind]`` first on hot paths."""
        self.counts[event.kind] += 1
        for listener in tuple(self._listeners[event.kind]):
            listener(event)

    def report(self, event: Event) -> None:
        """Record a failure-path event (always counted); raise under ``strict``."""
        kind = event.kind
        if self.on[kind]:
            self.emit(event)
        else:
            self.counts[kind] += 1
        if self.strict and kind in (EventKind.BAD_ACCESS, EventKind.UNPREDICTABLE):
            raise ArchitectureViolation(str(event))

    def count(self, kind: EventKind) -> int:
        """How many events of ``kind`` were recorded (always exact for counted kinds)."""
        return self.counts[kind]
