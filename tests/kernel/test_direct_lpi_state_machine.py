"""Hypothesis: any interleaving of driver, device and hotplug actions keeps the invariants,
with Direct LPI (the default board) and with MBIs (the MBI-only board).

Rules mix vector allocation and free, mask and unmask, disable and enable, affinity
moves, pending-state changes, retrigger, CPU offline/online and device traffic on three
functions (MSI-X, MultiMSI with per-vector masking, 32-bit plain MSI) and a platform
device.  At every idle point the invariant checker must report nothing: every MSI
written to an allocated, enabled LPI was handled after it was written, no handler ran
without a write, nothing was delivered while masked, no INTID was handed out twice.
"""

from __future__ import annotations

import errno
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from directlpi import Platform
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.chip import IRQCHIP_STATE_PENDING
from directlpi.kernel.irq.desc import IRQ_HANDLED
from directlpi.kernel.msi import MsiDesc, MsiMsg
from directlpi.kernel.pci import PCI_IRQ_AFFINITY, PCI_IRQ_MSI, PCI_IRQ_MSIX
from directlpi.sim.invariants import InvariantChecker

CPUS = 4
DEVICES = ["x", "m", "p", "d"]
DEV = st.sampled_from(DEVICES)
VEC = st.integers(0, 3)
CPU = st.integers(0, CPUS - 1)


class DirectLpiMachine(RuleBasedStateMachine):
    @staticmethod
    def platform() -> Platform:
        return Platform.default(cpus=CPUS)

    def __init__(self) -> None:
        super().__init__()
        self.plat = self.platform()
        self.fns: dict[str, Any] = {
            "x": self.plat.add_pci_device("0000:00:01.0", msix_vectors=4),
            "m": self.plat.add_pci_device("0000:00:02.0", msi_vectors=4,
                                          msi_per_vector_mask=True),
            "p": self.plat.add_pci_device("0000:00:03.0", msi_vectors=1, msi_64bit=False),
            "d": self.plat.add_platform_device("dma", slots=2),
        }
        self.kern = self.plat.boot()
        self.checker = InvariantChecker(self.plat)
        self.virqs: dict[str, list[int]] = {name: [] for name in DEVICES}
        for name in DEVICES:
            self._bind(name)

    def _bind(self, name: str) -> None:
        k, fn = self.kern, self.fns[name]
        if name == "d":
            def write_msg(desc: MsiDesc, msg: MsiMsg) -> None:
                fn.program_slot(desc.msi_index, msg.address, msg.data)
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

    def _virq(self, name: str, vec: int) -> int | None:
        vs = self.virqs[name]
        return vs[vec % len(vs)] if vs else None

    # -- rules ---------------------------------------------------------------------------

    @rule(name=DEV)
    def unbind(self, name: str) -> None:
        if not self.virqs[name]:
            return
        for i, v in enumerate(self.virqs[name]):
            self.kern.free_irq(v, i)
        if name == "d":
            self.kern.platform_msi_domain_free_irqs(self.fns[name])
        else:
            self.kern.pci_free_irq_vectors(self.fns[name])
        self.virqs[name] = []

    @rule(name=DEV)
    def bind(self, name: str) -> None:
        if not self.virqs[name]:
            self._bind(name)

    @rule(name=DEV, vec=VEC, count=st.integers(1, 3))
    def traffic(self, name: str, vec: int, count: int) -> None:
        if self.virqs[name]:
            for _ in range(count):
                self.fns[name].raise_msi(vec % len(self.virqs[name]))

    @rule(name=DEV, vec=VEC, masked=st.booleans())
    def mask(self, name: str, vec: int, masked: bool) -> None:
        v = self._virq(name, vec)
        if v is not None:
            (self.kern.mask_irq if masked else self.kern.unmask_irq)(v)

    @rule(name=DEV, vec=VEC, disable=st.booleans())
    def disable(self, name: str, vec: int, disable: bool) -> None:
        v = self._virq(name, vec)
        if v is not None:
            (self.kern.disable_irq if disable else self.kern.enable_irq)(v)

    @rule(name=DEV, vec=VEC, cpus=st.sets(CPU, min_size=1))
    def move(self, name: str, vec: int, cpus: set[int]) -> None:
        v = self._virq(name, vec)
        if v is None:
            return
        try:
            self.kern.irq_set_affinity(v, cpus)
        except KernelError as exc:
            assert exc.errno == errno.EINVAL and not cpus & self.kern.online_cpus

    @rule(name=DEV, vec=VEC, pending=st.booleans())
    def set_pending(self, name: str, vec: int, pending: bool) -> None:
        v = self._virq(name, vec)
        if v is None:
            return
        self.kern.irq_set_irqchip_state(v, IRQCHIP_STATE_PENDING, pending)

    @rule(name=DEV, vec=VEC)
    def retrigger(self, name: str, vec: int) -> None:
        v = self._virq(name, vec)
        if v is None:
            return
        try:
            self.kern.irq_inject_interrupt(v)
        except KernelError as exc:     # a managed vector shut down with its CPUs: inactive
            assert exc.errno == errno.EINVAL and "not activated" in str(exc)

    @precondition(lambda self: len(self.kern.online_cpus) > 1)
    @rule(cpu=CPU)
    def offline(self, cpu: int) -> None:
        if cpu in self.kern.online_cpus:
            self.kern.cpu_offline(cpu)

    @rule(cpu=CPU)
    def online(self, cpu: int) -> None:
        if cpu not in self.kern.online_cpus:
            self.kern.cpu_online(cpu)

    @rule()
    def run(self) -> None:
        self.plat.run_until_idle(verify=True)
        assert self.checker.check() == []

    @invariant()
    def no_violation_so_far(self) -> None:
        assert [v for v in self.checker.violations
                if v.invariant != "lost-interrupt"] == []

    def teardown(self) -> None:
        self.plat.run_until_idle(verify=True)
        assert self.checker.check() == []


TestDirectLpiMachine = DirectLpiMachine.TestCase
TestDirectLpiMachine.settings = settings(max_examples=40, stateful_step_count=30,
                                         deadline=None)


class MbiMachine(DirectLpiMachine):
    """The same rules on the MBI-only board: every vector is an MBI SPI (GICD_SETSPI_NSR),
    tracked by the same checker."""

    @staticmethod
    def platform() -> Platform:
        from directlpi.firmware.boards import BOARDS_DIR
        return Platform.from_devicetree(BOARDS_DIR / "mbi-only.dts")


TestMbiMachine = MbiMachine.TestCase
TestMbiMachine.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)
