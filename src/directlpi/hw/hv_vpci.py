"""A Hyper-V-style host for a guest without an ITS: vPCI, and MSIs delivered as SPIs.

What Microsoft built for arm64 guests after the Direct LPI RFC was turned down
(Linux ``drivers/pci/controller/pci-hyperv.c``, facts in ``shared/facts/linux-gicv3.md``
§4): the guest picks a *guest SPI* for each vector and asks the host, over VMBus, to
route the device's interrupt to it ("create interrupt"); the host programs the
function's real MSI itself -- a message to the host's own doorbell, which only the
host's interrupt remapping understands -- and, when the device writes it, makes the
guest's SPI pending in the guest's (virtual) GIC.  The guest's vGIC is an ordinary
GICv3 distributor: affinity is ``GICD_IROUTER``, masking ``GICD_ICENABLER``; no message
goes to the host for either.

Three parts, each a piece of the host the guest can only reach through its interface:

* :class:`HvHypercallFrame` (``HV``, at :data:`~directlpi.hw.regs.HV_HYPERCALL_BASE`):
  the model's stand-in for the hypercall instruction and the VMBus ring.  A message
  is ten 32-bit words in guest RAM (:data:`~directlpi.hw.regs.HV_MSG_WORDS`); writing
  its address to ``HV_MSG_GPA`` and 1 to ``HV_SIGNAL`` has the host handle it before
  the write completes, and write its reply into the same words.  Real Hyper-V has a
  ring buffer and an interrupt for the reply; the kernel polls for it with interrupts
  off, so a synchronous call is the same contract.
* :class:`HvMsiDoorbell` (``HV-MSI``, at :data:`~directlpi.hw.regs.HV_MSI_BASE`): where
  the functions' real MSIs go.  The host looks the (requester, data) pair up in what it
  granted: a pair it never granted that requester is dropped (``MSI_DROPPED``, reason
  "not-granted") -- so a device cannot raise another device's interrupt, whatever it
  writes.  It is host physical: a CPU access is a bad access.
* :class:`~directlpi.devices.hv_vpci.HvVpciBridge` (the devices layer): the vPCI bus,
  whose config space and BARs the host emulates.  The guest's writes of a function's
  MSI *message* land in a shadow, never in the function: the host programs those
  itself, from the create-interrupt messages (:class:`VpciBus`).

The choices the model makes where Hyper-V is not documented, each the strict one:

* The create message carries the MSI-X entry (``index``): in Hyper-V the host learns it
  from the guest's trapped table write; carrying it gives the same end state and lets the
  host program the entry at once.
* The host refuses (status ``EINVAL``) a guest SPI outside 32..1019, one the guest's GIC
  does not implement, one a GICv2m frame of the guest owns, a MultiMSI block that is not
  a power of two or not aligned to its size; ``EBUSY`` for a guest SPI already routed;
  ``ENODEV`` for a function that is not on the bus.  A refused create programs nothing.
* The bus must be in D0 (``PCI_BUS_D0ENTRY``) for create and delete (``EPROTO``
  otherwise).  D0 entry while in D0 -- a kernel started by kexec, the previous one never
  left -- is ``EPROTO``, as Hyper-V answers a kdump kernel; D0 exit deletes every
  interrupt routed on the bus (unprogramming the functions) and leaves D0.
* Data values are the host's interrupt handles: 16 bits (plain MSI data), aligned blocks
  for MultiMSI (the function ORs the vector into the low bits), handed out first-fit from
  a cursor that moves on, so a handle just freed is not reused at once.
* Delete unprograms the function's entry (address and data 0) before the grant goes: a
  write already in flight lands on a grant that no longer exists and is dropped.
"""

from __future__ import annotations

import errno
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from directlpi.hw.events import Event, EventHub, EventKind
from directlpi.hw.mmio import MmioFrame
from directlpi.hw.regs import (
    FIRST_SPI,
    HV,
    HV_MSG_WORDS,
    HV_MSI,
    HV_MSI_BASE,
    HV_PCI_BUS_D0ENTRY,
    HV_PCI_BUS_D0EXIT,
    HV_PCI_CREATE_INTERRUPT,
    HV_PCI_DELETE_INTERRUPT,
    MAX_SPI,
)

if TYPE_CHECKING:
    from directlpi.hw.cache import CpuMemory
    from directlpi.hw.distributor import Distributor

#: The address every vPCI function's real MSI is programmed with.
HV_MSI_ADDRESS: Final = HV_MSI_BASE + HV_MSI.DOORBELL.offset
_W: Final = {name: 4 * i for i, name in enumerate(HV_MSG_WORDS)}
_DATA_HANDLES: Final = 1 << 16


class VpciFunction(Protocol):
    """What the host needs of a function (``devices.pci.PciFunction``)."""

    @property
    def requester(self) -> str: ...

    @property
    def msi_vectors(self) -> int: ...

    @property
    def msix_vectors(self) -> int: ...

    @property
    def msix_enabled(self) -> bool: ...


class VpciBus(Protocol):
    """What the host needs of the vPCI bus (``devices.hv_vpci.HvVpciBridge``)."""

    def function_at(self, wslot: int) -> VpciFunction | None: ...

    def all_functions(self) -> Sequence[VpciFunction]: ...

    def program_msi(self, fn: Any, index: int, msix: bool, count: int,
                    address: int, data: int) -> None: ...


@dataclass
class HvInterrupt:
    """One routed interrupt: a function's vector (or MultiMSI block) -> guest SPIs."""

    requester: str
    index: int
    msix: bool
    spi: int
    count: int
    data: int


class HvVpciHost:
    """The host's vPCI backend: the create/delete messages and the remapping they set up."""

    def __init__(self, dist: Distributor, hub: EventHub, bridge: VpciBus | None,
                 reserved_spis: frozenset[int] = frozenset()) -> None:
        self._dist = dist
        self._hub = hub
        #: The vPCI bus (attached by whoever builds the functions: the platform).
        self.bridge = bridge
        #: Guest SPIs the host keeps for something else (the guest's GICv2m frames).
        self.reserved_spis = reserved_spis
        #: (requester, data) -> guest SPI: what each function may raise.
        self.grants: dict[tuple[str, int], int] = {}
        self.interrupts: dict[tuple[str, int], HvInterrupt] = {}
        """Routed interrupts by (requester, first data)."""
        self._spi_owner: dict[int, tuple[str, int]] = {}
        self._handles = bytearray(_DATA_HANDLES)
        self._cursor = 0
        #: Every message handled: (type, status).
        self.messages: list[tuple[int, int]] = []
        #: Whether the bus is in D0 (a guest driver entered it, and has not left).
        self.d0 = False

    # -- messages ----------------------------------------------------------------------------

    def handle(self, words: dict[str, int]) -> dict[str, int]:
        """One message from the guest; returns the reply's words (status, message)."""
        kind = words["type"]
        if kind == HV_PCI_BUS_D0ENTRY:
            reply = {"status": errno.EPROTO if self.d0 else 0}
            self.d0 = True
        elif kind == HV_PCI_BUS_D0EXIT:
            for requester, data in list(self.interrupts):
                self._remove(self.interrupts[(requester, data)])
            self.d0 = False
            reply = {"status": 0}
        elif not self.d0:
            reply = {"status": errno.EPROTO}        # the bus is not in D0: no interrupts
        elif kind == HV_PCI_CREATE_INTERRUPT:
            reply = self._create(words)
        elif kind == HV_PCI_DELETE_INTERRUPT:
            reply = self._delete(words)
        else:
            reply = {"status": errno.EINVAL}
        self.messages.append((kind, reply["status"]))
        return reply

    def _function(self, wslot: int) -> VpciFunction | None:
        return self.bridge.function_at(wslot) if self.bridge is not None else None

    def _create(self, w: dict[str, int]) -> dict[str, int]:
        fn = self._function(w["wslot"])
        if fn is None:
            return {"status": errno.ENODEV}
        spi, count, index = w["vector"], w["vector_count"], w["index"]
        msix = fn.msix_enabled or (bool(fn.msix_vectors) and not fn.msi_vectors)
        if count < 1 or count & (count - 1) or spi % count:
            return {"status": errno.EINVAL}
        spis = range(spi, spi + count)
        if (spi < FIRST_SPI or spi + count - 1 > MAX_SPI
                or not all(self._dist.valid_spi(s) for s in spis)
                or any(s in self.reserved_spis for s in spis)):
            return {"status": errno.EINVAL}
        if msix and (count != 1 or not 0 <= index < fn.msix_vectors):
            return {"status": errno.EINVAL}
        if not msix and (index != 0 or count > fn.msi_vectors):
            return {"status": errno.EINVAL}
        if any(s in self._spi_owner for s in spis):
            return {"status": errno.EBUSY}
        data = self._take_handles(count)
        if data is None:
            return {"status": errno.ENOSPC}
        irq = HvInterrupt(fn.requester, index, msix, spi, count, data)
        self.interrupts[(fn.requester, data)] = irq
        for i, s in enumerate(spis):
            self.grants[(fn.requester, data + i)] = s
            self._spi_owner[s] = (fn.requester, data)
        self._bus().program_msi(fn, irq.index, irq.msix, irq.count, HV_MSI_ADDRESS, data)
        return {"status": 0, "address_lo": HV_MSI_ADDRESS & 0xFFFF_FFFF,
                "address_hi": HV_MSI_ADDRESS >> 32, "data": data}

    def _delete(self, w: dict[str, int]) -> dict[str, int]:
        fn = self._function(w["wslot"])
        irq = self.interrupts.get((fn.requester, w["vector"])) if fn is not None else None
        if fn is None or irq is None:
            return {"status": errno.ENOENT}
        self._remove(irq)
        return {"status": 0}

    def _remove(self, irq: HvInterrupt) -> None:
        """Unprogram the function's entry, then drop the grant."""
        fn = next((f for f in self.bridge_functions() if f.requester == irq.requester), None)
        if fn is not None:
            self._bus().program_msi(fn, irq.index, irq.msix, irq.count, 0, 0)
        del self.interrupts[(irq.requester, irq.data)]
        for i in range(irq.count):
            del self.grants[(irq.requester, irq.data + i)]
            del self._spi_owner[irq.spi + i]
        self._handles[irq.data:irq.data + irq.count] = bytes(irq.count)

    def bridge_functions(self) -> Sequence[VpciFunction]:
        return self._bus().all_functions() if self.bridge is not None else ()

    def _bus(self) -> VpciBus:
        assert self.bridge is not None
        return self.bridge

    def _take_handles(self, n: int) -> int | None:
        for start in (self._cursor, 0):
            base = -(-start // n) * n
            while base + n <= _DATA_HANDLES:
                if not any(self._handles[base:base + n]):
                    self._handles[base:base + n] = b"\1" * n
                    self._cursor = base + n
                    return base
                base += n
        return None

    # -- the doorbell ----------------------------------------------------------------------------

    def spi_of(self, requester: str | None, data: int) -> int | None:
        """The guest SPI a write of ``data`` by ``requester`` to the doorbell raises."""
        if requester is None:
            return None
        return self.grants.get((requester, data & 0xFFFF_FFFF))

    def deliver(self, requester: str | None, data: int) -> None:
        spi = self.spi_of(requester, data)
        if spi is None:
            self._hub.report(Event(
                EventKind.MSI_DROPPED, "HV-MSI", value=data, master=requester,
                reason="not-granted", register="HV_MSI_DOORBELL",
                detail=f"the host granted {requester} no interrupt with data {data:#x}: "
                       "dropped"))
            return
        self._dist.message_spi(spi, "HV_MSI_DOORBELL")


class HvHypercallFrame(MmioFrame):
    """``HV_MSG_GPA`` and ``HV_SIGNAL``: the guest's way to the host."""

    REGISTERS = HV

    __slots__ = ("_gpa", "_memory", "host")

    def __init__(self, host: HvVpciHost, memory: CpuMemory, hub: EventHub) -> None:
        super().__init__("HV", hub)
        self.host = host
        self._memory = memory
        self._gpa = 0

    def _table_key(self) -> Hashable:
        return ()

    def _r_MSG_GPA(self) -> int:
        return self._gpa

    def _w_MSG_GPA(self, value: int) -> None:
        self._gpa = value

    def _w_SIGNAL(self, value: int) -> None:
        if not value & 1:
            return
        hub = self._hub
        if hub.requester is not None:
            hub.report(Event(EventKind.BAD_ACCESS, self.frame_name, addr=HV.SIGNAL.offset,
                             value=value, master=hub.requester, reason="not-a-cpu",
                             detail=f"{hub.requester} wrote HV_SIGNAL: only the guest's CPUs "
                                    "make hypercalls; ignored"))
            return
        gpa, mem = self._gpa, self._memory
        try:
            words = {n: mem.read_int(gpa + off, 4) for n, off in _W.items()}
        except Exception:           # not RAM: the hypercall fails, nothing is done
            hub.report(Event(EventKind.BAD_ACCESS, self.frame_name, addr=HV.SIGNAL.offset,
                             value=gpa, reason="bad-message",
                             detail=f"HV_MSG_GPA {gpa:#x} is not guest RAM: no message"))
            return
        reply = self.host.handle(words)
        for name, value32 in reply.items():
            mem.write_int(gpa + _W[name], value32, 4)


class HvMsiDoorbell(MmioFrame):
    """The host's MSI doorbell: bus masters only."""

    REGISTERS = HV_MSI

    __slots__ = ("host",)

    def __init__(self, host: HvVpciHost, hub: EventHub) -> None:
        super().__init__("HV-MSI", hub)
        self.host = host

    def _table_key(self) -> Hashable:
        return ()

    def _w_DOORBELL(self, value: int) -> None:
        hub = self._hub
        if hub.requester is None:
            hub.report(Event(EventKind.BAD_ACCESS, self.frame_name, addr=HV_MSI.DOORBELL.offset,
                             value=value, reason="not-guest-visible",
                             detail="a CPU wrote the host's MSI doorbell, which is not in the "
                                    "guest's address space: ignored"))
            return
        self.host.deliver(hub.requester, value)
