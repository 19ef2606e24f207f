"""A booted kernel: the irq core, the GICv3 driver, LPI infrastructure, CPU hotplug.

The kernel reaches the hardware only as software does: MMIO through the bus
(as a CPU, no bus master), RAM, and the ICC_* system registers of the PE it is
running on (:attr:`this_cpu`).  Public methods mirror Linux's names and raise
:class:`~directlpi.kernel.errors.KernelError` with Linux's errno.
"""

from __future__ import annotations

import errno
import functools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Concatenate, Final, ParamSpec, Protocol, TypeVar

from directlpi.hw.cache import CpuMemory
from directlpi.kernel.context import ExecContext, Kind
from directlpi.kernel.errors import KernelBug, KernelError
from directlpi.kernel.fwdesc import BoardDescription
from directlpi.kernel.irq import manage
from directlpi.kernel.irq.affinity import IrqAffinity
from directlpi.kernel.irq.core import IrqAffinityDesc, IrqCore
from directlpi.kernel.irq.desc import IRQD_ACTIVATED, Cpumask, Handler, IrqData, IrqDesc
from directlpi.kernel.irq.domain import (
    IRQ_DOMAIN_FLAG_ISOLATED_MSI,
    DomainBusToken,
    Fwnode,
    IrqDomain,
    IrqFwspec,
    irq_domain_activate_irq,
    irq_domain_deactivate_irq,
)
from directlpi.kernel.irq.flow import mask_irq, unmask_irq
from directlpi.kernel.irq.hotplug import irq_affinity_online_cpu, irq_migrate_all_off_this_cpu
from directlpi.kernel.irq.proc import show_interrupts
from directlpi.kernel.irqchip.direct_lpi import DirectLpi, direct_lpi_init
from directlpi.kernel.irqchip.gic_v2m import GicV2m, gicv2m_init
from directlpi.kernel.irqchip.gic_v3 import GicV3
from directlpi.kernel.irqchip.gic_v3_its import Its, its_init, its_probe
from directlpi.kernel.irqchip.gic_v3_lpi import MAX_LPI_ID_BITS, LpiInfrastructure
from directlpi.kernel.irqchip.gic_v3_mbi import Mbi, mbi_init
from directlpi.kernel.irqchip.rfc_v1 import RfcV1, rfc_v1_init, rfc_v1_wants_lpis
from directlpi.kernel.mm import PhysAllocator
from directlpi.kernel.msi import MsiAllocInfo, MsiDesc, MsiDomain, MsiMsg, msi_alloc_descs
from directlpi.kernel.pci import PciSubsystem
from directlpi.kernel.pci_hyperv import HvVpci, hv_pci_init
from directlpi.kernel.printk import Log
from directlpi.kernel.smp import Smp


class SysregAccess(Protocol):
    """One PE's system registers, as an instruction executed on it reaches them."""

    def read_sysreg(self, name: str) -> int: ...
    def write_sysreg(self, name: str, value: int) -> None: ...
    def sysreg_reader(self, name: str) -> Callable[[], int]: ...
    def sysreg_writer(self, name: str) -> Callable[[int], None]: ...


class PeAccess(Protocol):
    """What the machine offers the kernel: its PEs, as software sees them.

    ``sysreg_port(cpu).read_sysreg(name)`` is an ``MRS`` executed by PE ``cpu`` (the
    hardware refuses it unless that PE is the one executing); ``execute_on(cpu)`` makes PE
    ``cpu`` the one executing and returns the one that was (the platform's scheduler:
    the kernel only calls it where Linux code starts running on a PE -- an exception
    entry, a secondary CPU starting, the hotplug stopper, the calling task);
    ``run_until(done)`` lets the machine run (PEs take interrupts, posted writes land)
    until ``done()`` or nothing more can happen, and says whether ``done()`` holds.
    """

    def sysreg_port(self, cpu: int) -> SysregAccess: ...
    def execute_on(self, cpu: int | None) -> int | None: ...
    def run_until(self, done: Callable[[], bool]) -> bool: ...


class BusAccess(Protocol):
    def read(self, addr: int, size: int, master: str | None = None) -> int: ...
    def write(self, addr: int, value: int, size: int, master: str | None = None) -> None: ...


MSI_PROVIDERS: Final = ("direct-lpi", "rfc-v1")
"""What ``BootParams.msi_provider`` accepts."""


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
    msi_provider: str = "direct-lpi"
    """The LPI MSI provider to bring up when there is no ITS: "direct-lpi" (R1..R11, only
    when firmware describes it) or "rfc-v1" (the 2021 RFC replayed in its place,
    :mod:`~directlpi.kernel.irqchip.rfc_v1`).  Anything else: KernelError (EINVAL)."""

    def __post_init__(self) -> None:
        if self.msi_provider not in MSI_PROVIDERS:
            raise KernelError(f"unknown MSI provider {self.msi_provider!r} (known: "
                              f"{', '.join(MSI_PROVIDERS)})", errno.EINVAL)


P = ParamSpec("P")
R = TypeVar("R")


def syscall(*, sleeps: bool) -> Callable[[Callable[Concatenate[Kernel, P], R]],
                                         Callable[Concatenate[Kernel, P], R]]:
    """A kernel entry point.  Called from outside the kernel (a driver, a test), it runs
    in process context on the calling task's CPU (:attr:`Kernel.task_cpu`), then runs the
    work it queued (the workqueue); called from kernel code it runs in that code's
    context, which must allow sleeping if the function may sleep (``might_sleep``)."""
    def wrap(fn: Callable[Concatenate[Kernel, P], R]) -> Callable[Concatenate[Kernel, P], R]:
        name = fn.__name__

        def entry(self: Kernel, /, *args: P.args, **kwargs: P.kwargs) -> R:
            ctx = self.ctx
            if ctx.frames:
                if sleeps:
                    ctx.might_sleep(name)
                return fn(self, *args, **kwargs)
            return self.run_on(self.task_cpu, Kind.PROCESS,
                               functools.partial(_then_work, self, fn, args, kwargs))
        functools.update_wrapper(entry, fn)
        return entry
    return wrap


def _then_work(kernel: Kernel, fn: Callable[..., R], args: Any, kwargs: Any) -> R:
    result = fn(kernel, *args, **kwargs)
    if kernel.workqueue:
        kernel.run_work()
    return result


class Kernel:
    """One running kernel on a platform's hardware."""

    def __init__(self, bus: BusAccess, ram: CpuMemory, pes: PeAccess,
                 board: BoardDescription, params: BootParams | None = None) -> None:
        self.params = params or BootParams()
        self.board = board
        self._bus = bus
        self.ram = ram
        self._clean_poc = getattr(ram, "clean", None)
        self._inval_poc = getattr(ram, "invalidate", None)
        self._pes = pes
        ports = [pes.sysreg_port(c) for c in range(len(board.cpus))]
        self._ports = ports
        self._mrs = [p.read_sysreg for p in ports]
        self._msr = [p.write_sysreg for p in ports]
        self.log = Log()
        self.ctx = ExecContext(len(board.cpus))
        self.irq = IrqCore(self.log, len(board.cpus), self.ctx)
        self.boot_cpu = self.params.boot_cpu
        #: The CPU a caller from outside the kernel runs on (its task's CPU).
        self.task_cpu = self.boot_cpu
        self.mm = PhysAllocator(ram, board.memory, self.params.memreserve)
        self.gic = GicV3(self, board.gic)
        self.smp = Smp(self)
        self.lpi: LpiInfrastructure | None = None
        self.direct_lpi: DirectLpi | None = None
        self.rfc_v1: RfcV1 | None = None
        #: IORT MSI domain tokens, GIC ITS ID -> (base, domain fwnode)
        #: (``iort_register_domain_token``): how ACPI finds an ITS's MSI domain.
        self.iort_domain_tokens: dict[int, tuple[int, Fwnode]] = {}
        self.mbi: Mbi | None = None
        self.its: Its | None = None
        self.v2m: GicV2m | None = None
        #: Hyper-V vPCI MSIs (guest SPIs the host routes: ``msi_provider`` "spi-pv").
        self.hv: HvVpci | None = None
        self.pci = PciSubsystem(self, board.pci_hosts)
        #: Devices handed to a guest through vfio (after the isolation check).
        self.assigned: set[str] = set()
        self._platform_irqs: dict[Any, tuple[int, int]] = {}
        #: CPU hotplug callbacks of other subsystems (MSI providers, drivers):
        #: ``cpu_dying_hooks`` run on the dying CPU in the stopper (interrupts off),
        #: after its interrupts were migrated; ``cpu_online_hooks`` run on the incoming
        #: CPU in process context, once it is online.
        self.cpu_dying_hooks: list[Callable[[int], None]] = []
        self.cpu_online_hooks: list[Callable[[int], None]] = []
        #: Deferred work for process context (``schedule_work``).
        self.workqueue: deque[Callable[[], object]] = deque()
        self.booted = False

    # -- where code runs ------------------------------------------------------------------------

    @property
    def this_cpu(self) -> int:
        """The CPU the running kernel code is on (the task's CPU outside the kernel)."""
        return self.ctx.cpu if self.ctx.frames else self.task_cpu

    def run_on(self, cpu: int, kind: Kind, fn: Callable[[], R]) -> R:
        """``fn()`` as kernel code of ``kind`` on PE ``cpu`` (the machine executes that PE
        meanwhile); what :meth:`running_on` does, without a ``with`` (hot paths)."""
        pes = self._pes
        ctx = self.ctx
        prev = pes.execute_on(cpu)
        frame = ctx.enter(cpu, kind)
        try:
            result = fn()
        except BaseException:
            ctx.leave(frame, unwinding=True)
            raise
        finally:
            pes.execute_on(prev)
        ctx.leave(frame)
        return result

    @contextmanager
    def running_on(self, cpu: int, kind: Kind, irqs_off: bool = False) -> Iterator[None]:
        """Kernel code of ``kind`` runs on PE ``cpu`` for the body (the machine executes
        that PE meanwhile).  Used where Linux code starts on a PE: a task's system call,
        an exception entry, the hotplug stopper, a CPU starting."""
        prev = self._pes.execute_on(cpu)
        try:
            with self.ctx.running(cpu, kind, irqs_off):
                yield
        finally:
            self._pes.execute_on(prev)

    def cpu_can_take_interrupt(self, cpu: int) -> bool:
        """Whether PE ``cpu`` could take an IRQ exception now (it is online and not
        running kernel code with interrupts off)."""
        return cpu in self.irq.online and (not self.ctx.frames
                                           or self.ctx.can_take_interrupt(cpu))

    @contextmanager
    def task_on_cpu(self, cpu: int) -> Iterator[None]:
        """Run the calling task on ``cpu`` for the body (``sched_setaffinity``): kernel
        calls made in it run there.  Only from outside the kernel."""
        self._check_cpu(cpu)
        if self.ctx.frames:
            raise KernelBug("task_on_cpu: a task migrates only from outside kernel code")
        if cpu not in self.irq.online:
            raise KernelError(f"CPU{cpu} is offline: no task can run there", errno.EINVAL)
        prev, self.task_cpu = self.task_cpu, cpu
        try:
            yield
        finally:
            self.task_cpu = prev if prev in self.irq.online else min(self.irq.online)

    def wait_for(self, done: Callable[[], bool]) -> bool:
        """Spin (interrupts enabled) while the machine runs, until ``done()``; False if
        nothing more can happen and it still is not."""
        return done() or self._pes.run_until(done)

    def schedule_work(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` later in process context (the system workqueue)."""
        self.workqueue.append(fn)

    def run_work(self) -> bool:
        """Run queued work in process context; True if any ran."""
        queue = self.workqueue
        if not queue:
            return False
        if not self.ctx.frames:
            with self.running_on(self.task_cpu, Kind.PROCESS):
                return self.run_work()
        while queue:
            queue.popleft()()
        return True

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
        """``MRS`` on the CPU this code runs on (no other PE's registers can be named)."""
        return self._mrs[self.ctx.cpu if self.ctx.frames else self.task_cpu](name)

    def write_sysreg(self, name: str, value: int) -> None:
        self._msr[self.ctx.cpu if self.ctx.frames else self.task_cpu](name, value)

    def sysreg_readers(self, name: str) -> list[Callable[[], int]]:
        """``MRS`` of ``name`` resolved once, per CPU (``[cpu]()`` on CPU ``cpu``: a hot
        path resolves its registers at probe instead of naming them on every access)."""
        return [p.sysreg_reader(name) for p in self._ports]

    def sysreg_writers(self, name: str) -> list[Callable[[int], None]]:
        """``MSR`` of ``name`` resolved once, per CPU, as :meth:`sysreg_readers`."""
        return [p.sysreg_writer(name) for p in self._ports]

    def dcache_clean_poc(self, addr: int, size: int) -> None:
        """``DC CVAC`` over a range (``gic_flush_dcache_to_poc``): what the CPU wrote
        reaches memory, where a non-snooping redistributor reads it."""
        if self._clean_poc is not None:
            self._clean_poc(addr, size)

    def dcache_inval_poc(self, addr: int, size: int) -> None:
        """``DC IVAC`` over a range: the CPU's next reads fetch what memory holds."""
        if self._inval_poc is not None:
            self._inval_poc(addr, size)

    @property
    def lpis_enabled(self) -> bool:
        return self.lpi is not None

    # -- boot -------------------------------------------------------------------------------------

    def boot(self) -> Kernel:
        """``start_kernel`` as far as interrupts go: GIC, LPIs, secondary CPUs."""
        log = self.log
        boot = self.boot_cpu
        with self.running_on(boot, Kind.PROCESS):
            log.info(f"Booting directlpi kernel on physical CPU {self.board.cpus[boot]:#x}")
            log.info(f"Machine model: {self.board.name}")
            self.irq.online.add(boot)
            self.gic.init_bases()
            self.gic.cpu_init(boot)
            its_nodes = its_probe(self) if self.board.gic.its and self.gic.has_lpis else []
            rfc = self.params.msi_provider == "rfc-v1"
            if (rfc and rfc_v1_wants_lpis(self, its_nodes)) or self._want_lpis(its_nodes):
                self._init_lpis()
            if rfc:
                self.rfc_v1 = rfc_v1_init(self, its_nodes)
            else:
                self.direct_lpi = direct_lpi_init(self)
            self.its = its_init(self, its_nodes)
            self.mbi = mbi_init(self)
            self.v2m = gicv2m_init(self)
            self.hv = hv_pci_init(self)
            self.smp.init()
            self.smp.ipi_setup()
            for cpu in range(len(self.board.cpus)):
                if cpu != boot:
                    self._cpu_up(cpu)
            log.info(f"smp: Brought up 1 node, {len(self.irq.online)} CPUs")
            self.pci.scan()
            self.run_work()
        self.booted = True
        return self

    def _want_lpis(self, its_nodes: Sequence[object] = ()) -> bool:
        if not self.gic.has_lpis:
            if self.params.lpis:
                self.log.err("GICv3: LPIs requested but the distributor has none "
                             "(GICD_TYPER.LPIS = 0)")
            return False
        if self.params.lpis is not None:
            if not self.params.lpis:
                self.log.info("GICv3: LPIs disabled on the command line")
            return self.params.lpis
        if not self.board.gic.direct_lpi and not its_nodes:
            if self.board.gic.its:
                self.log.info("ITS: No ITS available, not enabling LPIs")
            else:
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

    def _cpu_up(self, cpu: int) -> None:
        """PSCI CPU_ON: the incoming CPU runs ``secondary_start_kernel`` itself (interrupts
        off), then its hotplug thread runs the online callbacks in process context."""
        with self.running_on(cpu, Kind.STARTUP, irqs_off=True):
            self.gic.cpu_init(cpu)
            if self.lpi is not None:
                try:
                    self.lpi.cpu_init_lpis(cpu)
                except KernelError as exc:
                    self.log.err(f"{exc} [{exc.errno_name}]")
                if self.its is not None:
                    self.its.cpu_init(cpu)
            self.smp.ipi_setup()
            self.irq.online.add(cpu)
        with self.running_on(cpu, Kind.PROCESS):
            irq_affinity_online_cpu(self.irq, cpu)
            for hook in self.cpu_online_hooks:
                hook(cpu)

    # -- the exception entry ----------------------------------------------------------------------

    def handle_irq(self, cpu: int) -> None:
        """An IRQ exception taken on ``cpu``: ``gic_handle_irq`` in hard-irq context."""
        self.run_on(cpu, Kind.HARDIRQ, self.gic.handle_irq)

    def run_softirqs(self) -> bool:
        """Run queued software resends (the resend tasklet: the flow handler with
        interrupts off, on the CPU the interrupt targets); True if any ran."""
        queue = self.irq.resend_queue
        ran = False
        while queue:
            desc = queue.popleft()
            ran = True
            eff = desc.irq_data.common.effective_affinity & self.irq.online
            with self.running_on(min(eff) if eff else self.task_cpu, Kind.HARDIRQ):
                desc.handle_irq(desc)
        return ran

    # -- CPU hotplug -------------------------------------------------------------------------------

    @syscall(sleeps=True)
    def cpu_offline(self, cpu: int) -> None:
        """Take ``cpu`` offline: its teardown runs *on* it (the stopper, interrupts off):
        every interrupt migrated away, managed ones without an online CPU shut down, then
        the dying callbacks.  Raises EINVAL (offline already), EBUSY (the last CPU)."""
        self._check_cpu(cpu)
        if cpu not in self.irq.online:
            raise KernelError(f"CPU{cpu} is already offline", errno.EINVAL)
        if len(self.irq.online) == 1:
            raise KernelError(f"CPU{cpu} is the last online CPU", errno.EBUSY)
        if self.this_cpu == cpu:            # the hotplug control task runs elsewhere
            with self.running_on(min(self.irq.online - {cpu}), Kind.PROCESS):
                self._take_cpu_down(cpu)
        else:
            self._take_cpu_down(cpu)
        if self.task_cpu == cpu:
            self.task_cpu = min(self.irq.online)
        self.log.info(f"CPU{cpu}: shutdown")

    def _take_cpu_down(self, cpu: int) -> None:
        with self.running_on(cpu, Kind.STOPPER, irqs_off=True):
            self.irq.online.discard(cpu)
            irq_migrate_all_off_this_cpu(self.irq, cpu)
            for hook in self.cpu_dying_hooks:
                hook(cpu)

    @syscall(sleeps=True)
    def cpu_online(self, cpu: int) -> None:
        """Bring ``cpu`` back: GIC CPU init on it, restart managed interrupts that wait for it."""
        self._check_cpu(cpu)
        if cpu in self.irq.online:
            raise KernelError(f"CPU{cpu} is already online", errno.EINVAL)
        self._cpu_up(cpu)
        self.log.info(f"CPU{cpu}: Booted secondary processor")

    def _check_cpu(self, cpu: int) -> None:
        if not isinstance(cpu, int) or not 0 <= cpu < len(self.board.cpus):
            raise KernelError(f"no CPU {cpu!r} (possible: 0..{len(self.board.cpus) - 1})",
                              errno.EINVAL)

    # -- cross-CPU work ----------------------------------------------------------------------------

    def smp_call_function_single(self, cpu: int, fn: Callable[[], object],
                                 wait: bool = True) -> None:
        """Run ``fn`` on ``cpu`` in hard-irq context (an IPI); see :mod:`kernel.smp`."""
        if not self.ctx.frames:
            with self.running_on(self.task_cpu, Kind.PROCESS):
                self.smp.call_function_single(cpu, fn, wait)
            return
        self.smp.call_function_single(cpu, fn, wait)

    def irq_work_queue_on(self, cpu: int, fn: Callable[[], object]) -> None:
        """Run ``fn`` later on ``cpu`` in hard-irq context; allowed in any context."""
        self._check_cpu(cpu)
        if not self.ctx.frames:
            with self.running_on(self.task_cpu, Kind.PROCESS):
                self.smp.irq_work_queue_on(cpu, fn)
            return
        self.smp.irq_work_queue_on(cpu, fn)

    # -- driver API (genirq) -----------------------------------------------------------------------

    @syscall(sleeps=True)
    def request_irq(self, irq: int, handler: Handler, flags: int = 0, name: str = "",
                    dev_id: Any = None) -> None:
        manage.request_irq(self.irq, irq, handler, flags, name, dev_id)

    @syscall(sleeps=True)
    def free_irq(self, irq: int, dev_id: Any = None) -> None:
        manage.free_irq(self.irq, irq, dev_id)

    @syscall(sleeps=True)
    def disable_irq(self, irq: int) -> None:
        manage.disable_irq(self.irq, irq)

    @syscall(sleeps=False)
    def enable_irq(self, irq: int) -> None:
        manage.enable_irq(self.irq, irq)

    @syscall(sleeps=False)
    def disable_irq_nosync(self, irq: int) -> None:
        manage.disable_irq_nosync(self.irq, irq)

    @syscall(sleeps=False)
    def enable_percpu_irq(self, irq: int, cpu: int | None = None) -> None:
        """Unmask PPI ``irq`` on ``cpu``: on the CPU the caller runs on (default) itself,
        on another CPU by a cross call (``on_each_cpu`` style) -- only from a context
        that may wait for it."""
        self._on(cpu, lambda: manage.enable_percpu_irq(self.irq, irq))

    @syscall(sleeps=False)
    def disable_percpu_irq(self, irq: int, cpu: int | None = None) -> None:
        self._on(cpu, lambda: manage.disable_percpu_irq(self.irq, irq))

    def _on(self, cpu: int | None, fn: Callable[[], None]) -> None:
        if cpu is None or cpu == self.this_cpu:
            fn()
            return
        self._check_cpu(cpu)
        self.smp.call_function_single(cpu, fn)

    @syscall(sleeps=False)
    def irq_set_affinity(self, irq: int, cpus: Iterable[int], force: bool = False) -> int:
        return manage.irq_set_affinity(self.irq, irq, cpus, force)

    def irq_get_affinity(self, irq: int) -> Cpumask:
        return manage.irq_get_affinity(self.irq, irq)

    def irq_get_effective_affinity(self, irq: int) -> set[int]:
        return set(manage.irq_get_effective_affinity(self.irq, irq))

    @syscall(sleeps=False)
    def irq_set_irqchip_state(self, irq: int, which: int, value: bool) -> None:
        manage.irq_set_irqchip_state(self.irq, irq, which, value)

    @syscall(sleeps=False)
    def irq_get_irqchip_state(self, irq: int, which: int) -> bool:
        return manage.irq_get_irqchip_state(self.irq, irq, which)

    @syscall(sleeps=False)
    def irq_inject_interrupt(self, irq: int) -> None:
        """Re-raise ``irq`` in hardware through its chip hierarchy's ``irq_retrigger``."""
        manage.irq_inject_interrupt(self.irq, irq)

    @syscall(sleeps=False)
    def irq_set_irq_type(self, irq: int, flow_type: int) -> None:
        manage.irq_set_irq_type(self.irq, irq, flow_type)

    @syscall(sleeps=True)
    def irq_create_fwspec_mapping(self, fwspec: IrqFwspec) -> int:
        return self.irq.irq_create_fwspec_mapping(fwspec)

    @syscall(sleeps=True)
    def gic_spi_mapping(self, spi_intid: int, flow_type: int) -> int:
        """Map SPI ``spi_intid`` (32..1019) as a DT ``<0 (intid - 32) type>`` specifier would."""
        return self.irq.irq_create_fwspec_mapping(
            IrqFwspec(self.board.gic.fwnode, (0, spi_intid - 32, flow_type)))

    def irq_to_desc(self, irq: int) -> IrqDesc | None:
        return self.irq.irq_to_desc(irq)

    @syscall(sleeps=True)
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

    @syscall(sleeps=True)
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

    @syscall(sleeps=True)
    def pci_free_irq_vectors(self, dev: Any) -> None:
        """Disable MSI/MSI-X and free the vectors (free_irq each one first: else EBUSY)."""
        self.pci.free_irq_vectors(self._bdf(dev))

    def _platform_msi_domain(self, name: str | None = None) -> MsiDomain:
        """The platform-MSI domain of the MSI controller firmware names for platform
        device ``name`` (an IORT named component: ``platform_msi_get_host_data`` finds it
        by the device's fwnode); for a device firmware does not describe, Direct LPI's,
        else the ITS's, MBI's, GICv2m's."""
        described = self.board.platform_device(name) if name is not None else None
        if described is not None:
            parent = described.msi_parent
            dom = self.irq.irq_find_matching_fwnode(parent, DomainBusToken.PLATFORM_MSI)
            if dom is None or not isinstance(dom.host_data, MsiDomain):
                raise KernelError(f"firmware routes its MSIs to {parent.name}, which has no "
                                  "platform-MSI domain: see the kernel log", errno.ENODEV)
            return dom.host_data
        provider = self.direct_lpi or self.rfc_v1 or self.its or self.mbi or self.v2m
        if provider is None:
            why = ("no MSI provider was registered" if self.hv is None else
                   "the only MSI provider is the vPCI bus's (spi-pv), whose MSIs are PCI's")
            raise KernelError(f"no platform-MSI domain: {why}", errno.ENOSPC)
        return provider.platform

    @syscall(sleeps=True)
    def platform_msi_domain_alloc_irqs(self, dev: Any, nvec: int,
                                       write_msg: Callable[[MsiDesc, MsiMsg], None]) -> int:
        """Allocate ``nvec`` platform MSIs; ``write_msg(desc, msg)`` programs slot
        ``desc.msi_index`` of the device.  Returns the first virq (they are consecutive).
        An ITS takes the device's DeviceID from its firmware msi-specifier, which the
        device record carries as ``msi_device_id`` (DT ``msi-parent = <&its ID>``)."""
        name = getattr(dev, "name", dev)
        if name in self._platform_irqs:
            raise KernelError(f"{name}: platform MSIs already allocated", errno.EINVAL)
        try:
            domain = self._platform_msi_domain(str(name))
        except KernelError as exc:
            raise KernelError(f"platform device {name}: {exc}", exc.errno) from None
        descs = msi_alloc_descs(name, nvec, write_msg)
        info = MsiAllocInfo(str(name), nvec, descs,
                            dev_id=getattr(dev, "msi_device_id", None))
        virq = self.irq.irq_domain_alloc_irqs(domain.domain, nvec, info)
        activated: list[IrqData] = []
        try:
            for i in range(nvec):
                desc = self.irq.irq_to_desc(virq + i)
                assert desc is not None
                irq_domain_activate_irq(desc.irq_data, False)
                activated.append(desc.irq_data)
        except KernelError:
            # As msi_domain_alloc_irqs' cleanup: what was activated is deactivated (its
            # slot is written a zero message), then everything is freed.
            for d in reversed(activated):
                irq_domain_deactivate_irq(d)
            self.irq.irq_domain_free_irqs(virq, nvec)
            raise
        self._platform_irqs[name] = (virq, nvec)
        return virq

    @syscall(sleeps=True)
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

    def msi_irqs_of(self, master: str) -> list[int]:
        """The MSI virqs the kernel allocated for bus master ``master`` (a PCI function's
        BDF, a platform device's name), in vector order."""
        dev = self.pci.devices.get(master)
        if dev is not None:
            return list(dev.irqs)
        virq, nvec = self._platform_irqs.get(master, (0, 0))
        return list(range(virq, virq + nvec))

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

    def iort_register_domain_token(self, trans_id: int, base: int, fwnode: Fwnode) -> None:
        """``iort_register_domain_token``: the MSI domain of GIC ITS ``trans_id`` (its
        GITS_TRANSLATER page at ``base``).  EEXIST when that ID has one already."""
        if trans_id in self.iort_domain_tokens:
            raise KernelError(f"IORT: ITS ID {trans_id} already has a domain token",
                              errno.EEXIST)
        self.iort_domain_tokens[trans_id] = (base, fwnode)

    def _msi_domain_of(self, dev: Any) -> IrqDomain | None:
        try:
            if isinstance(dev, str) or hasattr(dev, "bdf"):
                return self.pci.msi_domain(self.pci.get(self._bdf(dev))).domain
            return self._platform_msi_domain(str(getattr(dev, "name", dev))).domain
        except KernelError:
            return None

    def msi_isolated(self, dev: Any) -> bool:
        """Whether the device's MSIs are isolated (remapped per device).  Never for Direct
        LPI: any bus master can write any INTID into any redistributor (R6)."""
        dom = self._msi_domain_of(dev)
        return dom is not None and any(
            d.flags & IRQ_DOMAIN_FLAG_ISOLATED_MSI for d in dom.hierarchy())

    @syscall(sleeps=True)
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

    @syscall(sleeps=False)
    def mask_irq(self, irq: int) -> None:
        """Mask at the chip hierarchy (the genirq ``mask_irq``), not a disable."""
        desc = self._desc(irq)
        with self.ctx.locked(desc.lock):
            mask_irq(desc)

    @syscall(sleeps=False)
    def unmask_irq(self, irq: int) -> None:
        """Unmask at the chip hierarchy.  EINVAL for an interrupt that is not activated
        (a managed vector shut down with its CPUs: it has no target to be unmasked on)."""
        desc = self._desc(irq)
        with self.ctx.locked(desc.lock):
            if not desc.irq_data.has(IRQD_ACTIVATED):
                raise KernelError(f"irq {irq} is not activated (shut down: none of its CPUs "
                                  "is online); it cannot be unmasked", errno.EINVAL)
            unmask_irq(desc)

    def _desc(self, irq: int) -> IrqDesc:
        desc = self.irq.irq_to_desc(irq) if isinstance(irq, int) else None
        if desc is None:
            raise KernelError(f"irq {irq!r} does not exist", errno.EINVAL)
        return desc

    @property
    def msi_provider(self) -> str:
        """The MSI providers registered, joined by "+": "direct-lpi", "rfc-v1", "its", "mbi",
        "gicv2m" (e.g. "direct-lpi+mbi"), or "none"."""
        names = [n for n, p in (("direct-lpi", self.direct_lpi), ("rfc-v1", self.rfc_v1),
                                ("its", self.its),
                                ("mbi", self.mbi), ("gicv2m", self.v2m),
                                ("spi-pv", self.hv)) if p is not None]
        return "+".join(names) or "none"

    # -- introspection -----------------------------------------------------------------------------

    def proc_interrupts(self) -> str:
        """``/proc/interrupts`` (the IPIs as ``IPIn`` rows)."""
        return show_interrupts(self.irq, self.smp.proc_rows())

    def dmesg(self) -> str:
        return str(self.log)

    @property
    def online_cpus(self) -> set[int]:
        return set(self.irq.online)
