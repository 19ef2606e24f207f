"""Direct LPI: MSIs written straight into a redistributor's GICR_SETLPIR (no ITS).

Shaped like GICv3-MBI, as the review asked: a nexus domain under the GIC
domain, PCI-MSI and platform-MSI domains on top.  An LPI is only an INTID from
the one global allocator (R1, R2); the message is ``address = RD base +
GICR_SETLPIR, data = INTID`` (R10), so the *address* selects the target CPU.

Consequences the driver implements and documents:

* MultiMSI (R3): a block of 2^k INTIDs, naturally aligned, shares one address
  and therefore one target.  Moving any member moves the whole block; every
  member's effective affinity follows.
* Affinity (R9): the first online CPU of the mask (whose RD the device can reach:
  a function without 64-bit MSI addressing only reaches RDs below 4 GiB, R11).
  The message changes, so the MSI layer rewrites the device; then a pending LPI
  left on the old RD is carried over (GICR_CLRLPIR old, GICR_SETLPIR new).  No
  register says whether an LPI is pending, so the old CPU -- interrupts masked,
  as in a cross-call or on its way offline -- probes it: the LPI is made the
  highest priority (0, enabled) on its old RD and ICC_HPPIR1_EL1 tells whether it
  is pending.  Priority 0 is reserved for this probe.
* Pending state is real (R4): ``irq_set_irqchip_state(PENDING)`` writes
  SETLPIR/CLRLPIR, ``irq_retrigger`` writes SETLPIR.  ``irq_get_irqchip_state``
  refuses PENDING (EINVAL): the architecture gives no register that reads an
  LPI's pending bit while LPIs are enabled.  ACTIVE is always false (LPIs have no
  active state); MASKED is the property table's Enable bit.
* No ``irq_set_vcpu_affinity`` (R5); no ISOLATED_MSI flag (R6): any bus master
  can write any INTID into any RD.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from directlpi.hw.regs import GICR, LPI_CFG_ENABLE, LPI_CFG_PRIORITY
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.chip import (
    IRQ_SET_MASK_OK,
    IRQ_SET_MASK_OK_DONE,
    IRQCHIP_AFFINITY_PRE_STARTUP,
    IRQCHIP_SKIP_SET_WAKE,
    IRQCHIP_STATE_ACTIVE,
    IRQCHIP_STATE_MASKED,
    IRQCHIP_STATE_PENDING,
    IrqChip,
    irq_chip_eoi_parent,
)
from directlpi.kernel.irq.desc import (
    IRQ_TYPE_EDGE_RISING,
    IRQD_AFFINITY_ON_ACTIVATE,
    IRQD_SINGLE_TARGET,
    Cpumask,
    IrqData,
)
from directlpi.kernel.irq.domain import (
    DomainBusToken,
    IrqDomain,
    IrqDomainOps,
    IrqFwspec,
    irq_domain_alloc_irqs_parent,
    irq_domain_free_irqs_parent,
    irq_domain_get_irq_data,
    irq_domain_reset_irq_data,
    irq_domain_set_hwirq_and_chip,
)
from directlpi.kernel.irqchip.gic_v3 import GIC_IRQ_TYPE_LPI
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


@dataclass(eq=False)
class LpiGroup:
    """INTIDs that share one message address: a MultiMSI block, or one vector."""

    base: int
    size: int
    """INTIDs reserved (a power of two for a MultiMSI block)."""
    virqs: list[int]
    address_limit: int | None
    dev_name: str
    cpu: int = -1
    """Target CPU: whose RD the message addresses (-1 until activated)."""
    moved_from: int = -1
    active: set[int] = field(default_factory=set)
    held: set[int] = field(default_factory=set)
    """INTIDs that were pending when deactivated; made pending again on activation."""


class DirectLpi:
    """The Direct LPI MSI provider of one kernel."""

    def __init__(self, kernel: Kernel, quirks: frozenset[str] = frozenset()) -> None:
        assert kernel.lpi is not None and kernel.gic.domain is not None
        self.k = kernel
        self.lpi = kernel.lpi
        self.gic = kernel.gic
        #: Deliberately broken variants, for proving the invariant checker can fail:
        #: "no-inv-on-unmask", "no-message-rewrite", "no-discard-on-free".
        self.quirks = quirks
        self.chip = IrqChip(
            name="DirectLPI", irq_mask=self.mask, irq_unmask=self.unmask,
            irq_eoi=irq_chip_eoi_parent, irq_set_affinity=self.set_affinity,
            irq_retrigger=self.retrigger, irq_compose_msi_msg=self.compose_msi_msg,
            irq_set_irqchip_state=self.set_irqchip_state,
            irq_get_irqchip_state=self.get_irqchip_state, flags=IRQCHIP_SKIP_SET_WAKE)
        fwnode = kernel.board.gic.direct_lpi_fwnode
        self.nexus = kernel.irq.create_domain(
            "DirectLPI", fwnode, IrqDomainOps(alloc=self._alloc, free=self._free,
                                              activate=self._activate,
                                              deactivate=self._deactivate),
            parent=kernel.gic.domain, host_data=self, bus_token=DomainBusToken.NEXUS)
        pci_chip = kernel.pci.msi_chip("DLPI-MSI", self._msi_set_affinity,
                                       IRQCHIP_AFFINITY_PRE_STARTUP)
        flags = (MSI_FLAG_USE_DEF_DOM_OPS | MSI_FLAG_USE_DEF_CHIP_OPS | MSI_FLAG_PCI_MSIX
                 | MSI_FLAG_MULTI_PCI_MSI)
        self.pci = MsiDomain(kernel.irq, "DLPI-PCI-MSI", fwnode, MsiDomainInfo(flags, pci_chip),
                             self.nexus, DomainBusToken.PCI_MSI)
        pmsi_chip = platform_msi_chip("DLPI-PMSI", self._msi_set_affinity,
                                      IRQCHIP_AFFINITY_PRE_STARTUP)
        self.platform = MsiDomain(kernel.irq, "DLPI-pMSI", fwnode,
                                  MsiDomainInfo(MSI_FLAG_USE_DEF_DOM_OPS, pmsi_chip),
                                  self.nexus, DomainBusToken.PLATFORM_MSI)
        kernel.log.info("GICv3: Direct LPI: MSIs target redistributors (GICR_SETLPIR); "
                        "no ITS, no MSI isolation")

    # -- the chip --------------------------------------------------------------------------

    def mask(self, d: IrqData) -> None:
        g: LpiGroup = d.chip_data
        if g.cpu < 0:               # never activated: no RD holds it; activation invalidates
            self.lpi.lpi_write_config(d.hwirq, LPI_CFG_ENABLE, 0)
            return
        self.lpi.lpi_update_config(g.cpu, d.hwirq, LPI_CFG_ENABLE, 0)

    def unmask(self, d: IrqData) -> None:
        g: LpiGroup = d.chip_data
        if g.cpu < 0 or "no-inv-on-unmask" in self.quirks:
            self.lpi.lpi_write_config(d.hwirq, 0, LPI_CFG_ENABLE)
            return
        self.lpi.lpi_update_config(g.cpu, d.hwirq, 0, LPI_CFG_ENABLE)

    def _pick(self, g: LpiGroup, mask: Cpumask, force: bool) -> int:
        """The first CPU of ``mask`` that is online (unless forced) and reachable (R9, R11)."""
        online = self.k.irq.online
        cands = [c for c in sorted(mask) if force or c in online]
        reach = [c for c in cands if g.address_limit is None
                 or self.gic.rdists[c].rd_base + GICR.SETLPIR.offset < g.address_limit]
        if reach:
            return reach[0]
        if cands:
            raise KernelError(f"{g.dev_name} has 32-bit MSI addressing: the redistributors of "
                              f"CPUs {cands} are above 4 GiB, out of its reach", errno.EINVAL)
        raise KernelError(f"{g.dev_name}: no online CPU in {sorted(mask)}", errno.EINVAL)

    def set_affinity(self, d: IrqData, mask: Cpumask, force: bool) -> int:
        g: LpiGroup = d.chip_data
        cpu = self._pick(g, mask, force)
        if g.cpu < 0:
            return IRQ_SET_MASK_OK_DONE      # not activated: activation picks from the mask
        members = self._members(g)
        for m in members:
            m.update_effective_affinity(frozenset((cpu,)))
            if m is not d:
                m.common.affinity = frozenset(mask)      # the block moves as one (R3)
        if cpu == g.cpu:
            return IRQ_SET_MASK_OK_DONE
        g.moved_from, g.cpu = g.cpu, cpu
        for m in members:            # the new RD may hold a stale copy of the configuration
            self.lpi.inv_lpi(cpu, m.hwirq)
        if "no-message-rewrite" in self.quirks:
            return IRQ_SET_MASK_OK_DONE
        return IRQ_SET_MASK_OK

    def _members(self, g: LpiGroup) -> list[IrqData]:
        return [irq_domain_get_irq_data(self.nexus, v) for v in g.virqs]

    def complete_move(self, d: IrqData) -> None:
        """After the device was rewritten: carry what is pending on the old RD over."""
        g: LpiGroup = d.chip_data
        old, g.moved_from = g.moved_from, -1
        if old < 0:
            return
        for m in self._members(g):
            if self._pending_on(old, m.hwirq):
                self._lpir(old, GICR.CLRLPIR.offset, m.hwirq)
                self._lpir(g.cpu, GICR.SETLPIR.offset, m.hwirq)

    def _pending_on(self, cpu: int, intid: int) -> bool:
        """Probe on ``cpu`` (interrupts masked) whether ``intid`` is pending on its RD."""
        k = self.k
        if cpu not in k.irq.online and cpu != k.this_cpu:
            k.log.info(f"DirectLPI: LPI {intid} may stay pending on offline CPU{cpu}'s RD")
            return False
        saved = self.lpi.lpi_config(intid)
        self.lpi.lpi_update_config(cpu, intid, LPI_CFG_PRIORITY, LPI_CFG_ENABLE)
        with k.on_cpu(cpu):
            pending = k.read_sysreg("ICC_HPPIR1_EL1") == intid
        self.lpi.lpi_update_config(cpu, intid, 0xFF, saved)
        return pending

    def _lpir(self, cpu: int, offset: int, intid: int) -> None:
        base = self.gic.rdists[cpu].rd_base
        self.k.writeq(intid, base + offset)
        if offset == GICR.CLRLPIR.offset:
            while self.k.readl(base + GICR.SYNCR.offset) & 1:
                pass

    def retrigger(self, d: IrqData) -> int:
        self._set_pending(d, True)
        return 1

    def _set_pending(self, d: IrqData, value: bool) -> None:
        """SETLPIR / CLRLPIR on the target RD; with no target (not activated), the
        pending state is kept and written on activation."""
        g: LpiGroup = d.chip_data
        if d.irq not in g.active:
            (g.held.add if value else g.held.discard)(d.hwirq)
            return
        self._lpir(g.cpu, (GICR.SETLPIR if value else GICR.CLRLPIR).offset, d.hwirq)

    def set_irqchip_state(self, d: IrqData, which: int, value: bool) -> None:
        if which == IRQCHIP_STATE_PENDING:
            self._set_pending(d, value)
        elif which == IRQCHIP_STATE_MASKED:
            (self.mask if value else self.unmask)(d)
        elif which == IRQCHIP_STATE_ACTIVE and not value:
            return                                     # LPIs are never active
        else:
            raise KernelError(f"DirectLPI: LPI {d.hwirq}: state {which} cannot be set "
                              "(LPIs have no active state)", errno.EINVAL)

    def get_irqchip_state(self, d: IrqData, which: int) -> bool:
        if which == IRQCHIP_STATE_ACTIVE:
            return False
        if which == IRQCHIP_STATE_MASKED:
            return not self.lpi.lpi_config(d.hwirq) & LPI_CFG_ENABLE
        raise KernelError(f"DirectLPI: LPI {d.hwirq}: no register reads an LPI's pending "
                          "state while LPIs are enabled", errno.EINVAL)

    def compose_msi_msg(self, d: IrqData, msg: MsiMsg) -> None:
        g: LpiGroup = d.chip_data
        msg.address = self.gic.rdists[g.cpu].rd_base + GICR.SETLPIR.offset
        msg.data = d.hwirq

    # -- the MSI-level chips --------------------------------------------------------------------

    def _msi_set_affinity(self, d: IrqData, mask: Cpumask, force: bool) -> int:
        ret = msi_domain_set_affinity(d, mask, force)
        assert d.parent_data is not None
        self.complete_move(d.parent_data)
        return ret

    # -- the nexus domain --------------------------------------------------------------------------

    def _alloc(self, domain: IrqDomain, virq: int, nr_irqs: int, arg: Any) -> None:
        if not isinstance(arg, MsiAllocInfo):
            raise KernelError("DirectLPI allocation needs MSI allocation info", errno.EINVAL)
        groups: list[LpiGroup] = []
        done = 0
        try:
            if arg.multi_msi:
                base = self.lpi.alloc_lpis(nr_irqs, arg.data_limit)
                groups.append(LpiGroup(base, 1 << order_of(nr_irqs),
                                       list(range(virq, virq + nr_irqs)), arg.address_limit,
                                       arg.dev_name))
                slots = [(groups[0], base + i) for i in range(nr_irqs)]
            else:
                slots = []
                for i in range(nr_irqs):
                    base = self.lpi.alloc_lpis(1, arg.data_limit)
                    groups.append(LpiGroup(base, 1, [virq + i], arg.address_limit,
                                           arg.dev_name))
                    slots.append((groups[-1], base))
            for i, (g, intid) in enumerate(slots):
                self._alloc_one(domain, virq + i, intid, g)
                done += 1
        except KernelError:
            if done:
                irq_domain_free_irqs_parent(domain, virq, done)
            for g in groups:
                self.lpi.free_lpis(g.base, g.size)
            raise

    def _alloc_one(self, domain: IrqDomain, virq: int, intid: int, g: LpiGroup) -> None:
        fwspec = IrqFwspec(self.k.board.gic.fwnode, (GIC_IRQ_TYPE_LPI, intid,
                                                     IRQ_TYPE_EDGE_RISING))
        irq_domain_alloc_irqs_parent(domain, virq, 1, fwspec)
        d = irq_domain_set_hwirq_and_chip(domain, virq, intid, self.chip, g)
        d.set(IRQD_SINGLE_TARGET | IRQD_AFFINITY_ON_ACTIVATE)
        d.set_trigger_type(IRQ_TYPE_EDGE_RISING)
        # Start disabled at the default priority whatever a previous owner left.
        self.lpi.lpi_write_config(intid, 0xFF, 0xA0)

    def _free(self, domain: IrqDomain, virq: int, nr_irqs: int) -> None:
        """Give the INTIDs back -- after discarding anything still pending on the RD
        (as the ITS's DISCARD does), so that it cannot reach their next owner."""
        groups = []
        for i in range(nr_irqs):
            d = irq_domain_get_irq_data(domain, virq + i)
            g: LpiGroup = d.chip_data
            if g not in groups:
                groups.append(g)
            if g.cpu >= 0 and d.hwirq and "no-discard-on-free" not in self.quirks:
                self._lpir(g.cpu, GICR.CLRLPIR.offset, d.hwirq)
            irq_domain_reset_irq_data(d)
        irq_domain_free_irqs_parent(domain, virq, nr_irqs)
        for g in groups:
            g.held.clear()
            self.lpi.free_lpis(g.base, g.size)

    def _activate(self, domain: IrqDomain, d: IrqData, reserve: bool) -> None:
        """Pick the target from the affinity (affinity-on-activate); the RD drops any
        configuration it may have cached for this INTID."""
        g: LpiGroup = d.chip_data
        if not g.active:
            g.cpu = self._pick(g, d.common.affinity or self.k.irq.possible, False)
        g.active.add(d.irq)
        d.update_effective_affinity(frozenset((g.cpu,)))
        self.lpi.inv_lpi(g.cpu, d.hwirq)
        if d.hwirq in g.held:
            g.held.discard(d.hwirq)
            self._lpir(g.cpu, GICR.SETLPIR.offset, d.hwirq)

    def _deactivate(self, domain: IrqDomain, d: IrqData) -> None:
        """Keep what is pending for the next activation, wherever that targets (R4): a
        managed interrupt shut down with its last CPU -- deactivated on that very CPU,
        which can still probe its RD -- may be restarted on another CPU of its mask."""
        g: LpiGroup = d.chip_data
        if g.cpu >= 0 and "no-discard-on-free" not in self.quirks and \
                self._pending_on(g.cpu, d.hwirq):
            self._lpir(g.cpu, GICR.CLRLPIR.offset, d.hwirq)
            g.held.add(d.hwirq)
        g.active.discard(d.irq)
        d.update_effective_affinity(frozenset())


def direct_lpi_init(kernel: Kernel, quirks: frozenset[str] = frozenset()) -> DirectLpi | None:
    """Register Direct LPI only if firmware names it and every RD supports it (R7, R8)."""
    gic = kernel.board.gic
    log = kernel.log
    if not gic.direct_lpi:
        log.info("GICv3: Direct LPI not described by firmware: not used as an MSI provider")
        return None
    if not kernel.gic.has_direct_lpi:
        log.warn("GICv3: Direct LPI described by firmware, but not every redistributor reports "
                 "GICR_TYPER.DirectLPI: not used as an MSI provider")
        return None
    if kernel.lpi is None:
        log.err("GICv3: Direct LPI described by firmware, but LPIs are not enabled: not used "
                "as an MSI provider")
        return None
    return DirectLpi(kernel, quirks)
