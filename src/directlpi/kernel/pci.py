"""PCI for the kernel: ECAM config accesses, enumeration, and PCI MSI / MSI-X setup.

Modelled on ``drivers/pci/msi/``: ``pci_alloc_irq_vectors`` tries MSI-X then MSI
(as the flags allow), falls back to fewer vectors down to ``min_vecs``, and
programs the capability in Linux's order -- everything masked, interrupts
allocated and activated (each vector's message written while masked), then
the capability enabled; vectors are unmasked when requested.  Config space is
reached through the host bridge's ECAM window and the MSI-X table through
BAR0, both by MMIO: the kernel never touches the device model.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from directlpi.devices.pci import (
    PCI_BASE_ADDRESS_0,
    PCI_CAP_ID_MSI,
    PCI_CAP_ID_MSIX,
    PCI_CAPABILITY_LIST,
    PCI_COMMAND,
    PCI_COMMAND_INTX_DISABLE,
    PCI_MSI_ADDRESS_HI,
    PCI_MSI_ADDRESS_LO,
    PCI_MSI_DATA_32,
    PCI_MSI_DATA_64,
    PCI_MSI_FLAGS,
    PCI_MSI_FLAGS_64BIT,
    PCI_MSI_FLAGS_ENABLE,
    PCI_MSI_FLAGS_MASKBIT,
    PCI_MSI_FLAGS_QMASK,
    PCI_MSI_FLAGS_QSIZE,
    PCI_MSI_MASK_32,
    PCI_MSI_MASK_64,
    PCI_MSIX_ENTRY_CTRL_MASKBIT,
    PCI_MSIX_ENTRY_DATA,
    PCI_MSIX_ENTRY_LOWER_ADDR,
    PCI_MSIX_ENTRY_SIZE,
    PCI_MSIX_ENTRY_UPPER_ADDR,
    PCI_MSIX_ENTRY_VECTOR_CTRL,
    PCI_MSIX_FLAGS,
    PCI_MSIX_FLAGS_ENABLE,
    PCI_MSIX_FLAGS_MASKALL,
    PCI_MSIX_FLAGS_QSIZE,
    PCI_MSIX_TABLE,
    PCI_STATUS,
    PCI_STATUS_CAP_LIST,
    PCI_VENDOR_ID,
    parse_bdf,
)
from directlpi.kernel.errors import KernelError
from directlpi.kernel.fwdesc import PciHostDescription
from directlpi.kernel.irq.affinity import IrqAffinity, irq_create_affinity_masks
from directlpi.kernel.irq.chip import (
    IrqChip,
    irq_chip_eoi_parent,
    irq_chip_mask_parent,
    irq_chip_unmask_parent,
)
from directlpi.kernel.irq.core import IrqAffinityDesc
from directlpi.kernel.irq.desc import (
    IRQD_AFFINITY_MANAGED,
    IRQD_MANAGED_SHUTDOWN,
    Cpumask,
    IrqData,
)
from directlpi.kernel.irq.domain import (
    DomainBusToken,
    irq_domain_activate_irq,
    irq_domain_deactivate_irq,
)
from directlpi.kernel.msi import (
    MSI_FLAG_MULTI_MSI_ONE_TARGET,
    MSI_FLAG_MULTI_PCI_MSI,
    MSI_FLAG_PCI_MSIX,
    MsiAllocInfo,
    MsiDesc,
    MsiDomain,
    MsiMsg,
    msi_domain_of,
)

if TYPE_CHECKING:
    from directlpi.kernel.kernel import Kernel

PCI_IRQ_INTX = 1 << 0
PCI_IRQ_MSI = 1 << 1
PCI_IRQ_MSIX = 1 << 2
PCI_IRQ_AFFINITY = 1 << 3
PCI_IRQ_ALL_TYPES = PCI_IRQ_INTX | PCI_IRQ_MSI | PCI_IRQ_MSIX


@dataclass(eq=False)
class PciDev:
    """The kernel's ``struct pci_dev``."""

    bdf: str
    cfg_base: int
    host: PciHostDescription
    vendor: int = 0
    device: int = 0
    msi_cap: int = 0
    msix_cap: int = 0
    msi_enabled: bool = False
    msix_enabled: bool = False
    descs: list[MsiDesc] = field(default_factory=list)
    irqs: list[int] = field(default_factory=list)
    msix_base: int = 0

    @property
    def dev_id(self) -> int:
        """``pci_dev_id``: bus << 8 | devfn."""
        _, bus, dev, fn = parse_bdf(self.bdf)
        return bus << 8 | dev << 3 | fn


class PciSubsystem:
    """Host bridges, the functions found behind them, and their MSI setup."""

    def __init__(self, kernel: Kernel, hosts: tuple[PciHostDescription, ...]) -> None:
        self.k = kernel
        self.hosts = hosts
        self.devices: dict[str, PciDev] = {}

    # -- config space through ECAM ---------------------------------------------------------

    def read(self, dev: PciDev, off: int, size: int) -> int:
        return self.k.mmio_read(dev.cfg_base + off, size)

    def write(self, dev: PciDev, off: int, value: int, size: int) -> None:
        self.k.mmio_write(dev.cfg_base + off, value, size)

    # -- enumeration ----------------------------------------------------------------------------

    def scan(self) -> None:
        for host in self.hosts:
            for bus in range(host.bus_start, host.bus_end + 1):
                for devfn in range(256):
                    base = host.ecam_base + ((bus - host.bus_start) << 20 | devfn << 12)
                    if self.k.mmio_read(base + PCI_VENDOR_ID, 2) == 0xFFFF:
                        continue
                    bdf = f"{host.segment:04x}:{bus:02x}:{devfn >> 3:02x}.{devfn & 7}"
                    if bdf not in self.devices:
                        self._probe(bdf, base, host)

    def _probe(self, bdf: str, base: int, host: PciHostDescription) -> PciDev:
        dev = PciDev(bdf, base, host)
        dev.vendor = self.read(dev, PCI_VENDOR_ID, 2)
        dev.device = self.read(dev, PCI_VENDOR_ID + 2, 2)
        if self.read(dev, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST:
            pos = self.read(dev, PCI_CAPABILITY_LIST, 1)
            seen = 0
            while pos and seen < 48:
                cap = self.read(dev, pos, 1)
                if cap == PCI_CAP_ID_MSI:
                    dev.msi_cap = pos
                elif cap == PCI_CAP_ID_MSIX:
                    dev.msix_cap = pos
                pos = self.read(dev, pos + 1, 1)
                seen += 1
        self.devices[bdf] = dev
        self.k.log.info(f"pci {bdf}: [{dev.vendor:04x}:{dev.device:04x}]"
                        + (" MSI" if dev.msi_cap else "") + (" MSI-X" if dev.msix_cap else ""))
        return dev

    def get(self, bdf: str) -> PciDev:
        """The kernel's device at ``bdf`` (rescanning once for a hot-added function)."""
        parse_bdf(bdf)
        if bdf not in self.devices:
            self.scan()
        dev = self.devices.get(bdf)
        if dev is None:
            raise KernelError(f"pci {bdf}: no such device", errno.ENODEV)
        return dev

    def msi_domain(self, dev: PciDev) -> MsiDomain:
        """The PCI-MSI domain of the MSI controller firmware names for this host bridge."""
        _seg, bus, slot, func = parse_bdf(dev.bdf)
        parent = dev.host.msi_parent_for((bus << 8) | (slot << 3) | func)
        if parent is None:
            raise KernelError(f"pci {dev.bdf}: no MSI domain (firmware names no MSI "
                              "controller for its requester ID)", errno.ENOSPC)
        dom = self.k.irq.irq_find_matching_fwnode(parent, DomainBusToken.PCI_MSI)
        if dom is None or not isinstance(dom.host_data, MsiDomain):
            what = ("the GIC's MBIs, which the kernel did not set up: see its log"
                    if parent is self.k.board.gic.fwnode else "it has no PCI-MSI domain")
            raise KernelError(f"pci {dev.bdf}: no MSI domain (firmware routes its MSIs to "
                              f"{parent.name}: {what})", errno.ENOSPC)
        return dom.host_data

    # -- the PCI-MSI chip's device operations --------------------------------------------------

    def _msi_mask_off(self, dev: PciDev, desc: MsiDesc) -> int:
        return dev.msi_cap + (PCI_MSI_MASK_64 if desc.is_64 else PCI_MSI_MASK_32)

    def _msix_entry(self, dev: PciDev, index: int, field_off: int) -> int:
        return dev.msix_base + index * PCI_MSIX_ENTRY_SIZE + field_off

    def mask_vector(self, d: IrqData, masked: bool) -> None:
        """``pci_msi_mask_irq`` / ``pci_msi_unmask_irq``: per-vector mask at the device."""
        desc: MsiDesc = d.common.msi_desc
        dev: PciDev = desc.dev
        if desc.is_msix:
            addr = self._msix_entry(dev, desc.msi_index, PCI_MSIX_ENTRY_VECTOR_CTRL)
            self.k.mmio_write(addr, PCI_MSIX_ENTRY_CTRL_MASKBIT if masked else 0, 4)
            if masked:
                self.k.mmio_read(addr, 4)     # flush: the mask reached the function
        elif desc.maskbit:
            bit = 1 << (d.irq - desc.irq)
            off = self._msi_mask_off(dev, desc)
            cur = self.read(dev, off, 4)
            self.write(dev, off, cur | bit if masked else cur & ~bit, 4)

    def msi_chip(self, name: str, set_affinity: Callable[[IrqData, Cpumask, bool], int],
                 flags: int = 0) -> IrqChip:
        """The PCI-MSI level chip of an MSI provider: masking at the device (per-vector
        mask or MSI-X vector control) and at the parent, the message written into the
        function, affinity as the provider does it."""
        def mask(d: IrqData) -> None:
            self.mask_vector(d, True)
            irq_chip_mask_parent(d)

        def unmask(d: IrqData) -> None:
            irq_chip_unmask_parent(d)
            self.mask_vector(d, False)

        return IrqChip(name=name, irq_mask=mask, irq_unmask=unmask,
                       irq_eoi=irq_chip_eoi_parent, irq_set_affinity=set_affinity,
                       irq_write_msi_msg=self.write_msg, flags=flags)

    def write_msg(self, d: IrqData, msg: MsiMsg) -> None:
        """``pci_msi_domain_write_msg``: program the function's capability or table entry,
        then read it back -- the read completes only once the function has the new
        message and every MSI it posted with the old one has landed (PCI ordering), so a
        provider may act on "nothing of the old message is in flight any more"."""
        desc: MsiDesc = d.common.msi_desc
        dev: PciDev = desc.dev
        domain = msi_domain_of(d)
        if desc.is_msix:
            domain.remember(d, msg)
            entry = desc.msi_index
            ctrl_addr = self._msix_entry(dev, entry, PCI_MSIX_ENTRY_VECTOR_CTRL)
            ctrl = self.k.mmio_read(ctrl_addr, 4)
            unmasked = not ctrl & PCI_MSIX_ENTRY_CTRL_MASKBIT
            if unmasked:                   # never rewrite an unmasked entry (PCI spec)
                self.k.mmio_write(ctrl_addr, ctrl | PCI_MSIX_ENTRY_CTRL_MASKBIT, 4)
            self.k.mmio_write(self._msix_entry(dev, entry, PCI_MSIX_ENTRY_LOWER_ADDR),
                              msg.address_lo, 4)
            self.k.mmio_write(self._msix_entry(dev, entry, PCI_MSIX_ENTRY_UPPER_ADDR),
                              msg.address_hi, 4)
            data_addr = self._msix_entry(dev, entry, PCI_MSIX_ENTRY_DATA)
            self.k.mmio_write(data_addr, msg.data, 4)
            if unmasked:
                self.k.mmio_write(ctrl_addr, ctrl, 4)
            self.k.mmio_read(data_addr, 4)     # "ensure that the writes are visible"
            desc.msg = msg.copy()
            return
        # MSI: one address and one data base for the whole block.  As in Linux, only the
        # block's first vector writes the capability ("for MSI only the first interrupt
        # of MULTI MSI passes the test"); vector i is the device's base | i.
        index = d.irq - desc.irq
        if index:
            domain.remember(d, msg)
            return
        if msg.data > 0xFFFF:
            raise KernelError(f"pci {dev.bdf}: MSI data {msg.data:#x} does not fit the 16-bit "
                              "Message Data register", errno.EINVAL)
        if msg.address_hi and not desc.is_64:
            raise KernelError(f"pci {dev.bdf}: MSI address {msg.address:#x} is beyond the "
                              "function's 32-bit addressing", errno.EINVAL)
        cap = dev.msi_cap
        flags = self.read(dev, cap + PCI_MSI_FLAGS, 2)
        flags = (flags & ~PCI_MSI_FLAGS_QSIZE) | (desc.multiple << 4)
        self.write(dev, cap + PCI_MSI_FLAGS, flags, 2)
        self.write(dev, cap + PCI_MSI_ADDRESS_LO, msg.address_lo, 4)
        if desc.is_64:
            self.write(dev, cap + PCI_MSI_ADDRESS_HI, msg.address_hi, 4)
        self.write(dev, cap + (PCI_MSI_DATA_64 if desc.is_64 else PCI_MSI_DATA_32),
                   msg.data, 2)
        # "Ensure that the writes are visible in the device", as Linux since v5.14: the
        # read completes after the function's earlier posted MSIs have landed.
        self.read(dev, cap + PCI_MSI_FLAGS, 2)
        desc.msg = msg.copy()
        for k in range(desc.nvec_used):
            domain.remember_virq(desc.irq + k, MsiMsg(msg.address_lo, msg.address_hi,
                                                      msg.data + k if msg.address else 0))

    # -- pci_alloc_irq_vectors -------------------------------------------------------------------

    def alloc_irq_vectors(self, bdf: str, min_vecs: int, max_vecs: int, flags: int,
                          affd: IrqAffinity | None = None) -> int:
        dev = self.get(bdf)
        if not (isinstance(min_vecs, int) and isinstance(max_vecs, int)
                and 1 <= min_vecs <= max_vecs):
            raise KernelError(f"pci {bdf}: bad vector range {min_vecs!r}..{max_vecs!r}",
                              errno.EINVAL)
        if dev.msi_enabled or dev.msix_enabled:
            raise KernelError(f"pci {bdf}: MSI/MSI-X already enabled (free the vectors first)",
                              errno.EINVAL)
        affinity = (affd or IrqAffinity()) if flags & PCI_IRQ_AFFINITY else None
        error: KernelError | None = None
        if flags & PCI_IRQ_MSIX and dev.msix_cap:
            try:
                return self._enable_range(dev, min_vecs, max_vecs, affinity, msix=True)
            except KernelError as exc:
                error = exc
        if flags & PCI_IRQ_MSI and dev.msi_cap:
            try:
                return self._enable_range(dev, min_vecs, max_vecs, affinity, msix=False)
            except KernelError as exc:
                error = exc
        if error is not None:
            raise error
        if flags & (PCI_IRQ_MSI | PCI_IRQ_MSIX) == 0 and flags & PCI_IRQ_INTX:
            raise KernelError(f"pci {bdf}: legacy INTx is not modelled", errno.EOPNOTSUPP)
        raise KernelError(f"pci {bdf}: no MSI or MSI-X capability matches the requested flags",
                          errno.ENOSPC)

    def vec_count(self, dev: PciDev, msix: bool) -> int:
        """``pci_msix_vec_count`` (the MSI-X table size) or ``pci_msi_vec_count`` (Multiple
        Message Capable)."""
        if msix:
            return (self.read(dev, dev.msix_cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE) + 1
        flags = self.read(dev, dev.msi_cap + PCI_MSI_FLAGS, 2)
        return 1 << ((flags & PCI_MSI_FLAGS_QMASK) >> 1)

    def _enable_range(self, dev: PciDev, min_vecs: int, max_vecs: int,
                      affd: IrqAffinity | None, msix: bool) -> int:
        domain = self.msi_domain(dev)
        if msix:
            if not domain.info.flags & MSI_FLAG_PCI_MSIX:
                raise KernelError(f"pci {dev.bdf}: the MSI domain does not do MSI-X",
                                  errno.EOPNOTSUPP)
            cap_vecs = self.vec_count(dev, True)
        else:
            cap_vecs = self.vec_count(dev, False)
            if not domain.info.flags & MSI_FLAG_MULTI_PCI_MSI:
                cap_vecs = 1
        nvec = min(max_vecs, cap_vecs)
        if nvec < min_vecs:
            raise KernelError(f"pci {dev.bdf}: {'MSI-X' if msix else 'MSI'} offers {cap_vecs} "
                              f"vector(s), {min_vecs} needed", errno.ENOSPC)
        while True:
            try:
                if msix:
                    self._msix_init(dev, domain, nvec, affd)
                else:
                    self._msi_init(dev, domain, nvec, affd)
                return nvec
            except KernelError as exc:
                if exc.errno != errno.ENOSPC or nvec <= min_vecs:
                    raise
                nvec -= 1

    def _affinity(self, dev: PciDev, nvec: int, affd: IrqAffinity | None, one_target: bool
                  ) -> list[IrqAffinityDesc] | None:
        """``irq_create_affinity_masks`` for the vectors -- per vector, as Linux, unless the
        MSI domain says a MultiMSI block has one target (its message address names it):
        then the block gets one managed mask, and none at all if the driver asked for
        pre/post vectors, which Linux never manages (one target cannot be both)."""
        if affd is None:
            return None
        core = self.k.irq
        if not one_target:
            return irq_create_affinity_masks(nvec, affd, core.possible, core.default_affinity)
        if affd.pre_vectors or affd.post_vectors:
            self.k.log.info(f"pci {dev.bdf}: a MultiMSI block has one target: with pre/post "
                            "vectors, none of its vectors is managed")
            return [IrqAffinityDesc(core.default_affinity)] * nvec
        (mask,) = irq_create_affinity_masks(1, IrqAffinity(), core.possible,
                                            core.default_affinity)
        return [mask] * nvec

    def _msi_init(self, dev: PciDev, domain: MsiDomain, nvec: int,
                  affd: IrqAffinity | None) -> None:
        """``msi_capability_init``."""
        cap = dev.msi_cap
        flags = self.read(dev, cap + PCI_MSI_FLAGS, 2)
        desc = MsiDesc(dev, nvec_used=nvec, is_msix=False, multiple=(nvec - 1).bit_length(),
                       is_64=bool(flags & PCI_MSI_FLAGS_64BIT),
                       maskbit=bool(flags & PCI_MSI_FLAGS_MASKBIT))
        if desc.maskbit:
            self.write(dev, self._msi_mask_off(dev, desc), (1 << (1 << desc.multiple)) - 1, 4)
        info = MsiAllocInfo(dev.bdf, nvec, [desc], multi_msi=True, data_limit=1 << 16,
                            address_limit=None if desc.is_64 else 1 << 32,
                            hwirq_base=dev.dev_id << 11)
        one_target = bool(domain.info.flags & MSI_FLAG_MULTI_MSI_ONE_TARGET)
        self._alloc_and_activate(dev, domain, nvec, info,
                                 self._affinity(dev, nvec, affd, one_target))
        self.write(dev, cap + PCI_MSI_FLAGS, self.read(dev, cap + PCI_MSI_FLAGS, 2)
                   | PCI_MSI_FLAGS_ENABLE, 2)
        self.write(dev, PCI_COMMAND, self.read(dev, PCI_COMMAND, 2) | PCI_COMMAND_INTX_DISABLE, 2)
        dev.msi_enabled = True
        dev.descs = [desc]

    def _msix_init(self, dev: PciDev, domain: MsiDomain, nvec: int,
                   affd: IrqAffinity | None) -> None:
        """``msix_capability_init``: enabled with the function masked while set up."""
        cap = dev.msix_cap
        ctrl = self.read(dev, cap + PCI_MSIX_FLAGS, 2)
        self.write(dev, cap + PCI_MSIX_FLAGS,
                   ctrl | PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2)
        table = self.read(dev, cap + PCI_MSIX_TABLE, 4)
        bar = self.read(dev, PCI_BASE_ADDRESS_0 + 4 * (table & 7), 4) & 0xFFFFFFF0
        dev.msix_base = bar + (table & ~7)
        descs = [MsiDesc(dev, msi_index=i, is_msix=True) for i in range(nvec)]
        for i in range(nvec):
            self.k.mmio_write(self._msix_entry(dev, i, PCI_MSIX_ENTRY_VECTOR_CTRL),
                              PCI_MSIX_ENTRY_CTRL_MASKBIT, 4)
        info = MsiAllocInfo(dev.bdf, nvec, descs, hwirq_base=dev.dev_id << 11)
        try:
            self._alloc_and_activate(dev, domain, nvec, info,
                                     self._affinity(dev, nvec, affd, False))
        except KernelError:
            self.write(dev, cap + PCI_MSIX_FLAGS, ctrl, 2)
            raise
        self.write(dev, cap + PCI_MSIX_FLAGS, (ctrl | PCI_MSIX_FLAGS_ENABLE)
                   & ~PCI_MSIX_FLAGS_MASKALL, 2)
        self.write(dev, PCI_COMMAND, self.read(dev, PCI_COMMAND, 2) | PCI_COMMAND_INTX_DISABLE, 2)
        dev.msix_enabled = True
        dev.descs = descs

    def _alloc_and_activate(self, dev: PciDev, domain: MsiDomain, nvec: int,
                            info: MsiAllocInfo, affinity: list[IrqAffinityDesc] | None) -> None:
        core = self.k.irq
        virq = core.irq_domain_alloc_irqs(domain.domain, nvec, info, affinity)
        done: list[IrqData] = []
        try:
            for i in range(nvec):
                desc = core.irq_to_desc(virq + i)
                assert desc is not None
                d = desc.irq_data
                if d.has(IRQD_AFFINITY_MANAGED) and not d.common.affinity & core.online:
                    # Managed, and none of its CPUs online: shut down until better times.
                    d.set(IRQD_MANAGED_SHUTDOWN)
                    continue
                irq_domain_activate_irq(d, False)           # MSI_FLAG_ACTIVATE_EARLY
                done.append(d)
        except KernelError:
            for d in reversed(done):
                irq_domain_deactivate_irq(d)
            core.irq_domain_free_irqs(virq, nvec)
            raise
        dev.irqs = list(range(virq, virq + nvec))

    def irq_vector(self, bdf: str, nr: int) -> int:
        dev = self.get(bdf)
        if not isinstance(nr, int) or not 0 <= nr < len(dev.irqs):
            raise KernelError(f"pci {bdf}: vector {nr!r} is not allocated "
                              f"({len(dev.irqs)} are)", errno.EINVAL)
        return dev.irqs[nr]

    def free_irq_vectors(self, bdf: str) -> None:
        """``pci_free_irq_vectors``: every vector must have been freed with free_irq first."""
        dev = self.get(bdf)
        core = self.k.irq
        busy = [v for v in dev.irqs if (d := core.irq_to_desc(v)) is not None and d.actions]
        if busy:
            raise KernelError(f"pci {bdf}: free_irq() not called for IRQ "
                              f"{', '.join(map(str, busy))}", errno.EBUSY)
        if not dev.irqs:
            return
        if dev.msix_enabled:
            cap = dev.msix_cap
            ctrl = self.read(dev, cap + PCI_MSIX_FLAGS, 2)
            self.write(dev, cap + PCI_MSIX_FLAGS, ctrl | PCI_MSIX_FLAGS_MASKALL, 2)
            self.write(dev, cap + PCI_MSIX_FLAGS,
                       ctrl & ~(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL), 2)
        elif dev.msi_enabled:
            cap = dev.msi_cap
            self.write(dev, cap + PCI_MSI_FLAGS,
                       self.read(dev, cap + PCI_MSI_FLAGS, 2) & ~PCI_MSI_FLAGS_ENABLE, 2)
        for v in dev.irqs:
            desc = core.irq_to_desc(v)
            if desc is not None:
                irq_domain_deactivate_irq(desc.irq_data)
        core.irq_domain_free_irqs(dev.irqs[0], len(dev.irqs))
        dev.irqs = []
        dev.descs = []
        dev.msi_enabled = dev.msix_enabled = False
