"""Whole-stack exercise: random driver, device, hotplug and attacker actions, checked.

One :class:`StackExerciser` owns a booted platform with four devices -- an MSI-X
function with managed affinity (``x``), a MultiMSI function with per-vector masking
(``m``), a 32-bit plain-MSI function (``p``), a platform-MSI device (``d``) -- their
drivers, and an :class:`~directlpi.sim.invariants.InvariantChecker`.  Each operation
takes explicit arguments (so a hypothesis state machine and a seeded random hunt
drive the same code) and accepts exactly the refusals the kernel documents (an
errno *and* the reason); anything else propagates as a finding.

The board is Direct LPI (the default board), MBI (the MBI-only board), an ITS
(``its.dts``), GICv2m (``gicv2m.dts``) or the Hyper-V SPI route (``hyperv-spi.dts``), with
posted writes on or off and EnableLPIs clearable or not.  Operations: bind, unbind,
traffic, mask/unmask, disable/enable, move (forced too: of shut-down vectors),
set/clear pending, retrigger, CPU offline/online, stray writes to any INTID on any
RD by an unknown bus master (any SPI into the MBI or GICv2m doorbell; any EventID into
GITS_TRANSLATER or any handle into the host's doorbell, by an unknown master and by a
known device), replays of a message a device held before, kexec with pending state left
behind, and running the machine (the checker's end-of-run check).
"""

from __future__ import annotations

import errno
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from directlpi.devices.pci import PciFunction
from directlpi.devices.platform_msi import PlatformMsiDevice
from directlpi.errors import DirectLPIError
from directlpi.firmware.boards import BOARDS_DIR
from directlpi.hw.regs import GICD, GICR, LPI_BASE, V2M
from directlpi.kernel.irq.chip import IRQCHIP_STATE_PENDING
from directlpi.kernel.irq.desc import IRQ_HANDLED, IRQD_ACTIVATED, IRQD_MANAGED_SHUTDOWN
from directlpi.kernel.kernel import Kernel
from directlpi.kernel.msi import MsiDesc, MsiMsg
from directlpi.kernel.pci import PCI_IRQ_AFFINITY, PCI_IRQ_MSI, PCI_IRQ_MSIX
from directlpi.platform import Platform
from directlpi.sim.invariants import InvariantChecker, Violation

DEVICES = ("x", "m", "p", "d")
#: Boards other than the default (Direct LPI) one, by name.
BOARD_FILES = {"mbi": "mbi-only.dts", "its": "its.dts", "gicv2m": "gicv2m.dts",
               "spi-pv": "hyperv-spi.dts"}
DEVICE_BDFS = ("0000:00:01.0", "0000:00:02.0", "0000:00:03.0")
STRANGER = "0000:00:1f.7"
"""A bus master no driver knows (an unassigned function, a DMA engine gone rogue)."""


class Finding(AssertionError):
    """An invariant was violated, or the model reached an inconsistent state."""


@dataclass
class Refusals:
    """Documented refusals seen, by (operation, errno name)."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def note(self, op: str, exc: DirectLPIError) -> None:
        key = (op, exc.errno_name)
        self.counts[key] = self.counts.get(key, 0) + 1


class StackExerciser:
    """A booted platform, four devices and their drivers, under a checker."""

    def __init__(self, board: str = "direct-lpi", *, cpus: int = 4, posted: bool = False,
                 seed: int = 0, clearable: bool = False) -> None:
        silicon: dict[str, Any] = {"posted_writes": posted, "posted_seed": seed,
                                   "lpis_clearable": clearable}
        if board in BOARD_FILES:
            self.plat = Platform.from_devicetree(BOARDS_DIR / BOARD_FILES[board], **silicon)
        else:
            self.plat = Platform.default(cpus=cpus, **silicon)
        self.board = board
        p = self.plat
        self.fns: dict[str, PciFunction | PlatformMsiDevice] = {
            "x": p.add_pci_device(DEVICE_BDFS[0], msix_vectors=4),
            "m": p.add_pci_device(DEVICE_BDFS[1], msi_vectors=4, msi_per_vector_mask=True),
            "p": p.add_pci_device(DEVICE_BDFS[2], msi_vectors=1, msi_64bit=False),
            "d": p.add_platform_device("dma", slots=2),
        }
        self.kern: Kernel = p.boot()
        self.checker = InvariantChecker(p)
        self.virqs: dict[str, list[int]] = {name: [] for name in DEVICES}
        #: Messages each device was programmed with, for replays.
        self.history: dict[str, set[tuple[int, int]]] = {name: set() for name in DEVICES}
        self.refused = Refusals()
        self.ops = 0
        self.kexecs = 0
        for name in DEVICES:
            self.bind(name)

    # -- helpers ---------------------------------------------------------------------------

    @property
    def ncpus(self) -> int:
        return self.plat.num_cpus

    def _virq(self, name: str, vec: int) -> int | None:
        vs = self.virqs[name]
        return vs[vec % len(vs)] if vs else None

    def _remember(self, name: str) -> None:
        fn = self.fns[name]
        n = len(self.virqs[name])
        for i in range(n):
            msg = fn.msi_message(i)
            if msg[0]:
                self.history[name].add(msg)

    def _expect(self, op: str, fn: Callable[[], object],
                allowed: Callable[[DirectLPIError], bool]) -> bool:
        """Run ``fn``; a refusal passes only if ``allowed`` says it is a documented one."""
        self.ops += 1
        try:
            fn()
        except DirectLPIError as exc:
            if not allowed(exc):
                raise
            self.refused.note(op, exc)
            return False
        self._check_now()
        return True

    def _check_now(self) -> None:
        bad = [v for v in self.checker.violations if v.invariant != "lost-interrupt"]
        if bad:
            raise Finding(_describe(bad))

    def _activated(self, virq: int) -> bool:
        desc = self.kern.irq_to_desc(virq)
        return desc is not None and desc.irq_data.has(IRQD_ACTIVATED)

    # -- drivers ---------------------------------------------------------------------------

    def bind(self, name: str) -> None:
        if self.virqs[name]:
            return
        k, fn = self.kern, self.fns[name]
        self.ops += 1
        if isinstance(fn, PlatformMsiDevice):
            dev = fn

            def write_msg(desc: MsiDesc, msg: MsiMsg) -> None:
                dev.program_slot(desc.msi_index, msg.address, msg.data)
                dev.read_slot(desc.msi_index)
            first = k.platform_msi_domain_alloc_irqs(fn, 2, write_msg)
            virqs = [first, first + 1]
        else:
            flags = {"x": PCI_IRQ_MSIX | PCI_IRQ_AFFINITY, "m": PCI_IRQ_MSI,
                     "p": PCI_IRQ_MSI}[name]
            n = k.pci_alloc_irq_vectors(fn, 1, 4, flags)
            virqs = [k.pci_irq_vector(fn, i) for i in range(n)]
        for i, v in enumerate(virqs):
            k.request_irq(v, lambda irq, dev: IRQ_HANDLED, name=f"{name}{i}", dev_id=i)
        self.virqs[name] = virqs
        self._remember(name)
        self._check_now()

    def unbind(self, name: str) -> None:
        if not self.virqs[name]:
            return
        self.ops += 1
        for i, v in enumerate(self.virqs[name]):
            self.kern.free_irq(v, i)
        fn = self.fns[name]
        if isinstance(fn, PlatformMsiDevice):
            self.kern.platform_msi_domain_free_irqs(fn)
        else:
            self.kern.pci_free_irq_vectors(fn)
        self.virqs[name] = []
        self._check_now()

    # -- device and attacker actions ------------------------------------------------------------

    def traffic(self, name: str, vec: int, count: int) -> None:
        self.ops += 1
        if self.virqs[name]:
            for _ in range(count):
                self.fns[name].raise_msi(vec % len(self.virqs[name]))

    def replay(self, name: str, pick: int) -> None:
        """The device writes a message it held before (a replay after it was reprogrammed,
        or its old message still used by a device that ignores the rewrite)."""
        self.ops += 1
        old = sorted(self.history[name])
        if old:
            address, data = old[pick % len(old)]
            self.fns[name].spoof_msi(address, data)

    def stray(self, intid: int, cpu: int) -> None:
        """An unknown bus master writes any INTID into any RD (or any SPI into the
        distributor's doorbell, on the MBI board)."""
        self.ops += 1
        p = self.plat
        if self.board == "mbi":
            p.bus.write(p.gicd_base + GICD.SETSPI_NSR.offset, 32 + intid % 988, 4,
                        master=STRANGER)
        elif self.board == "gicv2m":
            frame = p.machine.v2m[cpu % len(p.machine.v2m)]
            base = p.machine.config.v2m_frames[frame.index][0]
            p.bus.write(base + V2M.MSI_SETSPI_NS.offset, 32 + intid % 988, 4, master=STRANGER)
        elif self.board == "spi-pv":
            # The host's doorbell, any handle: an unknown master's is dropped, a known
            # device reaches only what the host granted it.
            bell = next(iter(p.hv_doorbells))
            p.bus.write(bell, intid % 64, 4, master=STRANGER)
            p.bus.write(bell, intid % 64, 4, master=DEVICE_BDFS[cpu % len(DEVICE_BDFS)])
        elif self.board == "its":
            # No DeviceID: the ITS drops it.  And a known device writing any EventID: it
            # can only reach its own table.
            bell = next(iter(p.its_doorbells))
            p.bus.write(bell, intid % 64, 4, master=STRANGER)
            p.bus.write(bell, intid % 64, 4, master=DEVICE_BDFS[cpu % len(DEVICE_BDFS)])
        else:
            lpis = 1 << 16
            p.bus.write(p.gicr_base(cpu % self.ncpus) + GICR.SETLPIR.offset,
                        LPI_BASE + intid % (lpis - LPI_BASE), 4, master=STRANGER)

    # -- kernel actions ---------------------------------------------------------------------------

    def mask(self, name: str, vec: int, masked: bool) -> None:
        v = self._virq(name, vec)
        if v is None:
            return
        k = self.kern
        if masked:
            self._expect("mask", lambda: k.mask_irq(v), lambda e: False)
            return
        shut = not self._activated(v)
        self._expect("unmask", lambda: k.unmask_irq(v),
                     lambda e: shut and e.errno == errno.EINVAL and "not activated" in str(e))

    def disable(self, name: str, vec: int, disable: bool) -> None:
        v = self._virq(name, vec)
        if v is not None:
            k = self.kern
            self._expect("disable", lambda: (k.disable_irq if disable else k.enable_irq)(v),
                         lambda e: False)

    def move(self, name: str, vec: int, cpus: set[int], force: bool = False) -> None:
        v = self._virq(name, vec)
        if v is None:
            return
        k = self.kern
        cpus = {c % self.ncpus for c in cpus}
        desc = k.irq_to_desc(v)
        assert desc is not None
        shut = desc.irq_data.has(IRQD_MANAGED_SHUTDOWN) or not self._activated(v)
        if force and not shut:
            cpus &= k.online_cpus or cpus          # force only what can be delivered
            if not cpus:
                return
        before = self._routing()

        def refused(e: DirectLPIError) -> bool:
            text = str(e)
            if e.errno == errno.ENOSPC:
                return "32-bit MSI addressing" in text
            return e.errno == errno.EINVAL and ("no online CPU" in text
                                                or "MultiMSI block" in text
                                                or "LPIs are off" in text)
        if self._expect("move", lambda: k.irq_set_affinity(v, cpus, force=force), refused):
            self._remember(name)
        elif before != self._routing():
            raise Finding(f"a refused move of IRQ {v} changed a device's message or what the "
                          "kernel records as its target")

    def _routing(self) -> dict[str, list[tuple[tuple[int, int], frozenset[int]]]]:
        """Every vector's message in its device and effective affinity in the kernel."""
        k = self.kern
        return {n: [(self.fns[n].msi_message(i), frozenset(k.irq_get_effective_affinity(v)))
                    for i, v in enumerate(self.virqs[n])] for n in DEVICES}

    def set_pending(self, name: str, vec: int, pending: bool) -> None:
        v = self._virq(name, vec)
        if v is None:
            return
        k = self.kern
        self._expect("set_pending",
                     lambda: k.irq_set_irqchip_state(v, IRQCHIP_STATE_PENDING, pending),
                     lambda e: e.errno == errno.EINVAL and "not activated" in str(e))

    def retrigger(self, name: str, vec: int) -> None:
        v = self._virq(name, vec)
        if v is None:
            return
        k = self.kern
        self._expect("retrigger", lambda: k.irq_inject_interrupt(v),
                     lambda e: e.errno == errno.EINVAL and "not activated" in str(e))

    def offline(self, cpu: int) -> None:
        k = self.kern
        cpu %= self.ncpus
        if cpu not in k.online_cpus or len(k.online_cpus) == 1:
            return
        self._expect("offline", lambda: k.cpu_offline(cpu), lambda e: False)

    def online(self, cpu: int) -> None:
        k = self.kern
        cpu %= self.ncpus
        if cpu in k.online_cpus:
            return
        self._expect("online", lambda: k.cpu_online(cpu), lambda e: False)

    def kexec(self) -> None:
        """Drivers shut down (vectors freed), whatever is pending stays in the RDs, a new
        kernel boots on the reserved tables and the drivers bind again."""
        self.ops += 1
        self.kexecs += 1
        self.run()
        for name in DEVICES:
            self.unbind(name)
        self.checker.detach()
        self.kern = self.plat.kexec(reserve_tables=True)
        self.checker = InvariantChecker(self.plat)
        for name in DEVICES:
            self.bind(name)

    def run(self) -> None:
        """Let the machine run, then the end-of-run check: every invariant holds."""
        self.ops += 1
        self.plat.run_until_idle(verify=True)
        bad = self.checker.check()
        if bad:
            raise Finding(_describe(bad))

    # -- the random hunt -------------------------------------------------------------------------

    def random_op(self, rng: random.Random) -> str:
        """One operation drawn from every kind the exerciser has."""
        name = rng.choice(DEVICES)
        vec = rng.randrange(4)
        cpu = rng.randrange(self.ncpus)
        op = rng.choices(_OPS, _WEIGHTS)[0]
        if op == "traffic":
            self.traffic(name, vec, rng.randint(1, 3))
        elif op == "mask":
            self.mask(name, vec, rng.random() < 0.5)
        elif op == "disable":
            self.disable(name, vec, rng.random() < 0.5)
        elif op == "move":
            cpus = {c for c in range(self.ncpus) if rng.random() < 0.4} or {cpu}
            self.move(name, vec, cpus, force=rng.random() < 0.15)
        elif op == "set_pending":
            self.set_pending(name, vec, rng.random() < 0.6)
        elif op == "retrigger":
            self.retrigger(name, vec)
        elif op == "offline":
            self.offline(cpu)
        elif op == "online":
            self.online(cpu)
        elif op == "bind":
            self.bind(name)
        elif op == "unbind":
            self.unbind(name)
        elif op == "stray":
            self.stray(rng.randrange(1 << 16), cpu)
        elif op == "replay":
            self.replay(name, rng.randrange(64))
        elif op == "kexec":
            self.kexec()
        else:
            self.run()
        return op


_OPS_WEIGHTED = (("traffic", 20), ("run", 14), ("mask", 10), ("move", 10), ("disable", 6),
                 ("set_pending", 5), ("retrigger", 4), ("offline", 5), ("online", 5),
                 ("bind", 4), ("unbind", 3), ("stray", 5), ("replay", 5), ("kexec", 1))
_OPS = tuple(o for o, _ in _OPS_WEIGHTED)
_WEIGHTS = tuple(w for _, w in _OPS_WEIGHTED)


def _describe(violations: list[Violation]) -> str:
    return "; ".join(str(v) for v in violations[:4])
