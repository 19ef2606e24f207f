"""What an affinity move, a mask, a CPU's drain and an INTID's scrub cost, in MMIO accesses
and time -- the chosen Direct LPI design next to the alternatives it rejected.

Counts are exact (MMIO reads + writes the kernel makes, from the bus's events); times
are medians of interleaved rounds in this process, reported as ratios to the chosen
design so that they hold on any machine.

The alternatives are driver variants defined here, outside the driver:

* ``v1-probe`` -- the first wave's move: after the device is rewritten, make the LPI
  priority 0 and enabled on the *old* RD, read the *old* CPU's ICC_HPPIR1_EL1, restore
  the byte, and carry what was pending (GICR_CLRLPIR old, GICR_SETLPIR new).  Not
  writable in Linux (another CPU's system register, a synchronous cross call under
  desc->lock, a priority-0 LPI taken as a pseudo-NMI, a transient byte any RD may
  cache): the bench performs the old CPU's register read by fiat, to count the rest.
* ``blind-carry`` -- always GICR_CLRLPIR on the old RD and GICR_SETLPIR on the new one:
  cheaper than probing, but it makes an interrupt out of nothing whenever nothing was
  pending (a spurious handler run per move).

Keys: ``move_mmio_accesses`` (a move between two RDs the LPI already knows),
``move_mmio_accesses_new_rd`` (to an RD it never targeted: one GICR_INVLPIR more),
``move_mmio_accesses_v1_probe`` (``_pending``: when there was something to carry),
``move_mmio_accesses_blind_carry``,
``move_time_ratio_v1_probe``, ``move_time_ratio_blind_carry``,
``mask_unmask_mmio_accesses`` (with 1 and 3 RDs holding the LPI),
``offline_mmio_accesses_ces`` / ``_no_ces`` and ``offline_drain_icc_accesses_no_ces`` (a
dying CPU with 4 LPIs pending on its RD; ``_masked``: the same LPIs masked),
``scrub_mmio_accesses_per_intid_8_cpus`` / ``_512_cpus`` (what allocating one INTID
costs to clear every RD).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from directlpi import EventKind, Platform
from directlpi.benchkit import Figure
from directlpi.hw.regs import GICR, LPI_CFG_ENABLE
from directlpi.kernel.irq.desc import IRQ_HANDLED, IrqData
from directlpi.kernel.irqchip import direct_lpi
from directlpi.kernel.irqchip.direct_lpi import DirectLpi, LpiGroup
from directlpi.kernel.kernel import Kernel
from directlpi.kernel.msi import msi_domain_set_affinity
from directlpi.kernel.pci import PCI_IRQ_MSI, PCI_IRQ_MSIX


class V1Probe(DirectLpi):
    """The first wave's move (see the module docstring)."""

    def set_affinity(self, d: IrqData, mask: frozenset[int], force: bool) -> int:
        g: LpiGroup = d.chip_data
        self._old = g.cpu
        return super().set_affinity(d, mask, force)

    def complete_move(self, d: IrqData) -> None:
        g: LpiGroup = d.chip_data
        old, self._old = self._old, -1
        if old < 0 or old == g.cpu:
            return
        lpi = self.lpi
        saved = lpi.lpi_config(d.hwirq)
        lpi.lpi_update_config([old], d.hwirq, 0xFC, LPI_CFG_ENABLE)     # priority 0
        gic = self.k._pes                                               # by fiat
        prev = gic.execute_on(old)
        try:
            pending = gic.sysreg_port(old).read_sysreg("ICC_HPPIR1_EL1") == d.hwirq
        finally:
            gic.execute_on(prev)
        lpi.lpi_update_config([old], d.hwirq, 0xFF, saved)
        if pending:
            lpi.clear_pending(old, d.hwirq)
            lpi.set_pending(g.cpu, d.hwirq)


class BlindCarry(V1Probe):
    """Always move the pending state, whether there is one or not."""

    def complete_move(self, d: IrqData) -> None:
        g: LpiGroup = d.chip_data
        old, self._old = self._old, -1
        if old >= 0 and old != g.cpu:
            self.k.writeq(d.hwirq, self.gic.rdists[old].rd_base + GICR.CLRLPIR.offset)
            self.lpi._wait_for_syncr(self.gic.rdists[old].rd_base)
            self.lpi.set_pending(g.cpu, d.hwirq)


def _move_then_complete(provider: Any) -> Callable[[IrqData, frozenset[int], bool], int]:
    """The MSI-level set_affinity of a variant: the move, the device rewrite, then the
    variant's carry (what the first wave hooked after the rewrite)."""
    def set_affinity(d: IrqData, mask: frozenset[int], force: bool) -> int:
        ret = msi_domain_set_affinity(d, mask, force)
        assert d.parent_data is not None
        provider.complete_move(d.parent_data)
        return ret
    return set_affinity


@contextmanager
def _variant(cls: type[DirectLpi] | None) -> Iterator[None]:
    if cls is None:
        yield
        return
    saved = direct_lpi.DirectLpi
    direct_lpi.DirectLpi = cls  # type: ignore[misc]
    try:
        yield
    finally:
        direct_lpi.DirectLpi = saved  # type: ignore[misc]


def _setup(cls: type[DirectLpi] | None, cpus: int = 8, **hw: Any
           ) -> tuple[Platform, Kernel, Any, int]:
    with _variant(cls):
        plat = Platform.default(cpus=cpus, **hw)
        dev = plat.add_pci_device("0000:00:01.0", msix_vectors=4)
        kern = plat.boot()
    if cls is not None:
        assert kern.direct_lpi is not None
        kern.direct_lpi._old = -1  # type: ignore[attr-defined]
        pci_level = kern.direct_lpi.pci.info.chip
        pci_level.irq_set_affinity = _move_then_complete(kern.direct_lpi)
    kern.pci_alloc_irq_vectors(dev, 4, 4, PCI_IRQ_MSIX)
    for i in range(4):
        kern.request_irq(kern.pci_irq_vector(dev, i), lambda irq, d: IRQ_HANDLED, name=f"q{i}")
    return plat, kern, dev, kern.pci_irq_vector(dev, 3)


class _Counter:
    def __init__(self, plat: Platform) -> None:
        self.n = 0
        plat.observe(self._on, [EventKind.MMIO_READ, EventKind.MMIO_WRITE])

    def _on(self, ev: object) -> None:
        self.n += 1

    def __call__(self, fn: Callable[[], object]) -> int:
        before = self.n
        fn()
        return self.n - before


def _move_counts(cls: type[DirectLpi] | None) -> tuple[int, int, int]:
    """(a move between known RDs, a move to a new RD, a known move with the LPI pending
    on the old RD -- held there: its CPU masks everything)."""
    plat, kern, dev, virq = _setup(cls)
    count = _Counter(plat)
    new_rd = count(lambda: kern.irq_set_affinity(virq, {2}))
    kern.irq_set_affinity(virq, {5})
    known = count(lambda: kern.irq_set_affinity(virq, {2}))
    kern.irq_set_affinity(virq, {5})
    plat.cpu(5).write_sysreg("ICC_PMR_EL1", 0)
    dev.raise_msi(3)
    pending = count(lambda: kern.irq_set_affinity(virq, {2}))
    return known, new_rd, pending


def _move_time(cls: type[DirectLpi] | None, n: int) -> Callable[[], float]:
    _, kern, _, virq = _setup(cls)
    move = kern.irq_set_affinity
    a, b = frozenset({2}), frozenset({5})

    def once() -> float:
        t0 = time.perf_counter()
        for _ in range(n // 2):
            move(virq, a)
            move(virq, b)
        return (time.perf_counter() - t0) / n
    return once


def _interleaved_ratios(quick: bool) -> dict[str, float]:
    n = 400 if quick else 2000
    runs = {name: _move_time(cls, n) for name, cls in
            (("chosen", None), ("v1", V1Probe), ("blind", BlindCarry))}
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(3 if quick else 9):
        for name, once in runs.items():
            samples[name].append(once())
    med = {name: statistics.median(v) for name, v in samples.items()}
    return {"v1": med["v1"] / med["chosen"], "blind": med["blind"] / med["chosen"],
            "chosen_per_s": 1 / med["chosen"]}


def _mask_counts() -> tuple[int, int]:
    plat, kern, _, virq = _setup(None)
    count = _Counter(plat)
    one = count(lambda: (kern.mask_irq(virq), kern.unmask_irq(virq)))
    kern.irq_set_affinity(virq, {2})
    kern.irq_set_affinity(virq, {5})
    three = count(lambda: (kern.mask_irq(virq), kern.unmask_irq(virq)))
    return one, three


def _drain_counts(masked: bool = False) -> tuple[int, int, int]:
    """MMIO accesses of a whole offline (EnableLPIs clearable, then not), and the dying
    CPU's ICC accesses when it drains by acknowledging; ``masked``: the 4 LPIs are masked
    when they become pending (without CES each is shown for an instant, then masked
    again on every RD that may cache it)."""
    out = []
    for clearable in (True, False):
        plat = Platform.default(cpus=8, lpis_clearable=clearable)
        fn = plat.add_pci_device("0000:00:01.0", msi_vectors=4)
        kern = plat.boot()
        kern.pci_alloc_irq_vectors(fn, 4, 4, PCI_IRQ_MSI)
        virqs = [kern.pci_irq_vector(fn, i) for i in range(4)]
        for i, v in enumerate(virqs):
            kern.request_irq(v, lambda irq, d: IRQ_HANDLED, name=f"v{i}", dev_id=i)
        kern.irq_set_affinity(virqs[0], {4, 5})
        for i in range(4):
            if masked:
                kern.mask_irq(virqs[i])
            fn.raise_msi(i)
        counter = _Counter(plat)
        icc = [0]                       # the dying CPU's acknowledges and EOIs
        def on_icc(ev: Any, icc: list[int] = icc) -> None:
            icc[0] += ev.cpu == 4
        plat.observe(on_icc, [EventKind.ACK, EventKind.EOI])
        base = counter.n
        kern.cpu_offline(4)
        out.append(counter.n - base)
        # ... plus the last ICC_IAR1_EL1 read, which returns 1023 (nothing left).
        icc_accesses = icc[0] + 1
    return out[0], out[1], icc_accesses


def _scrub_counts(cpus: int) -> float:
    plat = Platform.default(cpus=cpus)
    kern = plat.boot()
    assert kern.lpi is not None
    lpi = kern.lpi
    count = _Counter(plat)
    from directlpi.kernel.context import Kind
    with kern.running_on(0, Kind.PROCESS):
        return float(count(lambda: lpi.scrub(8300)))


def run(quick: bool) -> list[Figure]:
    known, new_rd, _ = _move_counts(None)
    v1_known, _, v1_pending = _move_counts(V1Probe)
    blind_known, _, _ = _move_counts(BlindCarry)
    ratios = _interleaved_ratios(quick)
    mask1, mask3 = _mask_counts()
    ces, no_ces, icc = _drain_counts()
    ces_masked, no_ces_masked, icc_masked = _drain_counts(masked=True)
    return [
        Figure("move_mmio_accesses", known, "accesses",
               "one affinity move between RDs the LPI knows: MSI-X entry rewritten + read back"),
        Figure("move_mmio_accesses_new_rd", new_rd, "accesses",
               "a move to an RD the LPI never targeted (its GICR_INVLPIR + GICR_SYNCR too)"),
        Figure("move_mmio_accesses_v1_probe", v1_known, "accesses",
               "the rejected v1 move: priority-0 probe of the old RD (+ the old CPU's HPPIR)"),
        Figure("move_mmio_accesses_v1_probe_pending", v1_pending, "accesses",
               "the same when the LPI was pending on the old RD (CLRLPIR + SYNCR + SETLPIR)"),
        Figure("move_mmio_accesses_blind_carry", blind_known, "accesses",
               "the rejected blind carry: CLRLPIR old + SYNCR + SETLPIR new on every move"),
        Figure("move_time_ratio_v1_probe", ratios["v1"], "ratio",
               "time of a v1-probe move / a chosen-design move (interleaved medians)"),
        Figure("move_time_ratio_blind_carry", ratios["blind"], "ratio",
               "time of a blind-carry move / a chosen-design move"),
        Figure("mask_unmask_mmio_accesses", mask1, "accesses",
               "mask_irq + unmask_irq of an MSI-X LPI that one RD may hold"),
        Figure("mask_unmask_mmio_accesses_3_rds", mask3, "accesses",
               "the same after two moves: every RD it named is invalidated"),
        Figure("offline_mmio_accesses_ces", ces, "accesses",
               "offlining a CPU holding a 4-vector MultiMSI block with 4 LPIs pending, "
               "EnableLPIs clearable: move, write-back drain, carry"),
        Figure("offline_mmio_accesses_no_ces", no_ces, "accesses",
               "the same where EnableLPIs cannot be cleared (the drain is by ICC, below)"),
        Figure("offline_drain_icc_accesses_no_ces", icc, "accesses",
               "the dying CPU's own ICC_IAR1_EL1 / ICC_EOIR1_EL1 accesses in that drain"),
        Figure("offline_mmio_accesses_ces_masked", ces_masked, "accesses",
               "the same 4 LPIs masked when they became pending, EnableLPIs clearable"),
        Figure("offline_mmio_accesses_no_ces_masked", no_ces_masked, "accesses",
               "masked, EnableLPIs not clearable: each shown on the dying RD, masked again"),
        Figure("offline_drain_icc_accesses_no_ces_masked", icc_masked, "accesses",
               "the dying CPU's ICC accesses in that drain"),
        Figure("scrub_mmio_accesses_per_intid_8_cpus", _scrub_counts(8), "accesses",
               "clearing one INTID on every RD before a new owner gets it, 8 CPUs"),
        Figure("scrub_mmio_accesses_per_intid_512_cpus", _scrub_counts(512), "accesses",
               "the same on 512 CPUs"),
    ]
