"""The invariant checker can fail: deliberately broken drivers make it report violations."""

from __future__ import annotations

import pytest

from directlpi import Platform
from directlpi.kernel.irq.desc import IRQ_HANDLED
from directlpi.kernel.pci import PCI_IRQ_MSI, PCI_IRQ_MSIX
from directlpi.sim.invariants import InvariantChecker
from directlpi.sim.run import ScenarioRun
from directlpi.sim.scenario import DEFAULT_SCENARIO, load_scenario

BDF = "0000:00:01.0"


def kinds(run: ScenarioRun) -> set[str]:
    return {v.invariant for v in run.checker.violations}


def test_the_correct_driver_passes_the_default_scenario() -> None:
    run = ScenarioRun(load_scenario(DEFAULT_SCENARIO))
    report = run.run()
    assert report.ok and kinds(run) == set()
    assert run.checker.totals["msis_written"] > 100
    assert run.checker.totals["handled"] > 30


def test_no_invalidation_after_unmask_loses_interrupts() -> None:
    """The RD keeps the masked configuration it cached: what arrives is never delivered."""
    run = ScenarioRun(load_scenario(DEFAULT_SCENARIO), quirks=frozenset({"no-inv-on-unmask"}))
    run.run()
    lost = [v for v in run.checker.violations if v.invariant == "lost-interrupt"]
    assert lost and all("written but no handler ran" in v.detail for v in lost)


def test_affinity_change_without_rewriting_the_device_is_caught() -> None:
    """The RFC's mistake: the device keeps writing the old RD's GICR_SETLPIR."""
    run = ScenarioRun(load_scenario(DEFAULT_SCENARIO), quirks=frozenset({"no-message-rewrite"}))
    run.run()
    assert "stale-message" in kinds(run)


def test_not_discarding_on_free_hands_a_pending_lpi_to_the_next_owner() -> None:
    """A plain-MSI function (no per-vector mask) signals while masked: the LPI is pending,
    disabled, on its RD.  A driver that leaves that pending state behind when it frees the
    vectors hands the interrupt to the INTID's next owner."""
    plat = Platform.default(cpus=2)
    kern = plat.boot(dlpi_quirks={"no-discard-on-free"})
    checker = InvariantChecker(plat)
    a = plat.add_pci_device(BDF, msi_vectors=1)
    kern.pci_alloc_irq_vectors(a, 1, 1, PCI_IRQ_MSI)
    virq = kern.pci_irq_vector(a, 0)
    kern.request_irq(virq, lambda i, d: IRQ_HANDLED, name="a")
    kern.mask_irq(virq)
    a.raise_msi(0)                          # lands on its RD, disabled: stays pending
    kern.free_irq(virq)
    kern.pci_free_irq_vectors(a)
    b = plat.add_pci_device("0000:00:02.0", msix_vectors=1)
    kern.pci_alloc_irq_vectors(b, 1, 1, PCI_IRQ_MSIX)
    vb = kern.pci_irq_vector(b, 0)
    kern.request_irq(vb, lambda i, d: IRQ_HANDLED, name="b")
    plat.run_until_idle()
    assert "spurious-handler-run" in {v.invariant for v in checker.check()}


def test_stale_cache_on_an_old_rd_delivers_while_masked() -> None:
    """The isolation hole made concrete: after a move, a device (or an attacker) writing the
    old RD reaches a configuration that RD cached while the LPI was enabled."""
    plat = Platform.default(cpus=4)
    kern = plat.boot()
    checker = InvariantChecker(plat)
    fn = plat.add_pci_device(BDF, msix_vectors=1)
    kern.pci_alloc_irq_vectors(fn, 1, 1, PCI_IRQ_MSIX)
    virq = kern.pci_irq_vector(fn, 0)
    kern.request_irq(virq, lambda i, d: IRQ_HANDLED, name="a")      # RD0 caches "enabled"
    intid = kern.get_cached_msi_msg(virq).data
    kern.irq_set_affinity(virq, {2})
    kern.mask_irq(virq)                                             # invalidates RD2 only
    fn.spoof_msi(plat.gicr_base(0) + 0x40, intid)     # its old message: stale, not spoofed
    plat.run_until_idle()
    assert {v.invariant for v in checker.check()} == {"delivered-while-masked",
                                                       "stale-message"}
    assert plat.spoofed_msis == []


def test_an_intid_handed_out_twice_is_reported() -> None:
    plat = Platform.default(cpus=2)
    kern = plat.boot()
    checker = InvariantChecker(plat)
    assert kern.lpi is not None and kern.lpi.allocator is not None
    base = kern.lpi.alloc_lpis(4)
    for observer in kern.lpi.allocator.observers:       # a broken allocator would say so
        observer("alloc", base + 2, 1)
    assert [v.invariant for v in checker.check()] == ["intid-allocated-twice"]


@pytest.mark.parametrize("cpus", [2, 5, 130])
def test_the_default_scenario_holds_on_other_cpu_counts(cpus: int) -> None:
    assert ScenarioRun(load_scenario(DEFAULT_SCENARIO), cpus=cpus).run().ok


def test_handler_hooks_cost_nothing_once_detached() -> None:
    plat = Platform.default(cpus=1)
    kern = plat.boot()
    checker = InvariantChecker(plat)
    checker.detach()
    assert kern.irq.handler_hooks == []
