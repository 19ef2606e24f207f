"""The GICv3 root driver: probe, boot log, distributor and CPU interface init."""

from __future__ import annotations

from directlpi import EventKind, Platform
from directlpi.kernel.kernel import Kernel
from tests.hw import arch


def test_boot_log_names_what_was_probed(booted: tuple[Platform, Kernel]) -> None:
    _, kern = booted
    log = kern.dmesg()
    assert "GICv3: 988 SPIs implemented" in log
    assert "GICv3: GICv3 features: 16 PPIs, DirectLPI" in log
    assert "GICv3: CPU3: found redistributor 3 region 0:0x0000000008100000" in log
    assert "smp: Brought up 1 node, 4 CPUs" in log


def test_direct_lpi_needs_every_redistributor() -> None:
    plat = Platform.bare(cpus=3, direct_lpi=[True, False, True])
    kern = plat.boot()
    assert "GICv3: GICv3 features: 16 PPIs" in kern.log.grep("features")[0]
    assert "DirectLPI" not in kern.log.grep("features")[0]
    assert kern.gic.has_direct_lpi is False


def test_redistributors_are_found_in_both_regions() -> None:
    plat = Platform.bare(cpus=130, spis=64)
    kern = plat.boot()
    assert kern.gic.rdists[125].rd_base == 0x40_0000_0000 + 2 * 0x20000
    assert kern.gic.rdists[125].region == 1
    assert "GICv3: CPU125: found redistributor 70d region 1:0x0000004000040000" in kern.dmesg()


def test_distributor_init_programs_every_spi(booted: tuple[Platform, Kernel]) -> None:
    plat, _ = booted
    bus, d = plat.bus, plat.gicd_base
    assert bus.read(d + arch.GICD_CTLR, 4) & 0x3 == 0x3
    for n in (1, 10, 31):
        assert bus.read(d + arch.GICD_IGROUPR + 4 * n, 4) == (0xFFFFFFFF if n < 31 else 0x0FFFFFFF)
        assert bus.read(d + arch.GICD_ISENABLER + 4 * n, 4) == 0
    assert bus.read(d + arch.GICD_IPRIORITYR + 40, 4) == 0xA0A0A0A0
    assert bus.read(d + arch.GICD_IROUTER + 8 * 1019, 8) == plat.cpu(0).mpidr


def test_cpu_interfaces_are_initialised_everywhere(booted: tuple[Platform, Kernel]) -> None:
    plat, _ = booted
    for cpu in range(4):
        icc = plat.cpu(cpu)
        assert icc.read_sysreg("ICC_PMR_EL1") == 0xF0
        assert icc.read_sysreg("ICC_IGRPEN1_EL1") == 1
        assert icc.read_sysreg("ICC_CTLR_EL1") & 0b10 == 0        # EOImode 0
        assert plat.bus.read(plat.gicr_base(cpu) + arch.GICR_WAKER, 4) == 0   # awake


def test_boot_makes_no_bad_or_unpredictable_access() -> None:
    plat = Platform.bare(cpus=8, strict=True)     # strict: any such access raises
    kern = plat.boot(lpis=True)
    assert kern.lpis_enabled
    assert plat.event_count(EventKind.BAD_ACCESS) == 0
    assert plat.event_count(EventKind.UNPREDICTABLE) == 0


def test_a_second_boot_is_refused() -> None:
    import pytest

    from directlpi import DirectLPIError
    plat = Platform.bare(cpus=1)
    plat.boot()
    with pytest.raises(DirectLPIError, match="kexec"):
        plat.boot()
