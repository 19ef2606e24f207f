"""The MSI layer (Linux ``kernel/irq/msi.c``, ``drivers/pci/msi/``, platform-MSI).

An MSI domain sits on top of an MSI provider's domain.  Allocating in it
allocates the provider's level (which hands out INTIDs and picks targets),
then *activation* composes each vector's message through the hierarchy (the
first chip towards the root that implements ``irq_compose_msi_msg``) and writes
it to the device.  When the provider says an affinity change altered the
message (``irq_set_affinity`` returning ``IRQ_SET_MASK_OK``), the message is
composed and written again; ``IRQ_SET_MASK_OK_DONE`` means "nothing to rewrite".

MultiMSI: the function holds one address and one data base; vector i is data
base | i.  As in Linux, only the block's first vector writes the capability; the
other vectors' messages are composed and cached, and a provider whose address
names the target (Direct LPI) moves the block through its first vector.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.chip import (
    IRQ_SET_MASK_OK_DONE,
    IrqChip,
    irq_chip_eoi_parent,
    irq_chip_mask_parent,
    irq_chip_unmask_parent,
)
from directlpi.kernel.irq.core import IrqAffinityDesc
from directlpi.kernel.irq.desc import Cpumask, FlowHandler, IrqData
from directlpi.kernel.irq.domain import (
    IRQ_DOMAIN_FLAG_MSI,
    DomainBusToken,
    Fwnode,
    IrqDomain,
    IrqDomainOps,
    irq_domain_alloc_irqs_parent,
    irq_domain_free_irqs_common,
    irq_domain_free_irqs_parent,
    irq_domain_set_hwirq_and_chip,
)
from directlpi.kernel.irq.flow import handle_fasteoi_irq

if TYPE_CHECKING:
    from directlpi.kernel.irq.core import IrqCore

# enum msi_domain_info flags (include/linux/msi.h)
MSI_FLAG_USE_DEF_DOM_OPS = 1 << 0
MSI_FLAG_USE_DEF_CHIP_OPS = 1 << 1
MSI_FLAG_ACTIVATE_EARLY = 1 << 4
MSI_FLAG_MULTI_PCI_MSI = 1 << 16
MSI_FLAG_PCI_MSIX = 1 << 17
MSI_FLAG_LEVEL_CAPABLE = 1 << 18
MSI_FLAG_MULTI_MSI_ONE_TARGET = 1 << 24
"""Not a Linux flag: what a Direct LPI v2 patch would ask the PCI/MSI core for.  The
domain's message address names the target, so a MultiMSI block's vectors share one
target and the core must give them one affinity (not a spread of masks)."""


@dataclass
class MsiMsg:
    """``struct msi_msg``: where and what a device writes."""

    address_lo: int = 0
    address_hi: int = 0
    data: int = 0

    @property
    def address(self) -> int:
        return self.address_hi << 32 | self.address_lo

    @address.setter
    def address(self, value: int) -> None:
        self.address_lo = value & 0xFFFFFFFF
        self.address_hi = value >> 32

    def copy(self) -> MsiMsg:
        return MsiMsg(self.address_lo, self.address_hi, self.data)

    def __repr__(self) -> str:
        return f"MsiMsg(address={self.address:#x}, data={self.data:#x})"


@dataclass(eq=False)
class MsiDesc:
    """``struct msi_desc``: one MSI capability (all its vectors) or one MSI-X entry/slot."""

    dev: Any
    """The kernel's device (a PciDev, or a platform device record)."""
    msi_index: int = 0
    nvec_used: int = 1
    is_msix: bool = False
    multiple: int = 0
    """log2 of the vectors enabled (MSI Multiple Message Enable)."""
    is_64: bool = True
    maskbit: bool = False
    irq: int = 0
    """First virq of the descriptor."""
    msg: MsiMsg = field(default_factory=MsiMsg)
    """The message as last written to the device."""
    affinity: IrqAffinityDesc | None = None
    write_msg: Callable[[MsiDesc, MsiMsg], None] | None = None
    """Platform-MSI: the driver's callback that programs the device."""


@dataclass
class MsiAllocInfo:
    """What an MSI provider needs to allocate (Linux ``msi_alloc_info_t``)."""

    dev_name: str
    nvec: int
    descs: list[MsiDesc]
    multi_msi: bool = False
    """One MultiMSI block: a single address, data base + i."""
    data_limit: int | None = None
    """Data values (INTIDs) must be below this: 1 << 16 for plain PCI MSI."""
    address_limit: int | None = None
    """Message addresses must be below this: 1 << 32 without 64-bit MSI addressing."""
    hwirq_base: int | None = None
    """MSI-domain hwirq of vector 0 (PCI: pci_dev_id << 11); None: the domain numbers them."""
    dev_id: int | None = None
    """The ID the device signals with at its MSI controller (an ITS's DeviceID), set by the
    domain's ``prepare``; for a platform device, its firmware msi-specifier."""
    its_dev: Any = None
    """Provider scratchpad (``info->scratchpad[0].ptr``): the ITS's device."""

    def desc_for(self, i: int) -> MsiDesc:
        return self.descs[0] if len(self.descs) == 1 else self.descs[i]


@dataclass
class MsiDomainInfo:
    """``struct msi_domain_info``."""

    flags: int
    chip: IrqChip
    handler: FlowHandler = handle_fasteoi_irq
    handler_name: str = "fasteoi"
    chip_data: Any = None
    prepare: Callable[[MsiDomain, MsiAllocInfo], None] | None = None
    """``msi_domain_ops::msi_prepare``: called before the provider allocates (the ITS
    finds or creates the device's ITT there)."""


# -- composing and writing messages -------------------------------------------------------------

def irq_chip_compose_msi_msg(d: IrqData) -> MsiMsg:
    """Compose through the innermost chip of the hierarchy that implements it."""
    pos: IrqData | None = None
    data: IrqData | None = d
    while data is not None:
        if data.chip is not None and data.chip.irq_compose_msi_msg is not None:
            pos = data
        data = data.parent_data
    if pos is None or pos.chip is None or pos.chip.irq_compose_msi_msg is None:
        raise KernelError(f"irq {d.irq}: no chip composes MSI messages", errno.ENOSYS)
    msg = MsiMsg()
    pos.chip.irq_compose_msi_msg(pos, msg)
    return msg


def irq_chip_write_msi_msg(d: IrqData, msg: MsiMsg) -> None:
    if d.chip is None or d.chip.irq_write_msi_msg is None:
        raise KernelError(f"irq {d.irq}: no chip writes MSI messages", errno.ENOSYS)
    d.chip.irq_write_msi_msg(d, msg)


def msi_domain_set_affinity(d: IrqData, mask: Cpumask, force: bool) -> int:
    """Route through the parent; rewrite the device when the message changed."""
    parent = d.parent_data
    if parent is None or parent.chip is None or parent.chip.irq_set_affinity is None:
        raise KernelError(f"irq {d.irq}: the MSI provider cannot route it", errno.EINVAL)
    ret = parent.chip.irq_set_affinity(parent, mask, force)
    if ret != IRQ_SET_MASK_OK_DONE:
        irq_chip_write_msi_msg(d, irq_chip_compose_msi_msg(d))
    return ret


# -- the MSI domain --------------------------------------------------------------------------------

class MsiDomain:
    """Default MSI domain ops (``msi_domain_ops_default``) around an ``MsiDomainInfo``."""

    def __init__(self, core: IrqCore, name: str, fwnode: Fwnode, info: MsiDomainInfo,
                 parent: IrqDomain, bus_token: DomainBusToken) -> None:
        self.info = info
        #: Composed message of every virq of this domain (what get_cached_msi_msg returns).
        self.cached: dict[int, MsiMsg] = {}
        self.domain = core.create_domain(
            name, fwnode, IrqDomainOps(alloc=self._alloc, free=self._free,
                                       activate=self._activate, deactivate=self._deactivate),
            parent=parent, bus_token=bus_token, host_data=self, flags=IRQ_DOMAIN_FLAG_MSI)
        self._next_hwirq = 0

    def _alloc(self, domain: IrqDomain, virq: int, nr_irqs: int, arg: Any) -> None:
        if not isinstance(arg, MsiAllocInfo):
            raise KernelError("MSI domain allocation needs MSI allocation info", errno.EINVAL)
        if self.info.prepare is not None:
            self.info.prepare(self, arg)
        irq_domain_alloc_irqs_parent(domain, virq, nr_irqs, arg)
        try:
            core = domain.core
            for i in range(nr_irqs):
                desc = arg.desc_for(i)
                if i == 0 or len(arg.descs) > 1:
                    desc.irq = virq + i
                if arg.hwirq_base is not None:
                    hwirq = arg.hwirq_base + (desc.msi_index if len(arg.descs) > 1 else i)
                else:
                    hwirq = self._next_hwirq
                    self._next_hwirq += 1
                d = irq_domain_set_hwirq_and_chip(domain, virq + i, hwirq, self.info.chip,
                                                  self.info.chip_data)
                d.common.msi_desc = desc
                irq_desc = core.irq_to_desc(virq + i)
                assert irq_desc is not None
                irq_desc.handle_irq = self.info.handler
        except BaseException:
            irq_domain_free_irqs_parent(domain, virq, nr_irqs)
            raise

    def _free(self, domain: IrqDomain, virq: int, nr_irqs: int) -> None:
        for i in range(nr_irqs):
            self.cached.pop(virq + i, None)
        irq_domain_free_irqs_common(domain, virq, nr_irqs)

    def _activate(self, domain: IrqDomain, d: IrqData, reserve: bool) -> None:
        msg = irq_chip_compose_msi_msg(d)
        irq_chip_write_msi_msg(d, msg)

    def _deactivate(self, domain: IrqDomain, d: IrqData) -> None:
        irq_chip_write_msi_msg(d, MsiMsg())
        self.cached.pop(d.irq, None)

    def remember(self, d: IrqData, msg: MsiMsg) -> None:
        """Called by write_msg implementations: the composed message of this virq."""
        self.remember_virq(d.irq, msg)

    def remember_virq(self, virq: int, msg: MsiMsg) -> None:
        if msg.address or msg.data:
            self.cached[virq] = msg.copy()
        else:
            self.cached.pop(virq, None)


def msi_domain_of(d: IrqData) -> MsiDomain:
    dom = d.domain
    assert dom is not None and isinstance(dom.host_data, MsiDomain)
    return dom.host_data


# -- platform MSI ----------------------------------------------------------------------------------

def platform_msi_write_msg(d: IrqData, msg: MsiMsg) -> None:
    """Hand the message to the driver's callback, which programs the device's slot."""
    desc: MsiDesc = d.common.msi_desc
    msi_domain_of(d).remember(d, msg)
    desc.msg = msg.copy()
    if desc.write_msg is not None:
        desc.write_msg(desc, msg)


def platform_msi_chip(name: str, set_affinity: Callable[[IrqData, Cpumask, bool], int],
                      flags: int = 0) -> IrqChip:
    """The platform-MSI level chip of an MSI provider: masking at the parent (the
    device has no mask of its own), the message handed to the driver's callback."""
    return IrqChip(name=name, irq_mask=irq_chip_mask_parent, irq_unmask=irq_chip_unmask_parent,
                   irq_eoi=irq_chip_eoi_parent, irq_set_affinity=set_affinity,
                   irq_write_msi_msg=platform_msi_write_msg, flags=flags)


def msi_alloc_descs(dev: Any, nvec: int, write_msg: Callable[[MsiDesc, MsiMsg], None]
                    ) -> list[MsiDesc]:
    return [MsiDesc(dev, msi_index=i, is_msix=False, write_msg=write_msg) for i in range(nvec)]
