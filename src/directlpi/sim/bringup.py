"""Minimal register-level bring-up of the GIC, for hardware-level work without a kernel.

Benchmarks and hardware tests need LPIs working on some PEs without going
through the (narrated) walkthrough or the kernel.  This does the architectural
sequence with bus accesses and system registers only: GICD_CTLR, the GICR_WAKER
handshake, tables in RAM, PROPBASER/PENDBASER, EnableLPIs, and the CPU
interface (PMR, IGRPEN1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from directlpi.hw.regs import (
    GICD,
    GICR,
    LPI_BASE,
    LPI_CFG_ENABLE,
    LPI_CFG_RES1,
    SHARE_INNER,
    CACHE_RaWaWb,
)
from directlpi.platform import Platform

PROP_TABLE = 0x4100_0000
PEND_TABLES = 0x4200_0000
PEND_STRIDE = 1 << 21
"""Pending tables 2 MiB apart: room for 24 INTID bits, 64 KiB aligned."""
DEFAULT_PRIORITY = 0xA0


@dataclass(frozen=True)
class LpiTables:
    prop: int
    lpi_bits: int

    def pend(self, cpu: int) -> int:
        return PEND_TABLES + cpu * PEND_STRIDE


def bring_up(plat: Platform, cpus: Iterable[int] | None = None, *, lpi_bits: int = 16,
             pmr: int = 0xF0, enable_lpis: bool = True, prop: int = PROP_TABLE) -> LpiTables:
    """Enable Group 1, wake ``cpus`` (default: all), give them LPI tables, open their PMR."""
    bus = plat.bus
    chosen = list(range(plat.num_cpus)) if cpus is None else list(cpus)
    bus.write(plat.gicd_base + GICD.CTLR.offset, GICD.CTLR.EnableGrp1.mask, 4)
    tables = LpiTables(prop, lpi_bits)
    plat.memory.fill(prop, (1 << lpi_bits) - LPI_BASE, DEFAULT_PRIORITY | LPI_CFG_RES1)
    attrs = GICR.PROPBASER.Shareability.put(SHARE_INNER) | GICR.PROPBASER.InnerCache.put(
        CACHE_RaWaWb)
    for cpu in chosen:
        rd = plat.gicr_base(cpu)
        bus.write(rd + GICR.WAKER.offset, 0, 4)
        while bus.read(rd + GICR.WAKER.offset, 4) & GICR.WAKER.ChildrenAsleep.mask:
            pass
        if enable_lpis:
            plat.memory.fill(tables.pend(cpu), (1 << lpi_bits) // 8, 0)
            bus.write(rd + GICR.PROPBASER.offset,
                      prop | attrs | GICR.PROPBASER.IDbits.put(lpi_bits - 1), 8)
            bus.write(rd + GICR.PENDBASER.offset, tables.pend(cpu) | attrs, 8)
            bus.write(rd + GICR.CTLR.offset, GICR.CTLR.EnableLPIs.mask, 4)
        cpuif = plat.cpu(cpu)
        cpuif.write_sysreg("ICC_PMR_EL1", pmr)
        cpuif.write_sysreg("ICC_IGRPEN1_EL1", 1)
    return tables


def configure_lpi(plat: Platform, tables: LpiTables, intid: int, *,
                  priority: int = DEFAULT_PRIORITY, enabled: bool = True,
                  invalidate: Iterable[int] = ()) -> None:
    """Write ``intid``'s property byte, then INVLPIR + SYNCR poll on each RD in ``invalidate``."""
    byte = (priority & 0xFC) | LPI_CFG_RES1 | (LPI_CFG_ENABLE if enabled else 0)
    plat.memory.write(tables.prop + intid - LPI_BASE, bytes((byte,)))
    for cpu in invalidate:
        rd = plat.gicr_base(cpu)
        plat.bus.write(rd + GICR.INVLPIR.offset, intid, 8)
        while plat.bus.read(rd + GICR.SYNCR.offset, 4) & 1:
            pass
