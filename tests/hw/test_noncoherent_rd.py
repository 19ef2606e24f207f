"""Redistributors that do not snoop the PEs' caches (``MachineConfig.rd_coherent=False``).

GICR_PROPBASER / GICR_PENDBASER.Shareability ([11:10]) then read as Non-shareable
(0b00) whatever is written, and the RD sees a property-table byte only once the
PE has cleaned it to the point of coherency.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest

from directlpi import ConfigError, Event, EventKind
from directlpi.hw.cache import CpuDataCache
from directlpi.hw.machine import Machine, MachineConfig
from tests.hw import arch

DEV = "0000:00:01.0"
PROP = 0x4100_0000
PEND = 0x4200_0000
LPI_BITS = 16
INTID = 8192 + 77

SH_SHIFT = 10                     # Shareability [11:10]
SH_MASK = 0b11 << SH_SHIFT
INNER_SHAREABLE = 0b01
INNER_WAWB = 0b111 << 7           # InnerCache [9:7]: Normal Inner Write-back RaWaWb
OUTER_WB = 0b001 << 56            # OuterCache [58:56]


def machine(**options: object) -> Machine:
    return Machine(MachineConfig(cpus=3, lpi_id_bits=LPI_BITS, **options))  # type: ignore[arg-type]


def rd(m: Machine, cpu: int, off: int, size: int = 4) -> int:
    return m.bus.read(m.gicr_base(cpu) + off, size)


def wr(m: Machine, cpu: int, off: int, value: int, size: int = 4,
       master: str | None = None) -> None:
    m.bus.write(m.gicr_base(cpu) + off, value, size, master=master)


def cache(m: Machine) -> CpuDataCache:
    ram = m.cpu_memory
    assert isinstance(ram, CpuDataCache)
    return ram


def wait_syncr(m: Machine, cpu: int) -> None:
    while rd(m, cpu, arch.GICR_SYNCR) & 1:
        pass


# -- the option ------------------------------------------------------------------------------

def test_rd_coherent_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="rd_coherent") as exc:
        MachineConfig(rd_coherent=0)  # type: ignore[arg-type]
    assert exc.value.errno == errno.EINVAL


def test_cpu_memory_is_memory_itself_on_a_coherent_machine() -> None:
    m = machine()
    assert m.cpu_memory is m.memory


def test_cpu_memory_is_one_cache_over_memory_on_a_non_coherent_machine() -> None:
    m = machine(rd_coherent=False)
    assert isinstance(m.cpu_memory, CpuDataCache)
    assert m.cpu_memory is m.cpu_memory
    assert m.cpu_memory.memory is m.memory


# -- GICR_PROPBASER / GICR_PENDBASER read-back -------------------------------------------------

@pytest.mark.parametrize("off", [0x70, 0x78], ids=["PROPBASER", "PENDBASER"])
@pytest.mark.parametrize("sh", [0b01, 0b10, 0b11])
def test_non_coherent_rds_read_shareability_as_non_shareable(off: int, sh: int) -> None:
    m = machine(rd_coherent=False)
    value = 0x4100_0000 | (sh << SH_SHIFT) | INNER_WAWB | OUTER_WB
    for cpu in range(3):
        wr(m, cpu, off, value, 8)
        back = rd(m, cpu, off, 8)
        assert back & SH_MASK == 0
        assert back == value & ~SH_MASK           # address and cacheability as written


@pytest.mark.parametrize("off", [0x70, 0x78], ids=["PROPBASER", "PENDBASER"])
def test_a_32_bit_write_of_the_low_half_cannot_set_shareability(off: int) -> None:
    m = machine(rd_coherent=False)
    wr(m, 0, off, 0x4100_0000 | (INNER_SHAREABLE << SH_SHIFT) | INNER_WAWB, 4)
    assert rd(m, 0, off, 4) == 0x4100_0000 | INNER_WAWB


@pytest.mark.parametrize("off", [0x70, 0x78], ids=["PROPBASER", "PENDBASER"])
def test_coherent_rds_keep_the_shareability_written(off: int) -> None:
    m = machine()
    wr(m, 1, off, 0x4100_0000 | (INNER_SHAREABLE << SH_SHIFT) | INNER_WAWB, 8)
    assert (rd(m, 1, off, 8) & SH_MASK) >> SH_SHIFT == INNER_SHAREABLE


# -- end to end: the RD sees only what the PE cleaned ------------------------------------------

def bring_up(m: Machine, cpu: int, *, clean_tables: bool = True) -> None:
    """Group 1 on, the RD awake, tables written through the PE's cache, LPIs on."""
    m.bus.write(m.gicd_base + arch.GICD_CTLR, 0b10, 4)                 # EnableGrp1
    wr(m, cpu, arch.GICR_WAKER, 0)
    while rd(m, cpu, arch.GICR_WAKER) & arch.WAKER_CHILDREN_ASLEEP:
        pass
    ram = m.cpu_memory
    size = (1 << LPI_BITS) - 8192
    ram.fill(PROP, size, 0xA0 | arch.LPI_RES1)                        # all disabled
    ram.fill(PEND, (1 << LPI_BITS) // 8, 0)
    if clean_tables and isinstance(ram, CpuDataCache):
        ram.clean(PROP, size)
        ram.clean(PEND, (1 << LPI_BITS) // 8)
    attrs = (INNER_SHAREABLE << SH_SHIFT) | INNER_WAWB
    wr(m, cpu, arch.GICR_PROPBASER, PROP | attrs | (LPI_BITS - 1), 8)
    wr(m, cpu, arch.GICR_PENDBASER, PEND | attrs, 8)
    wr(m, cpu, arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS)
    icc = m.cpu(cpu)
    icc.write_sysreg("ICC_PMR_EL1", 0xF0)
    icc.write_sysreg("ICC_IGRPEN1_EL1", 1)


def enable_lpi(m: Machine, cpu: int, intid: int, *, clean: bool) -> None:
    """Write the LPI's property byte (enabled, priority 0x80), clean it or not, INVLPIR."""
    ram = m.cpu_memory
    ram.write_int(PROP + intid - 8192, 0x80 | arch.LPI_RES1 | arch.LPI_ENABLE, 1)
    if clean:
        cache(m).clean(PROP + intid - 8192, 1)
    wr(m, cpu, arch.GICR_INVLPIR, intid, 8)
    wait_syncr(m, cpu)


def test_a_property_byte_not_cleaned_is_not_seen_by_the_rd() -> None:
    m = machine(rd_coherent=False)
    bring_up(m, 2)
    enable_lpi(m, 2, INTID, clean=False)
    wr(m, 2, arch.GICR_SETLPIR, INTID, 4, master=DEV)
    assert m.cpu(2).read_sysreg("ICC_IAR1_EL1") == arch.SPURIOUS     # still disabled
    # Cleaned to the point of coherency and invalidated: the pending LPI is delivered.
    cache(m).clean(PROP + INTID - 8192, 1)
    wr(m, 2, arch.GICR_INVLPIR, INTID, 8)
    wait_syncr(m, 2)
    assert m.cpu(2).read_sysreg("ICC_IAR1_EL1") == INTID
    assert m.cpu(2).read_sysreg("ICC_RPR_EL1") == 0x80


def test_a_cleaned_property_byte_is_seen_at_the_invalidation() -> None:
    m = machine(rd_coherent=False)
    bring_up(m, 0)
    enable_lpi(m, 0, INTID, clean=True)
    wr(m, 0, arch.GICR_SETLPIR, INTID, 4, master=DEV)
    assert m.cpu(0).read_sysreg("ICC_IAR1_EL1") == INTID


def test_the_same_driver_without_cache_maintenance_works_on_coherent_rds() -> None:
    m = machine()
    bring_up(m, 2)
    enable_lpi(m, 2, INTID, clean=False)
    wr(m, 2, arch.GICR_SETLPIR, INTID, 4, master=DEV)
    assert m.cpu(2).read_sysreg("ICC_IAR1_EL1") == INTID


def test_a_property_table_not_cleaned_after_initialisation_reads_as_zero() -> None:
    """The RD loads 0x00 from memory: bit 1 (RES1) clear, reported UNPREDICTABLE."""
    m = machine(rd_coherent=False)
    seen: list[Event] = []
    m.hub.subscribe(seen.append, [EventKind.UNPREDICTABLE])
    bring_up(m, 1, clean_tables=False)
    wr(m, 1, arch.GICR_SETLPIR, INTID + 1, 4, master=DEV)
    assert [e.reason for e in seen] == ["lpi-config-res1"]
    assert m.cpu(1).read_sysreg("ICC_IAR1_EL1") == arch.SPURIOUS


def test_the_pending_table_written_back_is_seen_only_after_invalidating() -> None:
    m = machine(rd_coherent=False, lpis_clearable=True)
    bring_up(m, 0)
    wr(m, 0, arch.GICR_SETLPIR, INTID, 4, master=DEV)                  # pending, disabled
    ram = cache(m)
    byte = PEND + INTID // 8
    ram.invalidate(byte, 1)
    assert ram.read_u8(byte) == 0                                      # the PE caches the line
    wr(m, 0, arch.GICR_CTLR, 0)                                        # RD writes the table back
    while rd(m, 0, arch.GICR_CTLR) & arch.CTLR_RWP:
        pass
    assert m.memory.read_u8(byte) == 1 << (INTID % 8)
    assert ram.read_u8(byte) == 0                                      # stale in the cache
    ram.invalidate(byte, 1)
    assert ram.read_u8(byte) == 1 << (INTID % 8)


# -- the documented example ----------------------------------------------------------------

def test_the_non_coherent_snippet_runs() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "hardware-model.md"
    section = doc.read_text().split("## Non-coherent redistributors (option)", 1)[1]
    (snippet,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    exec(compile(snippet, str(doc), "exec"), {})
