"""A booted kernel: the irq core, the GICv3 driver, LPI infrastructure, CPU hotplug.

The kernel reaches the hardware only as software does: MMIO through the bus
(as a CPU, no bus master), RAM, and the ICC_* system registers of the PE it is
running on (:attr:`this_cpu`).  Public methods mirror Linux's names and raise
:class:`~directlpi.kernel.errors.KernelError` with Linux's errno.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from directlpi.hw.memory import PhysicalMemory
from directlpi.kernel.errors import KernelError
from directlpi.kernel.fwdesc import BoardDescription
from directlpi.kernel.irq import manage
from directlpi.kernel.irq.affinity import IrqAffinity
from directlpi.kernel.irq.core import IrqAffinityDesc, IrqCore
from directlpi.kernel.irq.desc import Cpumask, Handler, IrqDesc
from directlpi.kernel.irq.domain import (
    IRQ_DOMAIN_FLAG_ISOLATED_MSI,
    IrqDomain,
    IrqFwspec,
    irq_domain_activate_irq,
    irq_domain_deactivate_irq,
)
from directlpi.kernel.irq.flow import mask_irq, unmask_irq
from directlpi.kernel.irq.hotplug import irq_affinity_online_cpu, irq_migrate_all_off_this_cpu
from directlpi.kernel.irq.proc import show_interrupts
from directlpi.kernel.irqchip.direct_lpi import DirectLpi, direct_lpi_init
from directlpi.kernel.irqchip.gic_v3 import GicV3
from directlpi.kernel.irqchip.gic_v3_lpi import MAX_LPI_ID_BITS, LpiInfrastructure
from directlpi.kernel.irqchip.gic_v3_mbi import Mbi, mbi_init
from directlpi.kernel.mm import PhysAllocator
from directlpi.kernel.msi import MsiAllocInfo, MsiDesc, MsiDomain, MsiMsg, msi_alloc_descs
from directlpi.kernel.pci import PciSubsystem
from directlpi.kernel.printk import Log


class SysregAccess(Protocol):
    """What a PE offers the software running on it: its GIC system registers."""

    def read_sysreg(self, name: str) -> int: ...
    def write_sysreg(self, name: str, value: int) -> None: ...


class BusAccess(Protocol):
    def read(self, addr: int, size: int, master: str | None = None) -> int: ...
    def write(self, addr: int, value: int, size: int, master: str | None = None) -> None: ...


@dataclass(frozen=True)
class BootParams:
    """Kernel command line, in effect."""

    boot_cpu: int = 0
    lpis: bool | None = None
    """True: enable LPIs; False: never (``irqchip.gicv3_nolpi``); None: when firmware
    describes an MSI provider that uses them."""
    lpi_id_bits: int = MAX_LPI_ID_BITS
    """Cap on LPI INTID bits (the table size), as Linux's 16-bit cap."""
    memreserve: tuple[tuple[int, int], ...] = field(default=())
    """Ranges a previous kernel reserved (handed over by kexec)."""
    dlpi_quirks: frozenset[str] = frozenset()
    """Deliberately broken Direct LPI variants, for tests of the invariant checker."""


class Kernel:
    """One running kernel on a platform's hardware."""

    def __init__(self, bus: BusAccess, ram: PhysicalMemory, cpus: Sequence[SysregAccess],
                 board: BoardDescription, params: BootParams | None = None) -> None:
        self.params = params or BootParams()
        self.board = board
        self._bus = bus
        self.ram = ram
        self._cpus = cpus
        self.log = Log()
        self.irq = IrqCore(self.log, len(board.cpus))
        self.boot_cpu = self.params.boot_cpu
        self._cpu: SysregAccess = cpus[self.boot_cpu]
        self.mm = PhysAllocator(ram, board.memory, self.params.memreserve)
        self.gic = GicV3(self, board.gic)
        self.lpi: LpiInfrastructure | None = None
        self.direct_lpi: DirectLpi | None = None
        self.mbi: Mbi | None = None
        self.pci = PciSubsystem(self, board.pci_hosts)
        #: Devices handed to a guest through vfio (after the isolation check).
        self.assigned: set[str] = set()
        self._platform_irqs: dict[Any, tuple[int, int]] = {}
        #: Hooks other subsystems (MSI providers) register for CPU hotplug.
        self.cpu_online_hooks: list[Callable[[int], None]] = []
        self.booted = False

    # -- hardware access as software does it ---------------------------------------------------

    def readl(self, addr: int) -> int:
        return self._bus.read(addr, 4)

    def writel(self, value: int, addr: int) -> None:
        self._bus.write(addr, value, 4)

    def readq(self, addr: int) -> int:
        return self._bus.read(addr, 8)

    def writeq(self, value: int, addr: int) -> None:
        self._bus.write(addr, value, 8)

    def mmio_read(self, addr: int, size: int) -> int:
        return self._bus.read(addr, size)

    def mmio_write(self, addr: int, value: int, size: int) -> None:
        self._bus.write(addr, value, size)

    def read_sysreg(self, name: str) -> int:
        return self._cpu.read_sysreg(name)

    def write_sysreg(self, name: str, value: int) -> None:
        self._cpu.write_sysreg(name, value)

    @property
    def this_cpu(self) -> int:
        return self.irq.this_cpu

    def _switch_to(self, cpu: int) -> None:
        self.irq.this_cpu = cpu
        self._cpu = self._cpus[cpu]

    @contextmanager
    def on_cpu(self, cpu: int) -> Iterator[None]:
        """Run the body on ``cpu`` (``smp_call_function_single``, in effect)."""
        prev = self.irq.this_cpu
        self._switch_to(cpu)
        try:
            yield
        finally:
            self._switch_to(prev)

    @property
    def lpis_enabled(self) -> bool:
        return self.lpi is not None

    # -- boot -------------------------------------------------------------------------------------

    def boot(self) -> Kernel:
        """``start_kernel`` as far as interrupts go: GIC, LPIs, secondary CPUs."""
        log = self.log
        boot = self.boot_cpu
        log.info(f"Booting directlpi kernel on physical CPU {self.board.cpus[boot]:#x}")
        log.info(f"Machine model: {self.board.name}")
        self.irq.online.add(boot)
        with self.on_cpu(boot):
            self.gic.init_bases()
            self.gic.cpu_init(boot)
            if self._want_lpis():
                self._init_lpis()
            self.direct_lpi = direct_lpi_init(self, self.params.dlpi_quirks)
            self.mbi = mbi_init(self)
        for cpu in range(len(self.board.cpus)):
            if cpu != boot:
                self._bring_up(cpu)
        log.info(f"smp: Brought up 1 node, {len(self.irq.online)} CPUs")
        self.pci.scan()
        self.booted = True
        return self

    def _want_lpis(self) -> bool:
        if not self.gic.has_lpis:
            if self.params.lpis:
                self.log.err("GICv3: LPIs requested but the distributor has none "
                             "(GICD_TYPER.LPIS = 0)")
            return False
        if self.params.lpis is not None:
            if not self.params.lpis:
                self.log.info("GICv3: LPIs disabled on the command line")
            return self.params.lpis
        if not self.board.gic.direct_lpi:
            self.log.info("GICv3: no LPI-based MSI provider described by firmware, not "
                          "enabling LPIs")
            return False
        return True

    def _init_lpis(self) -> None:
        lpi = LpiInfrastructure(self, self.gic, self.params.lpi_id_bits)
        try:
            lpi.allocate_lpi_tables()
            lpi.cpu_init_lpis(self.boot_cpu)
        except KernelError as exc:
            self.log.err(f"{exc} [{exc.errno_name}]: LPI support disabled")
            return
        self.lpi = lpi

    def _bring_up(self, cpu: int) -> None:
        with self.on_cpu(cpu):
            self.gic.cpu_init(cpu)
            if self.lpi is not None:
                try:
                    self.lpi.cpu_init_lpis(cpu)
                except KernelError as exc:
                    self.log.err(f"{exc} [{exc.errno_name}]")
        self.irq.online.add(cpu)
        irq_affinity_online_cpu(self.irq, cpu)
        for hook in self.cpu_online_hooks:
            hook(cpu)

    # -- the exception entry ----------------------------------------------------------------------

    def handle_irq(self, cpu: int) -> None:
        """An IRQ exception taken on ``cpu``: ``gic_handle_irq``."""
        self.irq.this_cpu = cpu
        self._cpu = self._cpus[cpu]
        self.gic.handle_irq()

    def run_softirqs(self) -> bool:
        """Run queued software resends; True if any ran."""
        queue = self.irq.resend_queue
        ran = False
        while queue:
            desc = queue.popleft()
            ran = True
            desc.handle_irq(desc)
        return ran

    # -- CPU hotplug -------------------------------------------------------------------------------

    def cpu_offline(self, cpu: int) -> None:
        """Take ``cpu`` offline: migrate its interrupts away, shut down orphaned managed ones."""
        self._check_cpu(cpu)
        if cpu not in self.irq.online:
            raise KernelError(f"CPU{cpu} is already offline", errno.EINVAL)
        if len(self.irq.online) == 1:
            raise KernelError(f"CPU{cpu} is the last online CPU", errno.EBUSY)
        self.irq.online.discard(cpu)
        with self.on_cpu(cpu):
            irq_migrate_all_off_this_cpu(self.irq, cpu)
        self.log.info(f"CPU{cpu}: shutdown")

    def cpu_online(self, cpu: int) -> None:
        """Bring ``cpu`` back: GIC CPU init, restart managed interrupts that wait for it."""
        self._check_cpu(cpu)
        if cpu in self.irq.online:
            raise KernelError(f"CPU{cpu} is already online", errno.EINVAL)
        self._bring_up(cpu)
        self.log.info(f"CPU{cpu}: Booted secondary processor")

    def _check_cpu(self, cpu: int) -> None:
        if not isinstance(cpu, int) or not 0 <= cpu < len(self.board.cpus):
            raise KernelError(f"no CPU {cpu!r} (possible: 0..{len(self.board.cpus) - 1})",
                              errno.EINVAL)

    # -- driver API (genirq) -----------------------------------------------------------------------

    def request_irq(self, irq: int, handler: Handler, flags: int = 0, name: str = "",
                    dev_id: Any = None) -> None:
        manage.request_irq(self.irq, irq, handler, flags, name, dev_id)

    def free_irq(self, irq: int, dev_id: Any = None) -> None:
        manage.free_irq(self.irq, irq, dev_id)

    def disable_irq(self, irq: int) -> None:
        manage.disable_irq(self.irq, irq)

    def enable_irq(self, irq: int) -> None:
        manage.enable_irq(self.irq, irq)

    def enable_percpu_irq(self, irq: int, cpu: int | None = None) -> None:
        """Unmask PPI ``irq`` on ``cpu`` (default: the CPU the caller runs on)."""
        with self.on_cpu(self.this_cpu if cpu is None else cpu):
            manage.enable_percpu_irq(self.irq, irq)

    def disable_percpu_irq(self, irq: int, cpu: int | None = None) -> None:
        with self.on_cpu(self.this_cpu if cpu is None else cpu):
            manage.disable_percpu_irq(self.irq, irq)

    def irq_set_affinity(self, irq: int, cpus: Iterable[int], force: bool = False) -> int:
        return manage.irq_set_affinity(self.irq, irq, cpus, force)

    def irq_get_affinity(self, irq: int) -> Cpumask:
        return manage.irq_get_affinity(self.irq, irq)

    def irq_get_effective_affinity(self, irq: int) -> set[int]:
        return set(manage.irq_get_effective_affinity(self.irq, irq))

    def irq_set_irqchip_state(self, irq: int, which: int, value: bool) -> None:
        manage.irq_set_irqchip_state(self.irq, irq, which, value)

    def irq_get_irqchip_state(self, irq: int, which: int) -> bool:
        return manage.irq_get_irqchip_state(self.irq, irq, which)

    def irq_inject_interrupt(self, irq: int) -> None:
        """Re-raise ``irq`` in hardware through its chip hierarchy's ``irq_retrigger``."""
        manage.irq_inject_interrupt(self.irq, irq)

    def irq_set_irq_type(self, irq: int, flow_type: int) -> None:
        manage.irq_set_irq_type(self.irq, irq, flow_type)

    def irq_create_fwspec_mapping(self, fwspec: IrqFwspec) -> int:
        return self.irq.irq_create_fwspec_mapping(fwspec)

    def gic_spi_mapping(self, spi_intid: int, flow_type: int) -> int:
        """Map SPI ``spi_intid`` (32..1019) as a DT ``<0 (intid - 32) type>`` specifier would."""
        return self.irq.irq_create_fwspec_mapping(
            IrqFwspec(self.board.gic.fwnode, (0, spi_intid - 32, flow_type)))

    def irq_to_desc(self, irq: int) -> IrqDesc | None:
        return self.irq.irq_to_desc(irq)

    def irq_domain_alloc_irqs(self, domain: Any, nr_irqs: int, arg: Any = None,
                              affinity: Sequence[IrqAffinityDesc] | None = None) -> int:
        return self.irq.irq_domain_alloc_irqs(domain, nr_irqs, arg, affinity)

    # -- MSI (PCI and platform devices) ---------------------------------------------------------

    @staticmethod
    def _bdf(dev: Any) -> str:
        bdf = dev if isinstance(dev, str) else getattr(dev, "bdf", None)
        if not isinstance(bdf, str):
            raise KernelError(f"{dev!r} is not a PCI device", errno.EINVAL)
        return bdf

    def pci_alloc_irq_vectors(self, dev: Any, min_vecs: int, max_vecs: int, flags: int,
                              affd: IrqAffinity | None = None) -> int:
        """Allocate between ``min_vecs`` and ``max_vecs`` MSI-X or MSI vectors; returns how many.

        ``flags``: PCI_IRQ_MSIX and/or PCI_IRQ_MSI (MSI-X is tried first), optionally
        PCI_IRQ_AFFINITY (managed spreading).  Raises ENOSPC when fewer than
        ``min_vecs`` can be had, EINVAL when vectors are already allocated.
        """
        return self.pci.alloc_irq_vectors(self._bdf(dev), min_vecs, max_vecs, flags, affd)

    def pci_irq_vector(self, dev: Any, nr: int) -> int:
        """The Linux interrupt number of vector ``nr``."""
        return self.pci.irq_vector(self._bdf(dev), nr)

    def pci_free_irq_vectors(self, dev: Any) -> None:
        """Disable MSI/MSI-X and free the vectors (free_irq each one first: else EBUSY)."""
        self.pci.free_irq_vectors(self._bdf(dev))

    def _platform_msi_domain(self) -> MsiDomain:
        """Direct LPI's platform-MSI domain, else MBI's (platform devices are not in the
        devicetree, so there is no msi-parent to choose by)."""
        provider = self.direct_lpi or self.mbi
        if provider is None:
            raise KernelError("no platform-MSI domain: no MSI provider was registered",
                              errno.ENOSPC)
        return provider.platform

    def platform_msi_domain_alloc_irqs(self, dev: Any, nvec: int,
                                       write_msg: Callable[[MsiDesc, MsiMsg], None]) -> int:
        """Allocate ``nvec`` platform MSIs; ``write_msg(desc, msg)`` programs slot
        ``desc.msi_index`` of the device.  Returns the first virq (they are consecutive)."""
        name = getattr(dev, "name", dev)
        if name in self._platform_irqs:
            raise KernelError(f"{name}: platform MSIs already allocated", errno.EINVAL)
        domain = self._platform_msi_domain()
        descs = msi_alloc_descs(name, nvec, write_msg)
        info = MsiAllocInfo(str(name), nvec, descs)
        virq = self.irq.irq_domain_alloc_irqs(domain.domain, nvec, info)
        for i in range(nvec):
            desc = self.irq.irq_to_desc(virq + i)
            assert desc is not None
            irq_domain_activate_irq(desc.irq_data, False)
        self._platform_irqs[name] = (virq, nvec)
        return virq

    def platform_msi_domain_free_irqs(self, dev: Any) -> None:
        name = getattr(dev, "name", dev)
        if name not in self._platform_irqs:
            raise KernelError(f"{name}: no platform MSIs allocated", errno.EINVAL)
        virq, nvec = self._platform_irqs[name]
        busy = [v for v in range(virq, virq + nvec)
                if (d := self.irq.irq_to_desc(v)) is not None and d.actions]
        if busy:
            raise KernelError(f"{name}: free_irq() not called for IRQ {busy}", errno.EBUSY)
        for v in range(virq, virq + nvec):
            d = self.irq.irq_to_desc(v)
            assert d is not None
            irq_domain_deactivate_irq(d.irq_data)
        self.irq.irq_domain_free_irqs(virq, nvec)
        del self._platform_irqs[name]

    def get_cached_msi_msg(self, irq: int) -> MsiMsg:
        """The message the MSI layer composed for ``irq`` (``.address``, ``.data``)."""
        desc = self.irq.irq_to_desc(irq)
        d = desc.irq_data if desc is not None else None
        dom = d.domain if d is not None else None
        if dom is None or not isinstance(dom.host_data, MsiDomain):
            raise KernelError(f"irq {irq} is not an MSI", errno.EINVAL)
        msg = dom.host_data.cached.get(irq)
        if msg is None:
            raise KernelError(f"irq {irq}: no message composed (not activated)", errno.EINVAL)
        return msg.copy()

    def _msi_domain_of(self, dev: Any) -> IrqDomain | None:
        try:
            if isinstance(dev, str) or hasattr(dev, "bdf"):
                return self.pci.msi_domain(self.pci.get(self._bdf(dev))).domain
            return self._platform_msi_domain().domain
        except KernelError:
            return None

    def msi_isolated(self, dev: Any) -> bool:
        """Whether the device's MSIs are isolated (remapped per device).  Never for Direct
        LPI: any bus master can write any INTID into any redistributor (R6)."""
        dom = self._msi_domain_of(dev)
        return dom is not None and any(
            d.flags & IRQ_DOMAIN_FLAG_ISOLATED_MSI for d in dom.hierarchy())

    def vfio_assign(self, dev: Any, allow_unsafe_interrupts: bool = False) -> None:
        """Hand ``dev`` to an untrusted context (a VM): refused with EPERM unless its MSIs
        are isolated or unsafe interrupts are explicitly allowed (as vfio does)."""
        name = getattr(dev, "bdf", getattr(dev, "name", str(dev)))
        if not self.msi_isolated(dev):
            if not allow_unsafe_interrupts:
                raise KernelError(
                    f"vfio {name}: No interrupt remapping support.  Use the module param "
                    "\"allow_unsafe_interrupts\" to enable VFIO IOMMU support on this platform "
                    "(Direct LPI: the device could write any LPI into any redistributor)",
                    errno.EPERM)
            self.log.warn(f"vfio {name}: assigned with unsafe interrupts: it can raise any "
                          "LPI on any CPU")
        self.assigned.add(name)

    def mask_irq(self, irq: int) -> None:
        """Mask at the chip hierarchy (the genirq ``mask_irq``), not a disable."""
        desc = self.irq.irq_to_desc(irq)
        if desc is None:
            raise KernelError(f"irq {irq} does not exist", errno.EINVAL)
        mask_irq(desc)

    def unmask_irq(self, irq: int) -> None:
        desc = self.irq.irq_to_desc(irq)
        if desc is None:
            raise KernelError(f"irq {irq} does not exist", errno.EINVAL)
        unmask_irq(desc)

    @property
    def msi_provider(self) -> str:
        """The MSI providers registered: "direct-lpi", "mbi", "direct-lpi+mbi" or "none"."""
        names = [n for n, p in (("direct-lpi", self.direct_lpi), ("mbi", self.mbi))
                 if p is not None]
        return "+".join(names) or "none"

    # -- introspection -----------------------------------------------------------------------------

    def proc_interrupts(self) -> str:
        """``/proc/interrupts``."""
        return show_interrupts(self.irq)

    def dmesg(self) -> str:
        return str(self.log)

    @property
    def online_cpus(self) -> set[int]:
        return set(self.irq.online)
