"""GICv3 MBIs: MSIs written to the distributor's GICD_SETSPI_NSR (message-based SPIs).

The other ITS-less MSI route, and the one Direct LPI was asked to be shaped like:
a nexus domain under the GIC domain, PCI-MSI and platform-MSI domains on top.
Firmware names it with ``msi-controller`` and ``mbi-ranges`` on the GIC node;
the hardware must have GICD_TYPER.MBIS.

* The message is ``address = GICD base + GICD_SETSPI_NSR, data = SPI INTID``: one
  address for every CPU, so an affinity change is a GICD_IROUTER write and the
  device is never rewritten (unlike Direct LPI, where the address picks the RD).
* The SPIs come from the ``mbi-ranges`` and are configured edge-triggered (an MBI
  write latches the SPI pending; a level MBI would need GICD_CLRSPI_NSR, which no
  modelled device writes).
* MultiMSI: a block of 2^k SPIs whose first INTID is aligned to 2^k -- the
  *INTID*, because the device ORs the vector number into the data; Linux aligns
  the offset within the range, which is the same only when the range starts
  aligned.  The model's choice is the strict one.
* Pending state, masking and affinity are the GIC's SPI machinery (the parent chip).
  Freeing disables the SPI and discards what is pending (GICD_ICENABLER,
  GICD_ICPENDR), so a new owner of the SPI never takes its predecessor's interrupt
  (Linux leaves it; the strict choice).
* Not isolated: any bus master can write any SPI number into GICD_SETSPI_NSR, just
  as with Direct LPI; no ISOLATED_MSI flag.
"""

from __future__ import annotations

import errno
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from directlpi.hw.regs import GICD
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.chip import (
    IRQCHIP_SKIP_SET_WAKE,
    IrqChip,
    irq_chip_eoi_parent,
    irq_chip_get_parent_state,
    irq_chip_mask_parent,
    irq_chip_retrigger_hierarchy,
    irq_chip_set_affinity_parent,
    irq_chip_set_parent_state,
    irq_chip_set_type_parent,
    irq_chip_unmask_parent,
)
from directlpi.kernel.irq.desc import IRQ_TYPE_EDGE_RISING, IrqData
from directlpi.kernel.irq.domain import (
    DomainBusToken,
    Fwnode,
    IrqDomain,
    IrqDomainOps,
    IrqFwspec,
    irq_domain_alloc_irqs_parent,
    irq_domain_free_irqs_parent,
    irq_domain_get_irq_data,
    irq_domain_reset_irq_data,
    irq_domain_set_hwirq_and_chip,
)
from directlpi.kernel.irqchip.lpi_range import order_of
from directlpi.kernel.msi import (
    MSI_FLAG_MULTI_PCI_MSI,
    MSI_FLAG_PCI_MSIX,
    MSI_FLAG_USE_DEF_CHIP_OPS,
    MSI_FLAG_USE_DEF_DOM_OPS,
    MsiAllocInfo,
    MsiDomain,
    MsiDomainInfo,
    MsiMsg,
    msi_domain_set_affinity,
    platform_msi_chip,
)

if TYPE_CHECKING:
    from directlpi.kernel.kernel import Kernel

GIC_IRQ_TYPE_SPI = 0
Observer = Callable[[str, int, int], None]


@dataclass
class MbiRange:
    """One ``mbi-ranges`` entry and which of its SPIs are taken."""

    first: int
    count: int
    used: bytearray = field(init=False)

    def __post_init__(self) -> None:
        self.used = bytearray(self.count)

    def find(self, n: int) -> int | None:
        """First INTID of ``n`` free SPIs (``n`` a power of two) aligned to ``n``."""
        start = -(-self.first // n) * n
        for intid in range(start, self.first + self.count - n + 1, n):
            off = intid - self.first
            if not any(self.used[off:off + n]):
                return intid
        return None

    def mark(self, intid: int, n: int, used: bool) -> None:
        off = intid - self.first
        self.used[off:off + n] = (b"\1" if used else b"\0") * n


class MbiAllocator:
    """The SPIs of the MBI ranges: aligned power-of-two blocks, first fit, in range order."""

    def __init__(self, ranges: tuple[tuple[int, int], ...], name: str = "GICv3-MBI",
                 where: str = "the MBI ranges") -> None:
        self.name = name
        self.where = where
        self.ranges = [MbiRange(first, count) for first, count in ranges]
        #: Called as ``observer("alloc" | "free", first INTID, count)``.
        self.observers: list[Observer] = []

    @property
    def total(self) -> int:
        return sum(r.count for r in self.ranges)

    def alloc(self, nr: int) -> int:
        """First INTID of a block of ``nr`` SPIs rounded up to a power of two."""
        n = 1 << order_of(nr)
        for r in self.ranges:
            intid = r.find(n)
            if intid is not None:
                r.mark(intid, n, True)
                for obs in self.observers:
                    obs("alloc", intid, n)
                return intid
        raise KernelError(f"{self.name}: no {n} free aligned SPIs left in {self.where} "
                          f"({self.total} SPIs)", errno.ENOSPC)

    def free(self, intid: int, nr: int) -> None:
        n = 1 << order_of(nr)
        r = next((r for r in self.ranges if r.first <= intid < r.first + r.count), None)
        if r is None or intid + n > r.first + r.count or not all(
                r.used[intid - r.first:intid - r.first + n]):
            raise KernelError(f"{self.name}: SPIs {intid}+{n} are not an allocated block",
                              errno.EINVAL)
        r.mark(intid, n, False)
        for obs in self.observers:
            obs("free", intid, n)

    def take_out(self, intid: int, n: int) -> None:
        """Never hand SPIs ``intid .. intid + n - 1`` out again (they are free now)."""
        r = next((r for r in self.ranges if r.first <= intid < r.first + r.count), None)
        if r is not None:
            r.mark(intid, min(n, r.first + r.count - intid), True)

    def allocated(self) -> list[int]:
        return [r.first + i for r in self.ranges for i, u in enumerate(r.used) if u]


@dataclass(eq=False)
class MbiBlock:
    """SPIs handed out together (a MultiMSI block, or one vector)."""

    first: int
    size: int


class SpiMsi(ABC):
    """An MSI provider whose messages make SPIs pending through a doorbell: MBIs (the
    distributor's GICD_SETSPI_NSR) and GICv2m frames (MSI_SETSPI_NS).  The SPIs come from
    ``ranges``; the subclass says which doorbell serves an SPI."""

    NAME = "SPI-MSI"
    CHIP_NAME = ""
    """The nexus chip's name (``NAME`` if empty)."""
    COMPOSES = True
    """Whether the nexus chip composes the message (doorbell, SPI INTID)."""

    def __init__(self, kernel: Kernel, fwnode: Fwnode, ranges: tuple[tuple[int, int], ...],
                 prefix: str, allocator: MbiAllocator | None = None) -> None:
        assert kernel.gic.domain is not None
        self.k = kernel
        self.fwnode = fwnode
        self.allocator = allocator or MbiAllocator(ranges)
        self.chip = IrqChip(
            name=self.CHIP_NAME or self.NAME, irq_mask=irq_chip_mask_parent,
            irq_unmask=irq_chip_unmask_parent,
            irq_eoi=irq_chip_eoi_parent, irq_set_type=irq_chip_set_type_parent,
            irq_set_affinity=irq_chip_set_affinity_parent,
            irq_retrigger=irq_chip_retrigger_hierarchy,
            irq_compose_msi_msg=self.compose_msi_msg if self.COMPOSES else None,
            irq_set_irqchip_state=irq_chip_set_parent_state,
            irq_get_irqchip_state=irq_chip_get_parent_state, flags=IRQCHIP_SKIP_SET_WAKE)
        self.nexus = kernel.irq.create_domain(
            self.NAME, fwnode, IrqDomainOps(alloc=self._alloc, free=self._free),
            parent=kernel.gic.domain, host_data=self, bus_token=DomainBusToken.NEXUS)
        self._msi_domains(kernel, fwnode, prefix)

    def _msi_domains(self, kernel: Kernel, fwnode: Fwnode, prefix: str) -> None:
        """The MSI domains on top of the nexus: PCI-MSI and platform-MSI."""
        pci_chip = kernel.pci.msi_chip(f"{prefix}-PCI-MSI", msi_domain_set_affinity)
        flags = (MSI_FLAG_USE_DEF_DOM_OPS | MSI_FLAG_USE_DEF_CHIP_OPS | MSI_FLAG_PCI_MSIX
                 | MSI_FLAG_MULTI_PCI_MSI)
        self.pci = MsiDomain(kernel.irq, f"{prefix}-PCI-MSI", fwnode,
                             MsiDomainInfo(flags, pci_chip), self.nexus,
                             DomainBusToken.PCI_MSI)
        pmsi_chip = platform_msi_chip(f"{prefix}-pMSI", msi_domain_set_affinity)
        self.platform = MsiDomain(kernel.irq, f"{prefix}-pMSI", fwnode,
                                  MsiDomainInfo(MSI_FLAG_USE_DEF_DOM_OPS, pmsi_chip),
                                  self.nexus, DomainBusToken.PLATFORM_MSI)

    @abstractmethod
    def doorbell(self, spi: int) -> int | None:
        """The address a device writes SPI ``spi``'s INTID to (None: the provider does not
        know it -- a host chooses the message)."""

    def compose_msi_msg(self, d: IrqData, msg: MsiMsg) -> None:
        bell = self.doorbell(d.hwirq)
        assert bell is not None
        msg.address = bell
        msg.data = d.hwirq

    def _alloc(self, domain: IrqDomain, virq: int, nr_irqs: int, arg: Any) -> None:
        if not isinstance(arg, MsiAllocInfo):
            raise KernelError(f"{self.NAME} allocation needs MSI allocation info", errno.EINVAL)
        blocks: list[MbiBlock] = []
        done = 0
        try:
            if arg.multi_msi:
                first = self.allocator.alloc(nr_irqs)
                blocks.append(MbiBlock(first, 1 << order_of(nr_irqs)))
                slots = [(blocks[0], first + i) for i in range(nr_irqs)]
            else:
                for _ in range(nr_irqs):
                    blocks.append(MbiBlock(self.allocator.alloc(1), 1))
                slots = [(b, b.first) for b in blocks]
            for b in blocks:
                bell = self.doorbell(b.first)
                if bell is not None and arg.address_limit is not None and \
                        bell >= arg.address_limit:
                    raise KernelError(f"{arg.dev_name}: the {self.NAME} doorbell at {bell:#x} "
                                      "is out of the device's MSI address reach", errno.EINVAL)
            for i, (block, spi) in enumerate(slots):
                irq_domain_alloc_irqs_parent(domain, virq + i, 1, IrqFwspec(
                    self.k.board.gic.fwnode, (GIC_IRQ_TYPE_SPI, spi - 32,
                                              IRQ_TYPE_EDGE_RISING)))
                done += 1
                d = irq_domain_set_hwirq_and_chip(domain, virq + i, spi, self.chip, block)
                d.set_trigger_type(IRQ_TYPE_EDGE_RISING)
                irq_chip_set_type_parent(d, IRQ_TYPE_EDGE_RISING)
                # Nothing latched for it while it was free (any bus master can write any
                # SPI into GICD_SETSPI_NSR) may reach its new owner.
                self.k.writel(1 << (spi % 32), self.k.board.gic.dist_base
                              + GICD.ICPENDR.at(spi // 32))
        except KernelError:
            if done:
                irq_domain_free_irqs_parent(domain, virq, done)
            for b in blocks:
                self.allocator.free(b.first, b.size)
            raise

    def _free(self, domain: IrqDomain, virq: int, nr_irqs: int) -> None:
        """Give the SPIs back, their pending state discarded: an MBI latched before the
        free must not reach the SPI's next owner (Linux's MBI driver leaves it, and the
        next owner takes a spurious interrupt; the model's choice is the strict one,
        as Direct LPI's CLRLPIR on free)."""
        blocks: list[MbiBlock] = []
        dist = self.k.board.gic.dist_base
        for i in range(nr_irqs):
            d = irq_domain_get_irq_data(domain, virq + i)
            b: MbiBlock = d.chip_data
            if b not in blocks:
                blocks.append(b)
            if d.hwirq:
                # Disabled too: an SPI left enabled would be delivered, unowned, the next
                # time anything made it pending.
                bit = 1 << (d.hwirq % 32)
                self.k.writel(bit, dist + GICD.ICENABLER.at(d.hwirq // 32))
                self.k.gic.dist_wait_for_rwp()
                self.k.writel(bit, dist + GICD.ICPENDR.at(d.hwirq // 32))
            irq_domain_reset_irq_data(d)
        irq_domain_free_irqs_parent(domain, virq, nr_irqs)
        for b in blocks:
            self.allocator.free(b.first, b.size)


class Mbi(SpiMsi):
    """The MBI MSI provider of one kernel."""

    NAME = "MBI"

    def __init__(self, kernel: Kernel) -> None:
        gic = kernel.board.gic
        self._doorbell = gic.dist_base + GICD.SETSPI_NSR.offset
        super().__init__(kernel, gic.fwnode, gic.mbi_ranges, "MBI")
        for first, count in gic.mbi_ranges:
            kernel.log.info(f"GICv3: MBI range [{first}:{first + count - 1}]")
        kernel.log.info(f"GICv3: Using MBI frame {gic.dist_base:#018x}")

    def doorbell(self, spi: int) -> int:
        return self._doorbell


def mbi_init(kernel: Kernel) -> Mbi | None:
    """Register MBIs only if firmware names them and the distributor implements them."""
    gic = kernel.board.gic
    log = kernel.log
    if not (gic.msi_controller and gic.mbi_ranges):
        return None
    if not kernel.gic.has_mbis:
        log.warn("GICv3: MBIs described by firmware, but GICD_TYPER.MBIS is 0: not used as "
                 "an MSI provider")
        return None
    last = kernel.gic.irq_nr - 1
    bad = [(f, n) for f, n in gic.mbi_ranges if f < 32 or f + n - 1 > last]
    if bad:
        log.err(f"GICv3: MBI ranges {bad} lie outside the implemented SPIs 32..{last}: MBIs "
                "not used")
        return None
    return Mbi(kernel)
