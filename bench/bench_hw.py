"""Hardware-model benchmarks: the raw Direct LPI path and the cost of acknowledging.

Figures (medians of repeated runs):

* ``raw_hw_cycles_per_s`` -- device DMA write of an INTID to GICR_SETLPIR, then
  ICC_IAR1_EL1, then ICC_EOIR1_EL1, on one PE (the registers named on each access, with
  ``read_sysreg``: the slower way; the GICv3 driver resolves them once).
* ``ack_cycle_ns_1_pending`` / ``ack_cycle_ns_65536_pending`` -- the same cycle
  while nothing else / 65,535 other LPIs (lower priority) are pending on that RD,
  so the acknowledge happens with 1 resp. 65,536 LPIs pending;
  ``ack_cycle_ratio_65536_vs_1`` is their ratio.
* ``ack_drain_ns_65536_pending`` -- IAR1 + EOIR1 per LPI while draining 65,536
  pending LPIs of random priorities.
* ``bare_512_build_s`` -- ``Platform.bare(cpus=512, lpi_id_bits=24)``;
  ``bare_512_allocated_bytes`` -- memory it allocated (must be 0).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from directlpi import Platform
from directlpi.benchkit import Figure, median_rate, median_seconds
from directlpi.hw.cpuif import CPUInterface
from directlpi.sim.bringup import bring_up, configure_lpi

DEVICE = "0000:00:01.0"
SETLPIR = 0x40


def _cycle(plat: Platform, cpu: int, intid: int) -> Callable[[int], None]:
    write = plat.bus.write
    addr = plat.gicr_base(cpu) + SETLPIR
    icc = plat.cpu(cpu)
    read_sysreg = icc.read_sysreg
    write_sysreg = icc.write_sysreg

    def run(n: int) -> None:
        for _ in range(n):
            write(addr, intid, 4, DEVICE)
            write_sysreg("ICC_EOIR1_EL1", read_sysreg("ICC_IAR1_EL1"))
    return run


def _raw(quick: bool) -> float:
    plat = Platform.bare(cpus=8)
    tables = bring_up(plat, [1])
    configure_lpi(plat, tables, 8192, invalidate=[1])
    run = _cycle(plat, 1, 8192)
    n = 20_000 if quick else 100_000
    return median_rate(run, n, repeats=3 if quick else 7)


def _ack_with_background(background: int, quick: bool) -> float:
    """ns per SETLPIR+IAR1+EOIR1 cycle with ``background`` other LPIs pending."""
    plat = Platform.bare(cpus=2, lpi_id_bits=17)
    tables = bring_up(plat, [1], lpi_bits=17)
    # Table bytes for the background LPIs: enabled, priority 0xe0 (below 0xa0).
    first_bg = 8200
    plat.memory.fill(tables.prop + first_bg - 8192, background, 0xE0 | 0x3)
    configure_lpi(plat, tables, 8192, priority=0x80, invalidate=[1])
    write = plat.bus.write
    rd = plat.gicr_base(1)
    for intid in range(first_bg, first_bg + background):
        write(rd + SETLPIR, intid, 4, DEVICE)
    run = _cycle(plat, 1, 8192)
    n = 10_000 if quick else 50_000
    return 1e9 / median_rate(run, n, repeats=3 if quick else 7)


def _drain(quick: bool) -> float:
    """ns per IAR1+EOIR1 while draining 65,536 pending LPIs of random priorities."""
    total = 65_536
    rng = random.Random(2021)

    def setup() -> tuple[Platform, int]:
        plat = Platform.bare(cpus=2, lpi_id_bits=17)
        tables = bring_up(plat, [1], lpi_bits=17)
        prios = bytes((rng.randrange(0, 0xF0) & 0xF8) | 0x3 for _ in range(total))
        plat.memory.write(tables.prop, prios)
        rd = plat.gicr_base(1)
        for intid in range(8192, 8192 + total):
            plat.bus.write(rd + SETLPIR, intid, 4, DEVICE)
        return plat, 1

    count = 20_000 if quick else total
    samples = []
    for _ in range(1 if quick else 3):
        plat, cpu = setup()
        icc = plat.cpu(cpu)

        def drain(n: int, icc: CPUInterface = icc) -> None:
            for _ in range(n):
                icc.write_sysreg("ICC_EOIR1_EL1", icc.read_sysreg("ICC_IAR1_EL1"))
        samples.append(1e9 / median_rate(drain, count, repeats=1))
    samples.sort()
    return samples[len(samples) // 2]


def run(quick: bool) -> list[Figure]:
    one = _ack_with_background(0, quick)
    many = _ack_with_background(65_535, quick)
    plat_holder: list[Platform] = []
    build = median_seconds(lambda: plat_holder.append(Platform.bare(cpus=512, lpi_id_bits=24)),
                           repeats=3 if quick else 5)
    return [
        Figure("raw_hw_cycles_per_s", _raw(quick), "cycles/s",
               "device DMA write to GICR_SETLPIR -> ICC_IAR1_EL1 -> ICC_EOIR1_EL1"),
        Figure("ack_cycle_ns_1_pending", one, "ns",
               "one SETLPIR+IAR1+EOIR1 cycle, 1 LPI pending at the acknowledge"),
        Figure("ack_cycle_ns_65536_pending", many, "ns",
               "the same cycle with 65,536 LPIs pending on the RD"),
        Figure("ack_cycle_ratio_65536_vs_1", many / one, "ratio",
               "cost of acknowledging with 65,536 vs 1 LPI pending (target <= 2)"),
        Figure("ack_drain_ns_65536_pending", _drain(quick), "ns",
               "IAR1+EOIR1 per LPI draining 65,536 pending LPIs of random priority"),
        Figure("bare_512_build_s", build, "s", "Platform.bare(cpus=512, lpi_id_bits=24)"),
        Figure("bare_512_allocated_bytes", float(plat_holder[-1].memory.allocated_bytes),
               "bytes", "memory allocated by that build (nothing was touched)"),
    ]
