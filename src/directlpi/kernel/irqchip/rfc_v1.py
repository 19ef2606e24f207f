"""The 2021 RFC "Direct LPI without ITS", replayed: a provider that behaves as v1 did.

A deliberately wrong MSI provider, chosen with ``BootParams(msi_provider="rfc-v1")``
in place of :mod:`~directlpi.kernel.irqchip.direct_lpi`, so that ``directlpi run
--provider rfc-v1`` shows each objection of the review
(``reference/direct-lpi-rfc-thread.txt``) as something the invariant checker, the
platform's audit or the review watch (:mod:`directlpi.sim.review`) *sees* go wrong.
Nothing here reports on itself.  It reproduces the RFC's behaviour, not its code;
Arm IHI 0069 is the architecture it gets wrong.  Each behaviour, and the review's
answer to it (DESIGN.md's R-numbers):

* **Per-DeviceID event maps, MSI data = EventID** (R1: "DirectLPI has no notion of
  event, collection, or anything like this. It deals with LPIs, and that's it.").
  A device record per DeviceID holds an event map and a collection map; the message
  is ``address = GICR_SETLPIR of the event's CPU, data = EventID``.  A redistributor
  takes the data as an INTID, so a device writes 0, 1, 2... -- no LPI at all -- into
  GICR_SETLPIR, and its handler never runs.
* **ITS-style LPI bookkeeping** (R2: "None of the ITS infrastructure makes any sense
  for DirectLPI anyway"): each device takes its LPIs from the allocator one at a time
  (the ITS's first-fit ``its_lpi_alloc``) and its events one at a time, so nothing
  makes a MultiMSI block one aligned run of INTIDs (R3: "how can MultiMSI be
  supported?").
* **Least-loaded CPU selection** (R9: "At best, this is premature optimisation."):
  per-CPU counts of managed and unmanaged LPIs, and activation picks the least loaded
  online CPU -- ignoring the requested affinity of an unmanaged interrupt.
* **Every vector its own CPU, one address per MultiMSI block** (R3: "Oh, that's is
  going to work so well with MultiMSI..."): each event has a collection of its own,
  but a MultiMSI function holds one address, the first vector's.
* **Affinity moves return IRQ_SET_MASK_OK_DONE** (R10: "You are trying to reuse the
  PCI-specific front-end of the ITS code, not even realising that it *cannot*
  work."): the collection map changes, the device is never rewritten, so it keeps
  writing the old redistributor.  (The ITS may answer so: MOVI moves the LPI.)
* **Pending state faked** (R4: "This is a joke, right?"): ``irq_set_irqchip_state
  (PENDING)`` succeeds and writes nothing; ``irq_retrigger`` is built on it, reports
  success, and the interrupt is not raised.
* **A vCPU affinity callback that refuses** (R5: "Then why are you providing this
  callback the first place?").
* **An isolation claim** (R6: "Remap what? ... From a security/isolation
  perspective, DirectLPI is a gaping hole."): the nexus carries
  IRQ_DOMAIN_FLAG_ISOLATED_MSI (the RFC's IRQ_DOMAIN_FLAG_MSI_REMAP), so
  ``msi_isolated()`` says yes and vfio accepts the device.
* **Chosen by the absence of an ITS, registered in IORT as ITS 0** (R7: "Please
  remove this. IORT has no notion of DirectLPI, and doesn't describe it at all.";
  "you cannot use the *absence* of an ITS to decide and use DirectLPIs"): it comes up
  whenever no ITS was probed and every RD reports GICR_TYPER.DirectLPI, whatever
  firmware describes; its domains hang off a named fwnode, registered as the IORT
  domain token of ITS ID 0.  Linux would hand it PCI devices through that token
  (``iort_get_device_domain``); the model's PCI layer looks domains up by the
  firmware's MSI parent, so its PCI-MSI domain answers every PCI-MSI lookup: that is
  what the token amounts to -- whatever firmware names.

What it does right, as the RFC did: the property byte then GICR_INVLPIR and
GICR_SYNCR on the RD the LPI is routed to (R11).
"""

from __future__ import annotations

import errno
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from directlpi.hw.regs import GICR, LPI_CFG_ENABLE
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.chip import (
    IRQ_SET_MASK_OK_DONE,
    IRQCHIP_SKIP_SET_WAKE,
    IRQCHIP_STATE_PENDING,
    IrqChip,
    irq_chip_eoi_parent,
)
from directlpi.kernel.irq.desc import (
    IRQ_TYPE_EDGE_RISING,
    IRQD_AFFINITY_MANAGED,
    IRQD_AFFINITY_ON_ACTIVATE,
    IRQD_SINGLE_TARGET,
    Cpumask,
    IrqData,
)
from directlpi.kernel.irq.domain import (
    IRQ_DOMAIN_FLAG_ISOLATED_MSI,
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

IORT_ITS_ID = 0
"""The ITS ID the RFC registered its domain token under (``iort_register_domain_token(0,
0, fwnode)``): no ITS of that ID exists."""


@dataclass(eq=False)
class RfcDevice:
    """The RFC's ``direct_lpi_device``: a DeviceID with its event and collection maps."""

    dev_id: int
    name: str
    lpis: list[int]
    """The device's LPIs, by EventID (each taken from the allocator on its own)."""
    used: bytearray = field(init=False)
    col_map: list[int] = field(init=False)
    """EventID -> the CPU it is routed to (-1: not activated)."""
    shared: bool = False

    def __post_init__(self) -> None:
        self.used = bytearray(len(self.lpis))
        self.col_map = [-1] * len(self.lpis)

    def alloc_event(self) -> int:
        """The first free EventID: one event at a time, no aligned region."""
        event = self.used.find(0)
        if event < 0:
            raise KernelError(f"{self.name}: no free event in its {len(self.lpis)}-event map",
                              errno.ENOSPC)
        self.used[event] = 1
        return event

    def event_of(self, d: IrqData) -> int:
        return self.lpis.index(d.hwirq)


class RfcV1:
    """The RFC v1 provider of one kernel: nexus domain, PCI-MSI and platform-MSI on top."""

    def __init__(self, kernel: Kernel) -> None:
        assert kernel.lpi is not None and kernel.gic.domain is not None
        self.k = kernel
        self.lpi = kernel.lpi
        self.devices: dict[int, RfcDevice] = {}
        #: LPIs routed to each CPU, managed and unmanaged apart (``cpu_lpi_count``).
        self.load: dict[bool, Counter[int]] = {True: Counter(), False: Counter()}
        self.chip = IrqChip(
            name="Direct LPI", irq_mask=self.mask, irq_unmask=self.unmask,
            irq_eoi=irq_chip_eoi_parent, irq_set_affinity=self.set_affinity,
            irq_retrigger=self.retrigger, irq_compose_msi_msg=self.compose_msi_msg,
            irq_set_irqchip_state=self.set_irqchip_state,
            irq_set_vcpu_affinity=self.set_vcpu_affinity, flags=IRQCHIP_SKIP_SET_WAKE)
        fwnode = Fwnode("Direct LPI")            # irq_domain_alloc_named_fwnode: no firmware
        kernel.iort_register_domain_token(IORT_ITS_ID, 0, fwnode)
        self.nexus = kernel.irq.create_domain(
            "Direct LPI", fwnode, IrqDomainOps(alloc=self._alloc, free=self._free,
                                               activate=self._activate,
                                               deactivate=self._deactivate),
            parent=kernel.gic.domain, host_data=self, bus_token=DomainBusToken.NEXUS,
            flags=IRQ_DOMAIN_FLAG_ISOLATED_MSI)  # the RFC's IRQ_DOMAIN_FLAG_MSI_REMAP
        flags = (MSI_FLAG_USE_DEF_DOM_OPS | MSI_FLAG_USE_DEF_CHIP_OPS | MSI_FLAG_PCI_MSIX
                 | MSI_FLAG_MULTI_PCI_MSI)
        self.pci = MsiDomain(kernel.irq, "RFC-PCI-MSI", fwnode, MsiDomainInfo(
            flags, kernel.pci.msi_chip("RFC-MSI", msi_domain_set_affinity),
            prepare=self._pci_prepare), self.nexus, DomainBusToken.PCI_MSI)
        self.pci.domain.ops.select = _any_pci_msi_lookup
        self.platform = MsiDomain(kernel.irq, "RFC-pMSI", fwnode, MsiDomainInfo(
            MSI_FLAG_USE_DEF_DOM_OPS, platform_msi_chip("RFC-pMSI", msi_domain_set_affinity),
            prepare=self._platform_prepare), self.nexus, DomainBusToken.PLATFORM_MSI)
        kernel.log.info("GICv3: no ITS found, using Direct LPI (RFC v1): IORT token of ITS "
                        f"{IORT_ITS_ID}, MSI remapping advertised")

    # -- msi_prepare: the device ------------------------------------------------------------

    def _pci_prepare(self, domain: MsiDomain, info: MsiAllocInfo) -> None:
        """The ITS's PCI front-end: the requester ID as DeviceID, the map sized for the
        function's whole MSI-X table or MSI capability."""
        pdev = info.descs[0].dev
        nvec = max(info.nvec, self.k.pci.vec_count(pdev, info.descs[0].is_msix))
        self._prepare(info, pdev.dev_id, nvec)

    def _platform_prepare(self, domain: MsiDomain, info: MsiAllocInfo) -> None:
        if info.dev_id is None:
            raise KernelError(f"{info.dev_name}: no DeviceID (no msi-specifier)", errno.EINVAL)
        self._prepare(info, info.dev_id, info.nvec)

    def _prepare(self, info: MsiAllocInfo, dev_id: int, nvec: int) -> None:
        info.dev_id = dev_id
        dev = self.devices.get(dev_id)
        if dev is not None:                       # "Reusing ITT for devID"
            dev.shared = True
            info.its_dev = dev
            return
        lpis: list[int] = []
        try:
            for _ in range(1 << order_of(max(nvec, 1))):
                lpis.append(self.lpi.alloc_lpis(1))
        except KernelError:
            for intid in lpis:
                self.lpi.free_lpis(intid, 1)
            raise
        dev = RfcDevice(dev_id, info.dev_name, lpis)
        self.devices[dev_id] = dev
        info.its_dev = dev

    def _release(self, dev: RfcDevice, events: list[int]) -> None:
        for event in events:
            dev.used[event] = 0
        if not dev.shared and not any(dev.used):
            del self.devices[dev.dev_id]
            for intid in dev.lpis:
                self.lpi.free_lpis(intid, 1)

    # -- the nexus domain ---------------------------------------------------------------------

    def _alloc(self, domain: IrqDomain, virq: int, nr_irqs: int, arg: Any) -> None:
        if not isinstance(arg, MsiAllocInfo) or not isinstance(arg.its_dev, RfcDevice):
            raise KernelError("Direct LPI (RFC v1) allocation needs a prepared device",
                              errno.EINVAL)
        dev = arg.its_dev
        events: list[int] = []
        done = 0
        try:
            for _ in range(nr_irqs):
                events.append(dev.alloc_event())
            for i, event in enumerate(events):
                intid = dev.lpis[event]
                irq_domain_alloc_irqs_parent(domain, virq + i, 1, IrqFwspec(
                    self.k.board.gic.fwnode, (GIC_IRQ_TYPE_LPI, intid, IRQ_TYPE_EDGE_RISING)))
                done += 1
                d = irq_domain_set_hwirq_and_chip(domain, virq + i, intid, self.chip, dev)
                d.set(IRQD_SINGLE_TARGET | IRQD_AFFINITY_ON_ACTIVATE)
                d.set_trigger_type(IRQ_TYPE_EDGE_RISING)
                self.lpi.lpi_write_config(intid, 0xFF, self.lpi.prop_prio)
        except KernelError:
            if done:
                irq_domain_free_irqs_parent(domain, virq, done)
            self._release(dev, events)
            raise

    def _free(self, domain: IrqDomain, virq: int, nr_irqs: int) -> None:
        freed: dict[int, tuple[RfcDevice, list[int]]] = {}
        for i in range(nr_irqs):
            d = irq_domain_get_irq_data(domain, virq + i)
            dev: RfcDevice = d.chip_data
            freed.setdefault(id(dev), (dev, []))[1].append(dev.event_of(d))
            irq_domain_reset_irq_data(d)
        irq_domain_free_irqs_parent(domain, virq, nr_irqs)
        for dev, events in freed.values():
            self._release(dev, events)

    def _activate(self, domain: IrqDomain, d: IrqData, reserve: bool) -> None:
        """``dlpi_select_cpu(d, cpu_online_mask)``: the least loaded online CPU."""
        dev: RfcDevice = d.chip_data
        cpu = self._select_cpu(d, frozenset(self.k.irq.online))
        dev.col_map[dev.event_of(d)] = cpu
        self.load[d.has(IRQD_AFFINITY_MANAGED)][cpu] += 1
        d.update_effective_affinity(frozenset((cpu,)))

    def _deactivate(self, domain: IrqDomain, d: IrqData) -> None:
        dev: RfcDevice = d.chip_data
        self.load[d.has(IRQD_AFFINITY_MANAGED)][dev.col_map[dev.event_of(d)]] -= 1

    # -- CPU selection -------------------------------------------------------------------------

    def _least_loaded(self, d: IrqData, cpus: Cpumask) -> int:
        if not cpus:
            raise KernelError(f"Direct LPI (RFC v1): IRQ {d.irq}: no CPU to pick from",
                              errno.EINVAL)
        load = self.load[d.has(IRQD_AFFINITY_MANAGED)]
        return min(cpus, key=lambda c: (load[c], c))

    def _select_cpu(self, d: IrqData, mask: Cpumask) -> int:
        online = self.k.irq.online
        if d.has(IRQD_AFFINITY_MANAGED):
            return self._least_loaded(d, d.common.affinity & online)
        return self._least_loaded(d, (mask & online) or frozenset(online))

    # -- the chip -------------------------------------------------------------------------------

    def _update_config(self, d: IrqData, clr: int, set_bits: int) -> None:
        """The property byte, then GICR_INVLPIR + GICR_SYNCR on the RD it is routed to."""
        dev: RfcDevice = d.chip_data
        cpu = dev.col_map[dev.event_of(d)]
        self.lpi.lpi_update_config((cpu,) if cpu >= 0 else (), d.hwirq, clr, set_bits)

    def mask(self, d: IrqData) -> None:
        self._update_config(d, LPI_CFG_ENABLE, 0)

    def unmask(self, d: IrqData) -> None:
        self._update_config(d, 0, LPI_CFG_ENABLE)

    def set_affinity(self, d: IrqData, mask: Cpumask, force: bool) -> int:
        """Route the event to the least loaded CPU of ``mask``; the device is left alone."""
        dev: RfcDevice = d.chip_data
        event = dev.event_of(d)
        managed = d.has(IRQD_AFFINITY_MANAGED)
        prev = dev.col_map[event]
        load = self.load[managed]
        if prev >= 0:
            load[prev] -= 1
        try:
            cpu = self._least_loaded(d, mask) if force else self._select_cpu(d, mask)
        except KernelError:
            if prev >= 0:
                load[prev] += 1
            raise
        dev.col_map[event] = cpu
        d.update_effective_affinity(frozenset((cpu,)))
        load[cpu] += 1
        return IRQ_SET_MASK_OK_DONE

    def compose_msi_msg(self, d: IrqData, msg: MsiMsg) -> None:
        dev: RfcDevice = d.chip_data
        event = dev.event_of(d)
        msg.address = self.k.gic.rdists[dev.col_map[event]].rd_base + GICR.SETLPIR.offset
        msg.data = event

    def set_irqchip_state(self, d: IrqData, which: int, value: bool) -> None:
        if which != IRQCHIP_STATE_PENDING:
            raise KernelError(f"Direct LPI (RFC v1): LPI {d.hwirq}: state {which} cannot be "
                              "set", errno.EINVAL)

    def retrigger(self, d: IrqData) -> int:
        self.set_irqchip_state(d, IRQCHIP_STATE_PENDING, True)
        return 1

    def set_vcpu_affinity(self, d: IrqData, vcpu_info: Any) -> None:
        raise KernelError("Direct LPI (RFC v1): vCPU support requires an ITS", errno.EINVAL)


def _any_pci_msi_lookup(domain: IrqDomain, fwspec: IrqFwspec | None,
                        token: DomainBusToken) -> bool:
    """The IORT token of ITS 0 stands in for every PCI device's MSI parent."""
    return token == DomainBusToken.PCI_MSI


def rfc_v1_wants_lpis(kernel: Kernel, its_nodes: list[Any]) -> bool:
    """The RFC's ``its_init``: no ITS, but every RD has DirectLPI -- enable LPIs anyway
    (unless the command line forbids them)."""
    gic = kernel.gic
    return (not its_nodes and gic.has_lpis and gic.has_direct_lpi
            and kernel.params.lpis is not False)


def rfc_v1_init(kernel: Kernel, its_nodes: list[Any]) -> RfcV1 | None:
    """Register the RFC's provider when no ITS was probed and every RD reports
    GICR_TYPER.DirectLPI -- whether or not firmware describes Direct LPI."""
    log = kernel.log
    if its_nodes:
        log.info("GICv3: Direct LPI (RFC v1): an ITS was found, not used")
        return None
    if not kernel.gic.has_direct_lpi:
        log.warn("GICv3: Direct LPI (RFC v1): not every redistributor reports "
                 "GICR_TYPER.DirectLPI: not used")
        return None
    if kernel.lpi is None:
        log.err("GICv3: Direct LPI (RFC v1): LPIs are not enabled: not used")
        return None
    return RfcV1(kernel)
