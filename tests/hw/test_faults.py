"""Injected faults (docs/hardware-model.md, "Injected faults"): each one as the hardware shows
it, seeded, validated, and what the driver and the checker make of it.

Offsets are the architecture's literal values (Arm IHI 0069): GICR_SETLPIR 0x40,
GICR_INVLPIR 0xA0, GICR_INVALLR 0xB0, GICR_SYNCR 0xC0; GITS_CWRITER 0x88, GITS_CREADR 0x90
(Stalled is bit 0).
"""

from __future__ import annotations

import errno
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from directlpi import ConfigError, EventKind, Platform
from directlpi.firmware.boards import BOARDS_DIR
from directlpi.hw.events import Event
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.desc import IRQ_HANDLED, IRQD_IRQ_MASKED
from directlpi.kernel.kernel import Kernel
from directlpi.kernel.pci import PCI_IRQ_MSIX
from directlpi.platform import FAULT_STALE
from directlpi.sim.invariants import InvariantChecker
from directlpi.sim.run import ScenarioRun
from directlpi.sim.scenario import DEFAULT_SCENARIO, ScenarioError, load_scenario, parse_scenario

SETLPIR, INVLPIR, INVALLR, SYNCR = 0x40, 0xA0, 0xB0, 0xC0
CREADR, STALLED = 0x90, 1
BDF = "0000:00:01.0"


def _busy_reads(plat: Platform, cpu: int, limit: int = 5000) -> int:
    """How many GICR_SYNCR reads return Busy = 1 before one returns 0 (``limit``: never)."""
    base = plat.gicr_base(cpu)
    for n in range(limit):
        if not plat.bus.read(base + SYNCR, 4) & 1:
            return n
    return limit


# -- syncr_stuck -------------------------------------------------------------------------------

@pytest.mark.parametrize(("stuck", "busy"), [(0, 1), (3, 4), (2000, 2001), (-1, 5000)])
def test_syncr_stays_busy_for_n_extra_reads_or_for_ever(stuck: int, busy: int) -> None:
    plat = Platform.bare(cpus=2, syncr_stuck=stuck)
    plat.bus.write(plat.gicr_base(1) + INVALLR, 0, 8)
    assert _busy_reads(plat, 1) == busy
    assert _busy_reads(plat, 0) == 0                       # an RD with nothing in progress
    if stuck >= 0:
        plat.bus.write(plat.gicr_base(1) + INVLPIR, 8192, 8)
        assert _busy_reads(plat, 1) == busy                # every operation is hit (rate 1)


@settings(max_examples=60, deadline=None)
@given(stuck=st.integers(0, 40), ops=st.lists(st.sampled_from((0x48, INVLPIR, INVALLR)),
                                              min_size=1, max_size=6))
def test_every_operation_makes_syncr_busy_for_exactly_n_plus_one_reads(
        stuck: int, ops: list[int]) -> None:
    """Whatever the operation (CLRLPIR, INVLPIR, INVALLR) and the sequence, each one is
    followed by 1 + N busy reads, then 0; and never more than one read's worth of debt is
    carried from one operation to the next (the counter restarts at each operation)."""
    plat = Platform.bare(cpus=1, syncr_stuck=stuck)
    base = plat.gicr_base(0)
    for reg in ops:
        plat.bus.write(base + INVALLR, 0, 8)      # an operation that always marks busy
        if reg != INVALLR:
            plat.bus.write(base + reg, 8192, 8)   # ignored (LPIs off) or marked busy again
        assert _busy_reads(plat, 0) == stuck + 1


def test_syncr_stuck_rate_hits_some_operations_the_same_way_for_a_seed() -> None:
    def pattern(seed: int) -> list[int]:
        plat = Platform.bare(cpus=1, syncr_stuck=5, syncr_stuck_rate=0.5, fault_seed=seed)
        out = []
        for _ in range(40):
            plat.bus.write(plat.gicr_base(0) + INVALLR, 0, 8)
            out.append(_busy_reads(plat, 0))
        return out
    a = pattern(3)
    assert set(a) == {1, 6} and a == pattern(3) and a != pattern(4)


@pytest.mark.parametrize("bad", [{"syncr_stuck": -2}, {"syncr_stuck": True},
                                 {"syncr_stuck_rate": 1.5}, {"cache_refill": -0.1},
                                 {"stale_msi": -1}, {"its_cmd_error": 2}])
def test_a_bad_fault_option_names_itself(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=f"hardware option {next(iter(bad))}"):
        Platform.bare(cpus=1, **bad)


def _vector(plat: Platform, kern: Kernel) -> tuple[Any, int, list[int]]:
    fn = plat.add_pci_device(BDF, msix_vectors=1)
    kern.pci_alloc_irq_vectors(fn, 1, 1, PCI_IRQ_MSIX)
    virq = kern.pci_irq_vector(fn, 0)
    runs: list[int] = []
    kern.request_irq(virq, lambda i, d: runs.append(kern.this_cpu) or IRQ_HANDLED, name="v")
    return fn, virq, runs


def test_a_move_onto_a_redistributor_that_never_completes_changes_nothing() -> None:
    plat = Platform.default(cpus=4)
    kern = plat.boot()
    checker = InvariantChecker(plat)
    fn, virq, runs = _vector(plat, kern)
    before = (fn.msi_message(0), kern.irq_get_effective_affinity(virq))
    plat.machine.redistributor(2).inject_faults(syncr_stuck=-1)
    with pytest.raises(KernelError) as exc:
        kern.irq_set_affinity(virq, {2})
    assert exc.value.errno == errno.ETIMEDOUT
    assert (fn.msi_message(0), kern.irq_get_effective_affinity(virq)) == before
    assert kern.get_cached_msi_msg(virq).address == before[0][0]
    fn.raise_msi(0)
    plat.run_until_idle()
    assert runs == [0] and checker.check() == []


def test_mask_and_unmask_complete_and_report_a_redistributor_that_never_completes() -> None:
    """irq_mask/irq_unmask cannot fail: the invalidation that times out is logged, the
    others are still done, and the kernel's state matches the property table."""
    plat = Platform.default(cpus=4)
    kern = plat.boot()
    checker = InvariantChecker(plat)
    fn, virq, runs = _vector(plat, kern)
    kern.irq_set_affinity(virq, {2})
    kern.irq_set_affinity(virq, {1})             # RD2 may still cache it: it stays in rds
    plat.machine.redistributor(2).inject_faults(syncr_stuck=-1)
    kern.mask_irq(virq)
    desc = kern.irq_to_desc(virq)
    assert desc is not None and desc.irq_data.has(IRQD_IRQ_MASKED)
    assert kern.log.grep("GICR_SYNCR stuck busy on CPU2's redistributor")
    fn.raise_msi(0)
    plat.run_until_idle()
    assert runs == []                            # masked: RD1 was invalidated all the same
    kern.unmask_irq(virq)
    assert not desc.irq_data.has(IRQD_IRQ_MASKED)
    plat.run_until_idle()
    assert runs == [1] and checker.check() == []


def test_a_clear_pending_that_times_out_is_reported() -> None:
    from directlpi.kernel.irq.chip import IRQCHIP_STATE_PENDING
    plat = Platform.default(cpus=2)
    kern = plat.boot()
    fn, virq, runs = _vector(plat, kern)
    kern.disable_irq(virq)
    fn.raise_msi(0)                              # pending on RD0 (lazily disabled)
    plat.machine.redistributor(0).inject_faults(syncr_stuck=-1)
    with pytest.raises(KernelError) as exc:
        kern.irq_set_irqchip_state(virq, IRQCHIP_STATE_PENDING, False)
    assert exc.value.errno == errno.ETIMEDOUT
    kern.enable_irq(virq)
    plat.run_until_idle()
    assert runs == []                            # the clear itself took effect


def test_a_slow_syncr_within_the_poll_is_invisible_to_the_driver() -> None:
    base = load_scenario(DEFAULT_SCENARIO).model_dump()
    run = ScenarioRun(parse_scenario(dict(base, faults={"syncr_stuck": 900})))
    report = run.run()
    assert report.ok and not run.kern.log.grep("stuck busy")


# -- cache_refill ------------------------------------------------------------------------------

def _forgot_invlpir(refill: float) -> list[int]:
    """A driver that enables a masked LPI in the property table and forgets GICR_INVLPIR:
    the handler runs only if the RD happens to refill its cache."""
    plat = Platform.default(cpus=2, cache_refill=refill)
    kern = plat.boot()
    fn, virq, runs = _vector(plat, kern)
    assert kern.lpi is not None
    hwirq = kern.irq_to_desc(virq).levels()[-1].hwirq      # type: ignore[union-attr]
    byte = kern.lpi.prop_pa + hwirq - 8192
    cfg = plat.memory.read_u8(byte)
    plat.memory.write_int(byte, cfg & ~1, 1)                # disabled, and invalidated:
    plat.bus.write(plat.gicr_base(0) + INVLPIR, hwirq, 8)   # RD0 caches "disabled"
    assert _busy_reads(plat, 0) == 1
    plat.memory.write_int(byte, cfg | 1, 1)                 # enabled, no INVLPIR
    fn.raise_msi(0)
    plat.run_until_idle()
    return runs


def test_the_strict_rd_keeps_its_stale_copy_and_a_refill_reads_the_table() -> None:
    assert _forgot_invlpir(0.0) == []            # the strict default catches the bug
    assert _forgot_invlpir(1.0) == [0]           # a legal refill would hide it


def test_a_correct_driver_is_right_whatever_the_refills() -> None:
    base = load_scenario(DEFAULT_SCENARIO).model_dump()
    clean = ScenarioRun(parse_scenario(base)).run().as_dict()
    loads: list[Event] = []
    run = ScenarioRun(parse_scenario(dict(base, faults={"cache_refill": 1.0, "seed": 2})))
    run.plat.observe(lambda e: loads.append(e) if e.reason == "fault-cache-refill" else None,
                     [EventKind.CONFIG_LOAD])
    d = run.run().as_dict()
    assert d["violations"] == [] and loads
    assert d["totals"]["handled"] == clean["totals"]["handled"]


# -- stale_msi ---------------------------------------------------------------------------------

@pytest.mark.parametrize("posted", [False, True])
def test_a_device_writing_its_old_message_is_the_faults_not_the_drivers(posted: bool) -> None:
    plat = Platform.default(cpus=4, stale_msi=2, posted_writes=posted)
    kern = plat.boot()
    checker = InvariantChecker(plat)
    fn, virq, runs = _vector(plat, kern)
    old = fn.msi_message(0)
    kern.irq_set_affinity(virq, {3})
    assert fn.msi_message(0) != old
    for _ in range(4):
        fn.raise_msi(0)
        plat.run_until_idle()
    assert fn.stale_sent == 2                                # two old, then the new one
    assert checker.check() == [] and checker.totals["stale_by_fault"] == 2
    assert runs.count(3) >= 2                                # the new message reaches CPU3
    assert [m.reason.startswith(FAULT_STALE) for m in plat.spoofed_msis] == [True, True]
    assert checker.spoof_reached == []


def test_without_the_fault_a_reprogrammed_device_sends_only_its_new_message() -> None:
    plat = Platform.default(cpus=4)
    kern = plat.boot()
    checker = InvariantChecker(plat)
    fn, virq, runs = _vector(plat, kern)
    kern.irq_set_affinity(virq, {3})
    fn.raise_msi(0)
    plat.run_until_idle()
    assert runs == [3] and fn.stale_sent == 0 and plat.spoofed_msis == []
    assert checker.check() == [] and checker.totals["stale_by_fault"] == 0


def test_the_checker_still_flags_a_stale_message_the_fault_did_not_make() -> None:
    """Attribution is by the device's own flag: the same old message written as a plain
    replay (no fault) is a spoof, flagged by the audit."""
    plat = Platform.default(cpus=4)
    kern = plat.boot()
    checker = InvariantChecker(plat)
    fn, virq, _runs = _vector(plat, kern)
    old = fn.msi_message(0)
    kern.irq_set_affinity(virq, {3})
    fn.spoof_msi(*old)
    plat.run_until_idle()
    assert len(plat.spoofed_msis) == 1 and not plat.spoofed_msis[0].reason.startswith(
        FAULT_STALE)
    assert checker.totals["stale_by_fault"] == 0


# -- its_cmd_error -----------------------------------------------------------------------------

def test_an_injected_its_command_error_stalls_the_queue_with_an_architected_number() -> None:
    plat = Platform.from_devicetree(BOARDS_DIR / "its.dts", its_cmd_error=1.0)
    errors: list[Event] = []
    plat.observe(errors.append, [EventKind.ITS_COMMAND_ERROR])
    kern = plat.boot()
    its = plat.machine.its[0]
    assert errors and {e.reason for e in errors} == {"fault-its-command-error"}
    assert errors[0].value == 0x010903                   # MAPC: ICID out of range
    assert plat.bus.read(its.base + CREADR, 8) & STALLED
    assert kern.log.grep("failed (GITS_CREADR.Stalled): retrying it")
    assert kern.log.grep("stalled on a command error")  # 8 retries, then given up


def test_the_its_driver_retries_a_transient_command_error() -> None:
    plat = Platform.from_devicetree(BOARDS_DIR / "its.dts", its_cmd_error=0.3, fault_seed=1)
    kern = plat.boot()
    checker = InvariantChecker(plat)
    fn, virq, runs = _vector(plat, kern)
    kern.irq_set_affinity(virq, {1})
    fn.raise_msi(0)
    plat.run_until_idle()
    assert plat.event_count(EventKind.ITS_COMMAND_ERROR) > 0
    assert kern.log.grep("retrying it") and not kern.log.grep("stalled on a command error")
    assert runs == [1] and checker.check() == []


# -- scenario files --------------------------------------------------------------------------------

def test_every_fault_is_a_scenario_key_that_reaches_the_hardware() -> None:
    base = load_scenario(DEFAULT_SCENARIO).model_dump()
    faults = {"dma_drop": 0.1, "syncr_stuck": 7, "syncr_stuck_rate": 0.5,
              "cache_refill": 0.2, "stale_msi": 3, "its_cmd_error": 0.1, "seed": 9}
    run = ScenarioRun(parse_scenario(dict(base, faults=faults)))
    config = run.plat.machine.config
    assert (config.dma_drop, config.syncr_stuck, config.syncr_stuck_rate, config.cache_refill,
            config.stale_msi, config.its_cmd_error, config.fault_seed) == (
        0.1, 7, 0.5, 0.2, 3, 0.1, 9)
    assert run.run().ok


def test_a_misspelt_fault_key_is_named_with_a_suggestion() -> None:
    base = load_scenario(DEFAULT_SCENARIO).model_dump()
    with pytest.raises(ScenarioError, match=r"faults: unknown key 'syncr_stuk'; did you mean "
                                            r"'syncr_stuck'\?"):
        parse_scenario(dict(base, faults={"syncr_stuk": 3}))


def test_lpis_that_cannot_be_cleared_are_the_default_and_a_platform_option() -> None:
    for clearable, ces in ((False, 0), (True, 1)):
        plat = Platform.bare(cpus=1, lpis_clearable=clearable)
        assert plat.bus.read(plat.gicr_base(0), 4) >> 1 & 1 == ces   # GICR_CTLR.CES


def test_free_completes_when_a_redistributor_never_completes() -> None:
    """Deactivation cannot fail: the discard that times out is logged, the vector freed."""
    plat = Platform.default(cpus=2)
    kern = plat.boot()
    fn, virq, _runs = _vector(plat, kern)
    kern.disable_irq(virq)
    fn.raise_msi(0)                              # pending on RD0: the discard must CLRLPIR
    plat.machine.redistributor(0).inject_faults(syncr_stuck=-1)
    kern.free_irq(virq, None)
    kern.pci_free_irq_vectors(fn)
    assert kern.log.grep("may not be discarded") and kern.msi_irqs_of(BDF) == []


def test_a_dying_cpu_still_drains_its_rd_when_one_invalidation_times_out() -> None:
    """CES = 0: the dying CPU shows each masked LPI that moved away (INVLPIR on its own
    RD), then drains its interface.  A show that times out is logged; the drain still
    carries everything else pending there (it used to be skipped: the LPIs were lost)."""
    plat = Platform.default(cpus=4)
    kern = plat.boot()
    checker = InvariantChecker(plat)
    fa = plat.add_pci_device(BDF, msix_vectors=1)
    fb = plat.add_pci_device("0000:00:02.0", msix_vectors=1)
    runs: list[tuple[str, int]] = []
    virqs = []
    for name, fn in (("a", fa), ("b", fb)):
        kern.pci_alloc_irq_vectors(fn, 1, 1, PCI_IRQ_MSIX)
        v = kern.pci_irq_vector(fn, 0)
        kern.request_irq(v, lambda i, d, name=name: runs.append((name, kern.this_cpu))
                         or IRQ_HANDLED, name=name)
        kern.irq_set_affinity(v, {2})
        virqs.append(v)
    va = virqs[0]
    kern.mask_irq(va)
    fa.raise_msi(0)                              # masked: the device holds it (MSI-X PBA)
    kern.irq_set_affinity(va, {1})               # RD2 stays in A's rds
    hwirq = kern.irq_to_desc(va).levels()[-1].hwirq       # type: ignore[union-attr]
    plat.bus.write(plat.gicr_base(2) + SETLPIR, hwirq, 4, master=BDF)  # late, on RD2
    fb.raise_msi(0)                              # B pending on RD2, not taken yet
    plat.machine.redistributor(2).inject_faults(syncr_stuck=-1)
    kern.cpu_offline(2)
    assert kern.log.grep("GICR_SYNCR stuck busy on CPU2's redistributor")
    plat.run_until_idle()
    assert [r for r in runs if r[0] == "b"] and all(c != 2 for _, c in runs)
    kern.unmask_irq(va)
    plat.run_until_idle()
    assert checker.check() == []
