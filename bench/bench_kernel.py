"""Kernel-layer benchmarks: the LPI allocator and the wired SPI path.

* ``lpi_alloc_free_pairs_per_s`` / ``lpi_alloc_free_pairs_per_s_at_60000`` -- one
  LPI allocated and freed, with 0 resp. 60,000 LPIs already allocated (17-bit
  table, 122,880 LPIs); ``lpi_alloc_free_ratio_60000_vs_0`` is their ratio.
* ``multimsi32_alloc_free_pairs_per_s_at_60000`` -- the same for aligned blocks of 32.
* ``spi_e2e_per_s`` -- a wired edge SPI raised, taken (ICC_IAR1_EL1), the handler
  run, EOId, through the kernel's GICv3 driver and genirq flow.
"""

from __future__ import annotations

from directlpi import Platform
from directlpi.benchkit import Figure, median_rate
from directlpi.kernel.irq.desc import IRQ_HANDLED
from directlpi.kernel.irqchip.lpi_range import LpiRangeAllocator


def _alloc_pairs(preallocated: int, nr: int, quick: bool) -> float:
    alloc = LpiRangeAllocator(8192, (1 << 17) - 8192)
    for _ in range(preallocated):
        alloc.alloc(1)

    def run(n: int) -> None:
        a, f = alloc.alloc, alloc.free
        for _ in range(n):
            f(a(nr), nr)
    return median_rate(run, 20_000 if quick else 100_000, repeats=3 if quick else 7)


def _spi_e2e(quick: bool) -> float:
    plat = Platform.bare(cpus=8)
    kern = plat.boot()
    dev = plat.add_wired_device("bench", 40, level=False)
    virq = kern.gic_spi_mapping(40, dev.trigger)
    kern.request_irq(virq, lambda irq, dev_id: IRQ_HANDLED, name="bench")
    raise_irq = dev.raise_irq
    run_until_idle = plat.run_until_idle

    def run(n: int) -> None:
        for _ in range(n):
            raise_irq()
            run_until_idle()
    return median_rate(run, 10_000 if quick else 50_000, repeats=3 if quick else 7)


def run(quick: bool) -> list[Figure]:
    at0 = _alloc_pairs(0, 1, quick)
    at60k = _alloc_pairs(60_000, 1, quick)
    return [
        Figure("lpi_alloc_free_pairs_per_s", at0, "pairs/s",
               "alloc+free of 1 LPI, nothing else allocated"),
        Figure("lpi_alloc_free_pairs_per_s_at_60000", at60k, "pairs/s",
               "alloc+free of 1 LPI with 60,000 LPIs allocated"),
        Figure("lpi_alloc_free_ratio_60000_vs_0", at0 / at60k, "ratio",
               "slowdown of alloc+free with 60,000 allocated (1.0 = none)"),
        Figure("multimsi32_alloc_free_pairs_per_s_at_60000", _alloc_pairs(60_000, 32, quick),
               "pairs/s", "alloc+free of an aligned 32-LPI block with 60,000 allocated"),
        Figure("spi_e2e_per_s", _spi_e2e(quick), "irqs/s",
               "wired SPI raised -> IAR1 -> handler -> EOIR1 through the kernel"),
    ]
