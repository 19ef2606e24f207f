"""Direct LPI: MSIs written straight into a redistributor's GICR_SETLPIR (no ITS).

Shaped like GICv3-MBI, as the review asked (R10): a nexus domain under the GIC
domain, PCI-MSI and platform-MSI domains on top; the message is ``address = RD
base + GICR_SETLPIR, data = INTID``.  An LPI is only an INTID from the one global
allocator (R1, R2).  Arm IHI 0069 fixes what the driver can do: the *address*
picks the RD, no register reads or moves an LPI's pending state while LPIs are
enabled, an RD may cache any LPI's configuration until GICR_INVLPIR, and the one
property table is shared by every RD.  Hence (docs/direct-lpi.md argues each):

* **A move only re-targets the device.**  The new RD is invalidated if it may hold
  a stale copy of the configuration; the MSI layer rewrites the device and reads it
  back.  What is already pending on the old RD, or still in flight to it, is
  delivered there -- to the old CPU, once -- since the LPI stays enabled in the
  table.  Nothing is carried, so nothing is made up; nothing runs on the old CPU.
* **Every RD that may hold an LPI is tracked** (``LpiGroup.rds``: each RD its
  message has named since allocation), and every configuration change is
  invalidated on all of them: a masked LPI is masked wherever a late write lands.
* **CPU offline** is the one time pending state must leave an RD: the dying CPU,
  in the stopper after its interrupts were migrated, drains its own RD -- by
  clearing EnableLPIs where GICR_CTLR.CES allows it (the RD writes its pending
  table back); otherwise by acknowledging what is pending on its own CPU
  interface, each *masked* LPI that may be pending there enabled for that instant
  on this RD alone (and masked again, on every RD that may cache it, before
  anything is carried).  What it finds is made pending on the LPI's new RD.
* **Deactivation discards** what is pending on every tracked RD (as the ITS's
  DISCARD does); **allocation scrubs** every RD, so an INTID's next owner never
  receives what a previous owner, a stray write or a previous kernel left.
* **MultiMSI** (R3): one aligned block, one address, one target.  The first
  vector's affinity moves the block; each other vector follows under its own
  descriptor lock (deferred work), and asking one of them for a CPU the block does
  not target is refused (EINVAL).  A block whose first vector is not started is
  moved off a dying CPU through that vector by the dying CPU.
* Pending state is real (R4): SETLPIR / CLRLPIR; PENDING cannot be read.  No vCPU
  affinity (R5); no isolation flag (R6).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from directlpi.hw.regs import GICR, LPI_CFG_ENABLE
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
    IRQD_AFFINITY_MANAGED,
    IRQD_AFFINITY_ON_ACTIVATE,
    IRQD_IRQ_STARTED,
    IRQD_RESEND_WHEN_IN_PROGRESS,
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
from directlpi.kernel.irq.hotplug import migrate_to
from directlpi.kernel.irqchip.gic_v3 import GIC_IRQ_TYPE_LPI
from directlpi.kernel.irqchip.lpi_range import order_of
from directlpi.kernel.msi import (
    MSI_FLAG_MULTI_MSI_ONE_TARGET,
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
    """Target CPU: whose RD the message addresses (-1 while no member is activated)."""
    rds: set[int] = field(default_factory=set)
    """CPUs whose RD may hold these LPIs (pending, or a cached configuration)."""
    active: set[int] = field(default_factory=set)
    """Activated member virqs."""


class DirectLpi:
    """The Direct LPI MSI provider of one kernel."""

    def __init__(self, kernel: Kernel) -> None:
        assert kernel.lpi is not None and kernel.gic.domain is not None
        self.k = kernel
        self.lpi = kernel.lpi
        self.gic = kernel.gic
        self.groups: set[LpiGroup] = set()
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
        pci_chip = kernel.pci.msi_chip("DLPI-MSI", msi_domain_set_affinity,
                                       IRQCHIP_AFFINITY_PRE_STARTUP)
        flags = (MSI_FLAG_USE_DEF_DOM_OPS | MSI_FLAG_USE_DEF_CHIP_OPS | MSI_FLAG_PCI_MSIX
                 | MSI_FLAG_MULTI_PCI_MSI | MSI_FLAG_MULTI_MSI_ONE_TARGET)
        self.pci = MsiDomain(kernel.irq, "DLPI-PCI-MSI", fwnode, MsiDomainInfo(flags, pci_chip),
                             self.nexus, DomainBusToken.PCI_MSI)
        pmsi_chip = platform_msi_chip("DLPI-PMSI", msi_domain_set_affinity,
                                      IRQCHIP_AFFINITY_PRE_STARTUP)
        self.platform = MsiDomain(kernel.irq, "DLPI-pMSI", fwnode,
                                  MsiDomainInfo(MSI_FLAG_USE_DEF_DOM_OPS, pmsi_chip),
                                  self.nexus, DomainBusToken.PLATFORM_MSI)
        kernel.cpu_dying_hooks.append(self._cpu_dying)
        kernel.log.info("GICv3: Direct LPI: MSIs target redistributors (GICR_SETLPIR); "
                        "no ITS, no MSI isolation")

    # -- the chip --------------------------------------------------------------------------

    def mask(self, d: IrqData) -> None:
        g: LpiGroup = d.chip_data
        self.lpi.lpi_update_config(sorted(g.rds), d.hwirq, LPI_CFG_ENABLE, 0,
                                   partial(self._config_failed, d))

    def _config_failed(self, d: IrqData, rd: int, exc: KernelError) -> None:
        """irq_mask/irq_unmask cannot fail (void in Linux): an RD whose GICR_SYNCR never
        clears is reported, and every other RD is still invalidated.  The property byte
        says what the kernel recorded, so the next invalidation there makes it true."""
        self.k.log.err(f"DirectLPI: LPI {d.hwirq}: {exc} on CPU{rd}'s redistributor: the "
                       "configuration change may not have reached it")

    def unmask(self, d: IrqData) -> None:
        g: LpiGroup = d.chip_data
        if d.irq not in g.active:
            # A chip callback returns nothing in Linux: the core refuses this before it
            # gets here (Kernel.unmask_irq); anyone else gets a warning, not an LPI on.
            self.k.log.warn(f"DirectLPI: LPI {d.hwirq} is not activated: it targets no "
                            "redistributor; not unmasked")
            return
        self.lpi.lpi_update_config(sorted(g.rds), d.hwirq, 0, LPI_CFG_ENABLE,
                                   partial(self._config_failed, d))

    def _pick(self, g: LpiGroup, mask: Cpumask, force: bool) -> int:
        """The first CPU of ``mask`` that is online (unless forced), whose RD takes LPIs,
        and that the device can reach (R9, R11).  ENOSPC when only the device's address
        width stands in the way (so CPU offline breaks the affinity and tries any online
        CPU, as Linux's ``migrate_one_irq`` does for a vector domain out of vectors);
        EINVAL otherwise."""
        online = self.k.irq.online
        rdists = self.gic.rdists
        cands = [c for c in sorted(mask) if force or c in online]
        live = [c for c in cands if rdists[c].lpi_enabled]
        reach = [c for c in live if g.address_limit is None
                 or rdists[c].rd_base + GICR.SETLPIR.offset < g.address_limit]
        if reach:
            return reach[0]
        if live:
            raise KernelError(f"{g.dev_name} has 32-bit MSI addressing: the redistributors of "
                              f"CPUs {live} are above 4 GiB, out of its reach", errno.ENOSPC)
        if cands:
            raise KernelError(f"{g.dev_name}: LPIs are off on the redistributors of CPUs "
                              f"{cands} (offline, EnableLPIs cleared): a write there would be "
                              "ignored", errno.EINVAL)
        raise KernelError(f"{g.dev_name}: no online CPU in {sorted(mask)}", errno.EINVAL)

    def set_affinity(self, d: IrqData, mask: Cpumask, force: bool) -> int:
        g: LpiGroup = d.chip_data
        if d.irq != g.virqs[0]:
            if g.cpu in mask and (force or g.cpu in self.k.irq.online):
                d.update_effective_affinity(frozenset((g.cpu,)))
                return IRQ_SET_MASK_OK_DONE
            raise KernelError(
                f"IRQ {d.irq} is vector {g.virqs.index(d.irq)} of {g.dev_name}'s MultiMSI block: "
                "its vectors share one message address, so one target (CPU"
                f"{g.cpu}); set the affinity of its first vector, IRQ {g.virqs[0]}",
                errno.EINVAL)
        cpu = self._pick(g, mask, force)
        if cpu == g.cpu:
            d.update_effective_affinity(frozenset((cpu,)))
            return IRQ_SET_MASK_OK_DONE
        self._retarget(g, cpu)
        d.update_effective_affinity(frozenset((cpu,)))
        if len(g.virqs) > 1:
            self.k.schedule_work(partial(self._sync_members, g))
        return IRQ_SET_MASK_OK            # the MSI layer rewrites (and reads back) the device

    def _retarget(self, g: LpiGroup, cpu: int) -> None:
        """Aim the group at ``cpu``'s RD.  What can fail (GICR_SYNCR never clearing:
        ETIMEDOUT) happens before anything is recorded, so a failed move changes nothing."""
        if cpu not in g.rds:              # it may cache a configuration that went stale
            for d in self._members(g):
                self.lpi.inv_lpi(cpu, d.hwirq)
        old, g.cpu = g.cpu, cpu
        g.rds.add(cpu)
        if (old >= 0 and old not in self.k.irq.online and old != self.k.this_cpu
                and not any(self._started(v) for v in g.virqs)):
            # Left behind on an offline CPU's RD by a group nobody has started (its CPU
            # went down before request_irq, so the dying CPU carried nothing for it): what
            # that RD holds was written before anyone asked for it and would otherwise
            # surface, out of turn, when the CPU returns.  A started group's state there
            # is owed: it stays tracked, and is delivered when the CPU returns.
            for d in self._members(g):
                self.lpi.clear_pending(old, d.hwirq)
            g.rds.discard(old)

    def _started(self, virq: int) -> bool:
        desc = self.k.irq_to_desc(virq)
        return desc is not None and desc.irq_data.has(IRQD_IRQ_STARTED)

    def _sync_members(self, g: LpiGroup) -> None:
        """Deferred, in process context: the block's other vectors follow its first, each
        updated under its own descriptor lock."""
        k = self.k
        first = k.irq_to_desc(g.virqs[0])
        if first is None or g not in self.groups:
            return
        with k.ctx.locked(first.lock):
            mask = first.irq_data.common.affinity
        for virq in g.virqs[1:]:
            desc = k.irq_to_desc(virq)
            if desc is None:
                continue
            with k.ctx.locked(desc.lock):
                desc.irq_data.common.affinity = mask
                if virq in g.active:
                    desc.irq_data.update_effective_affinity(frozenset((g.cpu,)))

    def _members(self, g: LpiGroup) -> list[IrqData]:
        return [irq_domain_get_irq_data(self.nexus, v) for v in g.virqs]

    def retrigger(self, d: IrqData) -> int:
        g: LpiGroup = d.chip_data
        if d.irq in g.active and not self.gic.rdists[g.cpu].lpi_enabled:
            return 0            # its RD takes no LPIs: genirq resends it in software
        self._set_pending(d, True)
        return 1

    def _set_pending(self, d: IrqData, value: bool) -> None:
        """SETLPIR on the target RD; clearing clears every RD that may hold it."""
        g: LpiGroup = d.chip_data
        if d.irq not in g.active:
            raise KernelError(f"DirectLPI: LPI {d.hwirq} is not activated: it has no "
                              "redistributor to be pending on", errno.EINVAL)
        if value:
            if not self.gic.rdists[g.cpu].lpi_enabled:
                raise KernelError(f"DirectLPI: LPI {d.hwirq} targets CPU{g.cpu}, whose "
                                  "redistributor has LPIs off: it cannot be made pending "
                                  "there", errno.EINVAL)
            self.lpi.set_pending(g.cpu, d.hwirq)
        else:
            for cpu in sorted(g.rds):
                self.lpi.clear_pending(cpu, d.hwirq)

    def set_irqchip_state(self, d: IrqData, which: int, value: bool) -> None:
        if which == IRQCHIP_STATE_PENDING:
            self._set_pending(d, value)
        elif which == IRQCHIP_STATE_ACTIVE and not value:
            return                                     # LPIs are never active
        else:
            raise KernelError(f"DirectLPI: LPI {d.hwirq}: state {which} cannot be set (LPIs "
                              "have no active state; masking is disable_irq's)", errno.EINVAL)

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
        self.groups.update(groups)

    def _alloc_one(self, domain: IrqDomain, virq: int, intid: int, g: LpiGroup) -> None:
        fwspec = IrqFwspec(self.k.board.gic.fwnode, (GIC_IRQ_TYPE_LPI, intid,
                                                     IRQ_TYPE_EDGE_RISING))
        irq_domain_alloc_irqs_parent(domain, virq, 1, fwspec)
        d = irq_domain_set_hwirq_and_chip(domain, virq, intid, self.chip, g)
        d.set(IRQD_SINGLE_TARGET | IRQD_AFFINITY_ON_ACTIVATE | IRQD_RESEND_WHEN_IN_PROGRESS)
        d.set_trigger_type(IRQ_TYPE_EDGE_RISING)
        # Disabled at the default priority whatever a previous owner left, and nothing
        # left pending or cached for it on any RD.
        self.lpi.lpi_write_config(intid, 0xFF, self.lpi.prop_prio)
        self.lpi.scrub(intid)

    def _free(self, domain: IrqDomain, virq: int, nr_irqs: int) -> None:
        """Give the INTIDs back (deactivation discarded their pending state; the next
        allocation scrubs every RD again)."""
        groups = []
        for i in range(nr_irqs):
            d = irq_domain_get_irq_data(domain, virq + i)
            g: LpiGroup = d.chip_data
            if g not in groups:
                groups.append(g)
            irq_domain_reset_irq_data(d)
        irq_domain_free_irqs_parent(domain, virq, nr_irqs)
        for g in groups:
            self.groups.discard(g)
            self.lpi.free_lpis(g.base, g.size)

    def _activate(self, domain: IrqDomain, d: IrqData, reserve: bool) -> None:
        """Pick the target from the affinity (affinity-on-activate)."""
        g: LpiGroup = d.chip_data
        if not g.active:
            self._retarget(g, self._pick(g, d.common.affinity or self.k.irq.possible, False))
        g.active.add(d.irq)
        d.update_effective_affinity(frozenset((g.cpu,)))

    def _deactivate(self, domain: IrqDomain, d: IrqData) -> None:
        """Discard what is pending on every RD that may hold it, as the ITS's DISCARD does:
        the MSI layer has already silenced the device and read it back, so nothing of it
        is still in flight.  Deactivation cannot fail (void in Linux): an RD whose
        GICR_SYNCR never clears is reported and the others are still cleared."""
        g: LpiGroup = d.chip_data
        for cpu in sorted(g.rds):
            try:
                self.lpi.clear_pending(cpu, d.hwirq)
            except KernelError as exc:
                self.k.log.err(f"DirectLPI: LPI {d.hwirq}: {exc} on CPU{cpu}'s "
                               "redistributor: what is pending there may not be discarded")
        g.active.discard(d.irq)
        d.update_effective_affinity(frozenset())
        if not g.active:
            g.cpu = -1

    # -- CPU hotplug ------------------------------------------------------------------------------

    def _cpu_dying(self, cpu: int) -> None:
        """On the dying CPU, in the stopper (interrupts off here, every other online CPU
        spinning with its interrupts off), its interrupts already migrated: what its RD
        still holds for an LPI goes to the RD that LPI now targets.  A dying callback
        cannot fail: an RD that does not answer (GICR_SYNCR or RWP never clearing) is
        reported, and whatever was shown is masked again and whatever was taken is
        carried all the same.  A started LPI whose move away failed (warned) still targets
        this CPU: its RD then keeps LPIs on even where EnableLPIs could be cleared, so that
        what is written to it meanwhile waits there for the CPU's return instead of being
        dropped, and the RD is drained at the CPU interface, as with CES = 0."""
        log = self.k.log
        self._move_stranded(cpu)
        pending: list[int] = []
        shown: list[tuple[LpiGroup, IrqData]] = []
        keep: set[LpiGroup] = set()
        left_here = any(g.cpu == cpu and any(self._started(v) for v in g.virqs)
                        for g in self.groups)
        try:
            written_back = None if left_here else self.lpi.writeback_pending(cpu)
            if written_back is not None:               # CES = 1: the RD wrote it all back
                pending = written_back
            else:                                      # CES = 0: read it at the CPU interface
                self._show_masked(cpu, shown)
                self.gic.drain_this_cpu(pending.append)
        except KernelError as exc:
            log.err(f"DirectLPI: CPU{cpu}: {exc}: what its redistributor holds may not "
                    "be carried")
        finally:
            for g, d in shown:                         # masked again, wherever it may be cached
                def failed(rd: int, exc: KernelError, g: LpiGroup = g, d: IrqData = d) -> None:
                    keep.add(g)
                    log.err(f"DirectLPI: LPI {d.hwirq}: {exc} on CPU{rd}'s redistributor: it "
                            "may keep the LPI enabled in its cache")
                self.lpi.lpi_update_config(sorted(g.rds), d.hwirq, LPI_CFG_ENABLE, 0, failed)
            for intid in pending:    # after the re-mask: no RD loads the transient byte
                self._carry(intid, cpu)
        for g in self.groups:
            if g.cpu != cpu and g not in keep:
                g.rds.discard(cpu)

    def _move_stranded(self, cpu: int) -> None:
        """A MultiMSI block whose first vector is not started is not migrated (genirq moves
        only started interrupts), and no later vector can move it (the first owns the
        block's message): left on the dying CPU, a later vector could neither be started
        nor reach an online CPU.  Move it here, through its first vector under that
        vector's descriptor lock, as the hotplug core would have."""
        k = self.k
        for g in sorted(self.groups, key=lambda g: g.base):
            if g.cpu != cpu or len(g.virqs) == 1 or self._started(g.virqs[0]):
                continue
            desc = k.irq_to_desc(g.virqs[0])
            if desc is None or (desc.irq_data.has(IRQD_AFFINITY_MANAGED)
                                and not desc.irq_data.common.affinity & k.irq.online):
                continue                   # managed: its started members were shut down
            with k.ctx.locked(desc.lock):
                migrate_to(desc, desc.irq_data.common.affinity)
            k.schedule_work(partial(self._sync_members, g))

    def _show_masked(self, cpu: int, shown: list[tuple[LpiGroup, IrqData]]) -> None:
        """CES = 0: a masked LPI's pending state is invisible to the CPU interface, and no
        register moves it.  So, for an instant, each masked LPI that moved away but may
        still be pending here is enabled on this RD alone (property byte, then INVLPIR
        here), and recorded in ``shown`` before anything can fail.  Another RD in its
        ``rds`` may load the byte meanwhile (a refill, or a late write landing there); its
        CPU has interrupts off (the stopper), and the re-mask invalidates it again."""
        for g in sorted(self.groups, key=lambda g: g.base):
            if cpu not in g.rds or g.cpu in (cpu, -1):
                continue
            for d in self._members(g):
                if d.irq in g.active and not self.lpi.lpi_config(d.hwirq) & LPI_CFG_ENABLE:
                    shown.append((g, d))
                    # One RD that does not answer must not stop the drain of the others.
                    self.lpi.lpi_update_config((cpu,), d.hwirq, 0, LPI_CFG_ENABLE,
                                               partial(self._config_failed, d))

    def _carry(self, intid: int, cpu: int) -> None:
        virq = self.nexus.revmap.get(intid)
        g: LpiGroup | None = None if virq is None else irq_domain_get_irq_data(
            self.nexus, virq).chip_data
        if g is None or g.cpu < 0:
            return                 # unallocated (a stray write), or deactivated: not owed
        if g.cpu != cpu:
            self.lpi.set_pending(g.cpu, intid)
        elif any(self._started(v) for v in g.virqs):
            # Its move failed (warned): put it back where it waits for this CPU, if the RD
            # still takes LPIs; with EnableLPIs cleared there is nowhere to keep it.
            if self.gic.rdists[cpu].lpi_enabled:
                self.lpi.set_pending(cpu, intid)
            else:
                self.k.log.err(f"DirectLPI: LPI {intid} ({g.dev_name}) still targets CPU{cpu}, "
                               "whose LPIs are off: it is lost")


def direct_lpi_init(kernel: Kernel) -> DirectLpi | None:
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
    return DirectLpi(kernel)
