"""The platform's per-MSI code, compiled with the hardware (:mod:`directlpi._native`).

What every interrupt runs through outside the hardware and the kernel: the run loop that
lets online PEs take what is pending (:meth:`HotPaths.run`), the PEs as the kernel
reaches them (:class:`Processors`), and the audit that judges each doorbell write when a
device issues it (:meth:`HotPaths.audit_dma`).  :class:`~directlpi.platform.Platform`
delegates to these; they are here, not there, so that they compile -- the platform's
construction (devicetree, ACPI, options) stays plain Python.
"""

from __future__ import annotations

import errno
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from directlpi.devices.pci import PciFunction
from directlpi.devices.platform_msi import PlatformMsiDevice
from directlpi.errors import DirectLPIError
from directlpi.hw.bus import Bus
from directlpi.hw.cpuif import CPUInterface
from directlpi.hw.gic import GIC
from directlpi.hw.its import Its
from directlpi.kernel.irq.desc import IrqDesc
from directlpi.kernel.kernel import Kernel

if TYPE_CHECKING:
    from directlpi.platform import Platform


class Processors:
    """The machine's PEs as the kernel sees them (:class:`~directlpi.kernel.kernel.PeAccess`):
    system registers of the executing PE, and the scheduler that decides which PE that is."""

    __slots__ = ("_cpuifs", "_gic", "_plat")

    def __init__(self, plat: Platform) -> None:
        self._plat = plat
        self._gic: GIC = plat.machine.gic
        self._cpuifs: list[CPUInterface] = plat.machine.gic.cpuifs

    def sysreg_port(self, cpu: int) -> CPUInterface:
        return self._cpuifs[cpu]

    def execute_on(self, cpu: int | None) -> int | None:
        gic = self._gic
        prev = gic.executing
        gic.executing = cpu
        return prev

    def run_until(self, done: Callable[[], bool]) -> bool:
        plat = self._plat
        plat.hot.run(plat._running(), done=done)
        return done()


class HotPaths:
    """What the per-MSI paths read of platform ``plat``, fetched once: the machine's parts,
    the doorbell maps and the device tables (built when the platform is, and only ever
    updated in place).  The running kernel is read on every call: kexec replaces it."""

    def __init__(self, plat: Platform) -> None:
        self.plat = plat
        machine = plat.machine
        self.gic: GIC = machine.gic
        self.kicked: set[int] = machine.gic.kicked
        self.cpuifs: list[CPUInterface] = machine.gic.cpuifs
        self.bus: Bus = machine.bus
        self.its: list[Its] = machine.its
        self.rng: random.Random = plat._rng
        self.doorbells: dict[int, int] = plat._doorbells
        self.its_doorbells: dict[int, Its] = plat.its_doorbells
        self.hv_doorbells: set[int] = plat.hv_doorbells
        self.pci_devices: dict[str, PciFunction] = plat.pci_devices
        self.platform_devices: dict[str, PlatformMsiDevice] = plat.platform_devices

    def run(self, k: Kernel, max_rounds: int = 1_000_000,
            done: Callable[[], bool] | None = None) -> int:
        """The run loop (also what a CPU spinning in the kernel lets happen, until ``done``).

        Only PEs the hardware kicked (``GIC.kicked``: something may have become pending
        for them) are looked at, lowest first; posted writes land in a seeded order
        interleaved with them.  Returns the number of interrupts taken.
        """
        kicked = self.kicked
        cpuifs = self.cpuifs
        bus = self.bus
        rng = self.rng
        online = k.irq.online
        ctx = k.ctx
        frames = ctx.frames
        resend = k.irq.resend_queue
        work = k.workqueue
        its = self.its
        busy: set[int] = set()          # PEs running kernel code with interrupts off
        taken = 0
        try:
            while done is None or not done():
                if resend:
                    k.run_softirqs()
                    continue
                if work and not frames:
                    k.run_work()
                    continue
                posted = bus.posted_pending
                if kicked and not (posted and rng.random() < 0.5):
                    cpu = min(kicked)
                    kicked.discard(cpu)
                    if not kicked:
                        # Emptied: clear() gives the set back its small table, so min()
                        # and iteration stop walking the slots all the PEs once took.
                        kicked.clear()
                    if cpu not in online:
                        continue
                    if frames and not ctx.can_take_interrupt(cpu):
                        busy.add(cpu)
                        continue
                    if cpuifs[cpu].irq_pending():
                        k.handle_irq(cpu)
                        kicked.add(cpu)
                        taken += 1
                        if taken > max_rounds:
                            raise DirectLPIError(
                                f"interrupt storm: still taking interrupts after "
                                f"{max_rounds}; a level interrupt whose handler never clears "
                                "its source?", errno.EAGAIN)
                    continue
                if posted:
                    bus.deliver_one()
                    continue
                if its and any([i.catch_up() for i in its]):
                    continue            # the ITSes worked through what was queued
                break
        finally:
            if busy:
                kicked.update(busy)
        return taken

    def message_intid(self, addr: int, value: int, master: str) -> int | None:
        """:meth:`Platform.message_intid <directlpi.platform.Platform.message_intid>`."""
        if addr in self.its_doorbells:
            return self.plat.its_lpi(addr, value, master)
        if addr in self.hv_doorbells:
            hv = self.plat.hv
            assert hv is not None
            return hv.spi_of(master, value)
        return value & 0xFFFFFFFF if self.doorbells.get(addr, -1) >= 0 else value & 0x1FFF

    def desc_of(self, intid: int) -> IrqDesc | None:
        """The descriptor the running kernel maps GIC INTID ``intid`` to, if any."""
        k: Kernel | None = self.plat.kernel
        dom = k.gic.domain if k is not None else None
        if k is None or dom is None:
            return None
        virq = dom.revmap.get(intid)
        return k.irq.irq_to_desc(virq) if virq is not None else None

    def classify_msi(self, addr: int, value: int, master: str) -> str | None:
        """:meth:`Platform.classify_msi <directlpi.platform.Platform.classify_msi>`."""
        dev: PciFunction | PlatformMsiDevice | None = self.pci_devices.get(master)
        if dev is None:
            dev = self.platform_devices.get(master)
            if dev is None:
                return "unknown bus master"
        if not dev.sends(addr, value):
            return "not a message this device is programmed to send now"
        intid = self.message_intid(addr, value, master)
        desc = self.desc_of(intid) if intid is not None else None
        msi = desc.irq_data.common.msi_desc if desc is not None else None
        if msi is not None and getattr(msi.dev, "bdf", msi.dev) == master:
            return None
        if addr in self.its_doorbells:
            return "names an EventID this device has no LPI mapped for"
        if addr in self.hv_doorbells:
            return "names an interrupt the host did not grant this device"
        return "names an INTID this device does not own"

    def audit_dma(self, addr: int, value: int, size: int, master: str) -> None:
        """The bus's DMA hook: judge a doorbell write when the device issues it
        (:meth:`classify_msi`); record it if it is not genuine."""
        if addr not in self.doorbells and addr not in self.its_doorbells:
            return
        reason = self.classify_msi(addr, value, master)
        if reason is not None:
            self.plat._record_spoofed(addr, value, master, reason)
