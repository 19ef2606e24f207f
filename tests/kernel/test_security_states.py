"""The kernel on a GIC with two Security states (GICD_CTLR.DS = 0): it runs Non-secure
after the EL3 firmware step, detects the configuration as Linux's ``gic_prio_init`` does,
programs priorities it can own, and the whole stack -- Direct LPI, MBI, ITS -- keeps every
invariant under random operations."""

from __future__ import annotations

import random

import pytest

from directlpi import Platform
from directlpi.kernel.pci import PCI_IRQ_MSIX
from directlpi.sim.stress import StackExerciser
from tests.hw import arch
from tests.kernel.drivers import Driver

SPI = 40


def _secure_byte(plat: Platform, addr: int) -> int:
    with plat.machine.gic.secure_world(0):
        return plat.bus.read(addr, 1)


@pytest.mark.parametrize(("states", "fiq", "line", "written"), [
    (1, True, "GICv3: GICD_CTLR.DS=1, SCR_EL3.FIQ=0", 0xA0),
    (2, True, "GICv3: GICD_CTLR.DS=0, SCR_EL3.FIQ=1", 0xA0),
    (2, False, "GICv3: GICD_CTLR.DS=0, SCR_EL3.FIQ=0", 0x40),
])
def test_the_kernel_detects_the_security_configuration(states: int, fiq: bool, line: str,
                                                       written: int) -> None:
    plat = Platform.default(cpus=2, security_states=states, scr_el3_fiq=fiq)
    k = plat.boot()
    assert line in [ln.text for ln in k.log.lines]
    assert k.gic.dist_prio_irq == written
    assert k.lpi is not None and k.lpi.prop_prio == written
    prio = plat.gicd_base + arch.GICD_IPRIORITYR + SPI
    # Whatever it wrote, every interrupt sits at the same effective priority the CPU
    # interface compares with its PMR: 0xA0, or 0xD0 where the PMR is shifted as well.
    effective = _secure_byte(plat, prio) if states == 2 else plat.bus.read(prio, 1)
    assert effective == {(1, True): 0xA0, (2, True): 0xD0, (2, False): 0xA0}[(states, fiq)]


@pytest.mark.parametrize("fiq", [True, False])
def test_an_msi_is_delivered_to_a_non_secure_kernel(fiq: bool) -> None:
    plat = Platform.default(cpus=2, security_states=2, scr_el3_fiq=fiq)
    k = plat.boot()
    drv = Driver(plat, k, "0000:00:01.0", PCI_IRQ_MSIX, 2, msix_vectors=2)
    drv.fn.raise_msi(1)
    plat.run_until_idle(verify=True)
    assert [i for i, _cpu in drv.runs] == [1]
    with plat.machine.gic.secure_world(0):
        assert plat.cpu(0).read_sysreg("ICC_PMR_EL1") == (0xF8 if fiq else 0xF0)


def test_without_the_el3_step_no_interrupt_reaches_the_kernel() -> None:
    """The firmware step is what makes it work: skipped, the RDs stay asleep (GICR_WAKER
    is Secure only) and PMR stays 0 (a Non-secure write below 0x80 is ignored)."""
    plat = Platform.default(cpus=2, security_states=2)
    plat.el3_done = True                     # pretend firmware ran; it did not
    k = plat.boot()
    drv = Driver(plat, k, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    drv.fn.raise_msi(0)
    plat.run_until_idle()
    assert drv.runs == []
    assert plat.machine.gic.redists[0].asleep


@pytest.mark.parametrize("board", ["direct-lpi", "mbi", "its"])
@pytest.mark.parametrize("fiq", [True, False])
def test_random_operations_keep_every_invariant_with_two_security_states(board: str,
                                                                          fiq: bool) -> None:
    x = StackExerciser(board, cpus=4, seed=7,
                       options={"security_states": 2, "scr_el3_fiq": fiq})
    assert x.plat.machine.gic.two_states and not x.kern.gic.security_disabled
    rng = random.Random(f"{board}-{fiq}")
    for i in range(600):
        x.apply(x.draw_op(rng))
        if i % 50 == 49:
            x.run()
            x.audit()
    x.run()
    x.audit()
    assert x.checker.totals["handled"] > 0
