"""The invariant checker can fail: deliberately broken drivers make it report violations.

The broken drivers live here, as subclasses of the provider installed for one test
(the production driver has no test switches).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from directlpi import EventKind, Platform
from directlpi.kernel.irq.chip import IRQ_SET_MASK_OK_DONE
from directlpi.kernel.irq.desc import IRQ_HANDLED, IrqData
from directlpi.kernel.irqchip import direct_lpi
from directlpi.kernel.irqchip.direct_lpi import DirectLpi, LpiGroup
from directlpi.kernel.msi import MsiMsg
from directlpi.kernel.pci import PCI_IRQ_MSI, PCI_IRQ_MSIX
from directlpi.sim.invariants import InvariantChecker
from directlpi.sim.run import ScenarioRun
from directlpi.sim.scenario import DEFAULT_SCENARIO, load_scenario, parse_scenario

BDF = "0000:00:01.0"
SETLPIR = 0x40


class NoInvalidationOnUnmask(DirectLpi):
    """Writes the property table but never tells the RDs (no GICR_INVLPIR)."""

    def unmask(self, d: IrqData) -> None:
        self.lpi.lpi_write_config(d.hwirq, 0, 1)


class NoMessageRewrite(DirectLpi):
    """The RFC's mistake: moves the LPI but says "done", so the device is not rewritten."""

    def set_affinity(self, d: IrqData, mask: frozenset[int], force: bool) -> int:
        super().set_affinity(d, mask, force)
        return IRQ_SET_MASK_OK_DONE


class NoScrub(DirectLpi):
    """Neither discards pending state on deactivation nor clears it before a new owner."""

    def _deactivate(self, domain: Any, d: IrqData) -> None:
        g: LpiGroup = d.chip_data
        g.active.discard(d.irq)
        d.update_effective_affinity(frozenset())
        if not g.active:
            g.cpu = -1

    def _alloc_one(self, domain: Any, virq: int, intid: int, g: LpiGroup) -> None:
        scrub, self.lpi.scrub = self.lpi.scrub, lambda hwirq: None     # type: ignore[method-assign]
        try:
            super()._alloc_one(domain, virq, intid, g)
        finally:
            self.lpi.scrub = scrub                                      # type: ignore[method-assign]


class MaskOnlyTheTarget(DirectLpi):
    """Invalidates a configuration change only on the RD the LPI targets now."""

    def mask(self, d: IrqData) -> None:
        g: LpiGroup = d.chip_data
        self.lpi.lpi_update_config([g.cpu], d.hwirq, 1, 0)


class UnmaskDiscards(DirectLpi):
    """Clears whatever is pending before it enables the LPI (as if it were junk)."""

    def unmask(self, d: IrqData) -> None:
        g: LpiGroup = d.chip_data
        for cpu in sorted(g.rds):
            self.lpi.clear_pending(cpu, d.hwirq)
        super().unmask(d)


class ComposesTheNextIntid(DirectLpi):
    """Composes each vector's message with the INTID after its own (an off-by-one)."""

    def compose_msi_msg(self, d: IrqData, msg: MsiMsg) -> None:
        super().compose_msi_msg(d, msg)
        msg.data += 1


@pytest.fixture
def broken(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``broken(Variant)``: the next kernels booted use that Direct LPI variant."""
    def install(variant: type[DirectLpi]) -> None:
        monkeypatch.setattr(direct_lpi, "DirectLpi", variant)
    yield install


def kinds(run: ScenarioRun) -> set[str]:
    return {v.invariant for v in run.checker.violations}


def booted(cpus: int = 2, **options: Any) -> tuple[Platform, Any, InvariantChecker]:
    plat = Platform.default(cpus=cpus, **options)
    kern = plat.boot()
    return plat, kern, InvariantChecker(plat)


def one_vector(plat: Platform, kern: Any, bdf: str = BDF, msi: bool = False) -> int:
    fn = plat.add_pci_device(bdf, msi_vectors=1) if msi else plat.add_pci_device(
        bdf, msix_vectors=1)
    kern.pci_alloc_irq_vectors(fn, 1, 1, PCI_IRQ_MSI if msi else PCI_IRQ_MSIX)
    virq: int = kern.pci_irq_vector(fn, 0)
    kern.request_irq(virq, lambda i, d: IRQ_HANDLED, name=bdf)
    return virq


@pytest.mark.parametrize("posted", [False, True])
def test_the_correct_driver_passes_the_default_scenario(posted: bool) -> None:
    run = ScenarioRun(load_scenario(DEFAULT_SCENARIO), posted_writes=posted)
    report = run.run()
    assert report.ok and kinds(run) == set()
    assert run.checker.totals["msis_written"] > 100
    assert run.checker.totals["handled"] > 30


def test_no_invalidation_after_unmask_loses_interrupts(broken: Any) -> None:
    """The RD keeps the masked configuration it cached: what arrives is never delivered."""
    broken(NoInvalidationOnUnmask)
    run = ScenarioRun(load_scenario(DEFAULT_SCENARIO))
    run.run()
    lost = [v for v in run.checker.violations if v.invariant == "lost-interrupt"]
    assert lost and all("written but no handler ran" in v.detail for v in lost)


def test_affinity_change_without_rewriting_the_device_is_caught(broken: Any) -> None:
    """The RFC's mistake: the device keeps writing the old RD's GICR_SETLPIR."""
    broken(NoMessageRewrite)
    run = ScenarioRun(load_scenario(DEFAULT_SCENARIO))
    run.run()
    assert "stale-message" in kinds(run)


def test_a_message_naming_another_vectors_intid_is_misdirected(broken: Any) -> None:
    """The device sends what the kernel composed, and it names an INTID the vector does
    not own: the vector never gets it (another does, or nobody)."""
    broken(ComposesTheNextIntid)
    run = ScenarioRun(load_scenario(DEFAULT_SCENARIO))
    run.run()
    bad = [v for v in run.checker.violations if v.invariant == "misdirected-message"]
    assert bad and all("the message the kernel composed for IRQ" in v.detail for v in bad)
    # One report per vector and message, however often the device sends it.
    assert len({(v.virq, v.detail) for v in bad}) == len(bad)
    assert any("nic vector 1" in v.detail for v in bad)     # vector 0's message: vector 1's LPI


def test_pending_state_left_for_the_next_owner_is_caught(broken: Any) -> None:
    """A plain-MSI function (no per-vector mask) signals while masked: the LPI is pending,
    disabled, on its RD.  A driver that neither discards that on deactivation nor clears it
    before the INTID's next owner enables it hands the interrupt to that owner."""
    broken(NoScrub)
    plat, kern, checker = booted()
    a = plat.add_pci_device(BDF, msi_vectors=1)
    kern.pci_alloc_irq_vectors(a, 1, 1, PCI_IRQ_MSI)
    virq = kern.pci_irq_vector(a, 0)
    kern.request_irq(virq, lambda i, d: IRQ_HANDLED, name="a")
    kern.mask_irq(virq)
    a.raise_msi(0)                          # lands on its RD, disabled: stays pending
    kern.free_irq(virq)
    kern.pci_free_irq_vectors(a)
    one_vector(plat, kern, "0000:00:02.0")
    plat.run_until_idle()
    assert "spurious-handler-run" in {v.invariant for v in checker.check()}


@pytest.mark.parametrize("variant", [DirectLpi, NoScrub])
def test_a_stray_write_to_a_free_intid_reaches_no_next_owner(broken: Any,
                                                             variant: type[DirectLpi]) -> None:
    """Item 3: an unknown bus master writes an INTID nobody owns into an RD; whoever gets
    the INTID next must not run for it.  The correct driver scrubs every RD at allocation;
    without the scrub the checker reports the new owner's spurious run."""
    broken(variant)
    plat, kern, checker = booted()
    plat.bus.write(plat.gicr_base(1) + SETLPIR, 8192, 4, master="0000:00:1f.7")
    fn = plat.add_pci_device(BDF, msix_vectors=1)
    kern.pci_alloc_irq_vectors(fn, 1, 1, PCI_IRQ_MSIX)
    virq = kern.pci_irq_vector(fn, 0)
    assert kern.get_cached_msi_msg(virq).data == 8192       # the INTID the stray named
    kern.irq_set_affinity(virq, {1})                         # on the RD the stray hit
    kern.request_irq(virq, lambda i, d: IRQ_HANDLED, name="next-owner")
    plat.run_until_idle()
    found = {v.invariant for v in checker.check()}
    assert found == (set() if variant is DirectLpi else {"spurious-handler-run"})


@pytest.mark.parametrize("variant", [DirectLpi, MaskOnlyTheTarget])
def test_a_late_write_of_the_old_message_stays_masked(broken: Any,
                                                      variant: type[DirectLpi]) -> None:
    """Item 2: after a move the old RD may keep the LPI's enabled configuration cached.  A
    write of the old message that lands after the move and after a mask (a posted write
    still in flight) must stay pending until the unmask.  Masking only the current RD
    delivers it while masked."""
    broken(variant)
    plat, kern, checker = booted(cpus=4, posted_writes=True)
    fn = plat.add_pci_device(BDF, msix_vectors=1)
    kern.pci_alloc_irq_vectors(fn, 1, 1, PCI_IRQ_MSIX)
    virq = kern.pci_irq_vector(fn, 0)
    runs: list[int] = []
    kern.request_irq(virq, lambda i, d: runs.append(kern.this_cpu) or IRQ_HANDLED, name="a")
    fn.raise_msi(0)                                  # RD0 caches "enabled" when it lands
    plat.run_until_idle()
    fn.raise_msi(0)                                  # in flight to RD0 ...
    plat.machine.bus.deliver_one()                   # (lands: pending there, not taken)
    kern.irq_set_affinity(virq, {2})
    kern.mask_irq(virq)
    plat.run_until_idle()
    found = {v.invariant for v in checker.check()}
    if variant is MaskOnlyTheTarget:
        assert "delivered-while-masked" in found
        return
    assert found == set() and runs == [0]
    kern.unmask_irq(virq)
    plat.run_until_idle()
    assert checker.check() == [] and runs == [0, 0]  # once, by the old RD, after the unmask


def test_a_replayed_old_message_is_a_spoof_and_names_its_victim() -> None:
    """Item 10: the audit judges a write by the writer's *current* message; a device that
    replays the message it had before a move is flagged, and the victim is named."""
    plat, kern, checker = booted(cpus=4)
    fn = plat.add_pci_device(BDF, msix_vectors=1)
    plat.add_pci_device("0000:00:02.0", msix_vectors=1)
    kern.pci_alloc_irq_vectors(fn, 1, 1, PCI_IRQ_MSIX)
    virq = kern.pci_irq_vector(fn, 0)
    kern.request_irq(virq, lambda i, d: IRQ_HANDLED, name="a")
    old = fn.msi_message(0)
    kern.irq_set_affinity(virq, {3})
    fn.spoof_msi(*old)                               # its own, but no longer current
    plat.run_until_idle()
    (spoof,) = plat.spoofed_msis
    assert spoof.master == BDF and "programmed to send now" in spoof.reason
    assert spoof.victim == f"{BDF} vector 0 (IRQ {virq})"
    assert checker.check() == [] and [r["what"] for r in checker.spoof_reached] == [
        "its handler ran"]


def test_a_device_writing_an_intid_it_does_not_own_is_named() -> None:
    """A function whose message names another's INTID (a stale MSI-X entry after its INTID
    changed hands) is reported with the victim named."""
    plat, kern, _checker = booted()
    a = plat.add_pci_device(BDF, msix_vectors=1)
    b = plat.add_pci_device("0000:00:02.0", msix_vectors=1)
    kern.pci_alloc_irq_vectors(b, 1, 1, PCI_IRQ_MSIX)
    vb = kern.pci_irq_vector(b, 0)
    kern.request_irq(vb, lambda i, d: IRQ_HANDLED, name="b")
    msg = kern.get_cached_msi_msg(vb)
    # Program a's table entry and enable MSI-X behind the kernel's back.
    assert plat.pci_host is not None
    plat.bus.write(a.bar0_base + 0, msg.address & 0xFFFFFFFF, 4)
    plat.bus.write(a.bar0_base + 8, msg.data, 4)
    plat.bus.write(a.bar0_base + 12, 0, 4)
    cfg = plat.pci_host.ecam_address(a.bdf) + 0x70 + 2
    plat.bus.write(cfg, 0x8000, 2)
    a.raise_msi(0)
    (spoof,) = plat.spoofed_msis
    assert spoof.reason == "names an INTID this device does not own"
    assert spoof.victim == f"0000:00:02.0 vector 0 (IRQ {vb})"


def test_an_intid_handed_out_twice_is_reported() -> None:
    _plat, kern, checker = booted()
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


def masked_plain_msi_pending(plat: Platform, kern: Any) -> int:
    """A requested plain-MSI vector (no per-vector mask), masked, that its device wrote:
    the LPI is pending, disabled, on its RD."""
    fn = plat.add_pci_device(BDF, msi_vectors=1)
    kern.pci_alloc_irq_vectors(fn, 1, 1, PCI_IRQ_MSI)
    virq: int = kern.pci_irq_vector(fn, 0)
    kern.request_irq(virq, lambda i, d: IRQ_HANDLED, name=BDF)
    kern.mask_irq(virq)
    fn.raise_msi(0)
    return virq


@pytest.mark.parametrize("variant", [DirectLpi, UnmaskDiscards])
def test_a_driver_clearing_what_a_started_lpi_owes_loses_it(broken: Any,
                                                            variant: type[DirectLpi]) -> None:
    """A clear cancels what was written only when somebody asked for it (PENDING set to
    false, shutdown, a scrub for a new owner): a driver that clears a started, masked
    LPI's pending state on its own has lost an interrupt its device sent."""
    broken(variant)
    plat, kern, checker = booted()
    virq = masked_plain_msi_pending(plat, kern)
    kern.unmask_irq(virq)
    plat.run_until_idle()
    found = {v.invariant for v in checker.check()}
    assert found == (set() if variant is DirectLpi else {"lost-interrupt"})


def test_a_clear_that_was_asked_for_cancels_the_write() -> None:
    """irq_set_irqchip_state(PENDING, False) on a masked LPI: its write is cancelled, not
    lost, and nothing runs at the unmask."""
    from directlpi import IRQCHIP_STATE_PENDING
    plat, kern, checker = booted()
    virq = masked_plain_msi_pending(plat, kern)
    kern.irq_set_irqchip_state(virq, IRQCHIP_STATE_PENDING, False)
    kern.unmask_irq(virq)
    plat.run_until_idle()
    assert checker.check() == [] and checker.totals["handled"] == 0


def test_a_write_from_a_previous_allocation_is_the_previous_owners() -> None:
    """Platform MSI has no read-back at free (nor has Linux's): a write still in flight
    when the device's vectors are freed lands after the *same* device got the INTID
    again.  It is its previous owner's write -- the checker reports the run it causes."""
    plat, kern, checker = booted(posted_writes=True)
    dev = plat.add_platform_device("dma", slots=1)

    def write(desc: Any, msg: Any) -> None:
        dev.program_slot(desc.msi_index, msg.address, msg.data)
    virq = kern.platform_msi_domain_alloc_irqs(dev, 1, write)
    kern.request_irq(virq, lambda i, d: IRQ_HANDLED, name="a")
    assert dev.raise_msi(0) and plat.machine.bus.posted_pending == 1
    kern.free_irq(virq)
    kern.platform_msi_domain_free_irqs(dev)
    again = kern.platform_msi_domain_alloc_irqs(dev, 1, write)
    kern.request_irq(again, lambda i, d: IRQ_HANDLED, name="b")
    plat.run_until_idle()
    found = checker.check()
    assert [v.invariant for v in found] == ["spurious-handler-run"]
    assert "previous owner" in found[0].detail


def test_a_resend_carries_the_spoof_it_resends() -> None:
    """A spoofed write acknowledged while its victim is disabled (lazily: not masked) is
    re-raised by the kernel at enable_irq: the handler run it causes is still the
    spoof's -- a security finding naming the victim -- not laundered into the victim's."""
    plat, kern, checker = booted()
    virq = one_vector(plat, kern)
    msg = kern.get_cached_msi_msg(virq)
    kern.disable_irq(virq)
    attacker = plat.add_pci_device("0000:00:07.0", msix_vectors=1)
    attacker.spoof_msi(msg.address, msg.data)
    plat.run_until_idle()
    assert checker.spoof_reached == []
    kern.enable_irq(virq)
    plat.run_until_idle()
    assert [r["what"] for r in checker.spoof_reached] == ["its handler ran"]
    assert checker.spoof_reached[0]["victim"].startswith(BDF) or BDF in str(
        checker.spoof_reached[0]["victim"])
    assert checker.check() == []


def test_a_write_in_flight_when_the_checker_attaches_is_its_owners() -> None:
    """Posted writes: an MSI issued before the checker attached has no issue record; it
    is judged by who wrote it, not as a previous allocation's."""
    plat = Platform.default(cpus=2, posted_writes=True)
    kern = plat.boot()
    fn = plat.add_pci_device(BDF, msix_vectors=1)
    kern.pci_alloc_irq_vectors(fn, 1, 1, PCI_IRQ_MSIX)
    kern.request_irq(kern.pci_irq_vector(fn, 0), lambda i, d: IRQ_HANDLED, name=BDF)
    assert fn.raise_msi(0) and plat.machine.bus.posted_pending == 1
    checker = InvariantChecker(plat)
    plat.run_until_idle()
    assert checker.check() == [] and checker.totals["handled"] == 1


@pytest.mark.parametrize("posted", [False, True])
def test_msis_the_platform_drops_are_counted_not_blamed_on_the_driver(posted: bool) -> None:
    base = load_scenario(DEFAULT_SCENARIO).model_dump()
    clean = ScenarioRun(parse_scenario(base), posted_writes=posted).run().as_dict()
    faulty = dict(base, faults={"dma_drop": 0.3, "seed": 5})
    run = ScenarioRun(parse_scenario(faulty), posted_writes=posted)
    report = run.run()
    d = report.as_dict()
    dropped = d["totals"]["dropped_by_platform"]
    assert dropped == run.plat.event_count(EventKind.DMA_DROPPED) > 10
    assert report.ok and d["violations"] == []          # nothing is owed for a lost write
    assert d["totals"]["handled"] < clean["totals"]["handled"]
    assert clean["totals"]["dropped_by_platform"] == 0
    again = ScenarioRun(parse_scenario(faulty), posted_writes=posted).run().as_dict()
    assert again["totals"] == d["totals"]               # seeded: the same run again


@pytest.mark.parametrize("bad", [{"dma_drop": 1.5}, {"dma_drop": True}, {"fault_seed": -1}])
def test_a_bad_fault_option_is_a_config_error(bad: dict[str, object]) -> None:
    from directlpi import ConfigError
    with pytest.raises(ConfigError, match=f"hardware option {next(iter(bad))}"):
        Platform.bare(cpus=1, **bad)  # type: ignore[arg-type]


def test_every_msi_dropped_means_no_handler_run_and_no_violation() -> None:
    base = load_scenario(DEFAULT_SCENARIO).model_dump()
    run = ScenarioRun(parse_scenario(dict(base, faults={"dma_drop": 1.0})))
    d = run.run().as_dict()
    assert d["violations"] == [] and d["totals"]["dropped_by_platform"] > 100
    assert d["totals"]["handled"] == run.checker.totals["handled"] < 20   # retriggers only
