"""Platform.bare options: the hardware contract, and clear errors for impossible options."""

from __future__ import annotations

import errno

import pytest

from directlpi import ConfigError, DirectLPIError, Platform
from tests.hw import arch


def test_bare_defaults_follow_the_contract() -> None:
    hw = Platform.bare()
    assert hw.num_cpus == 4
    typer = hw.bus.read(hw.gicd_base + arch.GICD_TYPER, 4)
    assert (typer >> 19) & 0x1F == 15           # 16 INTID bits
    assert (typer >> 16) & 3 == 0b11            # LPIS and MBIS
    assert hw.gicr_base(0) == 0x080A_0000


@pytest.mark.parametrize("bits", [14, 16, 20, 24])
def test_lpi_id_bits_sets_gicd_typer_idbits(bits: int) -> None:
    hw = Platform.bare(cpus=1, lpi_id_bits=bits)
    assert (hw.bus.read(hw.gicd_base + arch.GICD_TYPER, 4) >> 19) & 0x1F == bits - 1


def test_without_lpis_no_rd_reports_plpis() -> None:
    hw = Platform.bare(cpus=2, lpis=False)
    assert (hw.bus.read(hw.gicd_base + arch.GICD_TYPER, 4) >> 17) & 1 == 0
    assert hw.bus.read(hw.gicr_base(1) + arch.GICR_TYPER, 8) & 0b1001 == 0


def test_custom_redistributor_regions_and_mpidrs() -> None:
    hw = Platform.bare(cpus=3, redist_regions=((0x2000_0000, 2), (0x3000_0000, 4)),
                       mpidrs=(0x0, 0x100, 0x1_0000_0000))
    assert [hw.gicr_base(c) for c in range(3)] == [0x2000_0000, 0x2002_0000, 0x3000_0000]
    assert hw.bus.read(hw.gicr_base(2) + arch.GICR_TYPER, 8) >> 32 == 0x0100_0000  # Aff3 = 1
    assert hw.cpu(1).mpidr == 0x100


@pytest.mark.parametrize("kwargs,needle", [
    ({"cpus": 0}, "cpus"),
    ({"cpus": 513}, "cpus"),
    ({"lpi_id_bits": 13}, "lpi_id_bits"),
    ({"lpi_id_bits": 25}, "lpi_id_bits"),
    ({"spis": 100}, "spis"),
    ({"priority_bits": 3}, "priority_bits"),
    ({"direct_lpi": [True, False]}, "direct_lpi"),
    ({"mbis": "yes"}, "mbis"),
    ({"redist_regions": ((0x0800_0000, 4),)}, "overlaps GICD"),
    ({"redist_regions": ((0x080A_0000, 2),)}, "room for 2"),
    ({"redist_stride": 0x10000}, "redist_stride"),
    ({"mpidrs": (1, 1, 2, 3)}, "share"),
    ({"frobnicate": 1}, "unknown hardware option"),
])
def test_impossible_options_raise_einval_naming_the_option(kwargs: dict[str, object],
                                                           needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Platform.bare(**kwargs)  # type: ignore[arg-type]
    assert exc.value.errno == errno.EINVAL
    assert needle in str(exc.value)


def test_asking_for_a_pe_that_does_not_exist_is_enxio() -> None:
    hw = Platform.bare(cpus=2)
    with pytest.raises(ConfigError) as exc:
        hw.cpu(2)
    assert exc.value.errno == errno.ENXIO and "0..1" in str(exc.value)
    with pytest.raises(ConfigError):
        hw.gicr_base(-1)


def test_wired_inputs_reject_impossible_intids() -> None:
    hw = Platform.bare(cpus=1, spis=32)
    with pytest.raises(DirectLPIError) as exc:
        hw.set_spi_line(64, True)
    assert exc.value.errno == errno.EINVAL and "not an implemented SPI" in str(exc.value)
    with pytest.raises(DirectLPIError) as exc2:
        hw.set_ppi_line(0, 40, True)
    assert exc2.value.errno == errno.EINVAL and "not a PPI" in str(exc2.value)


def test_the_spoofed_msi_audit_starts_once_the_platform_knows_its_masters() -> None:
    plat = Platform.bare(cpus=2)
    setlpir = plat.gicr_base(1) + 0x40
    plat.bus.write(setlpir, 8192, 4, master="0000:00:01.0")   # raw hardware: no registry
    assert plat.spoofed_msis == []
    plat.add_platform_device("uart-msi", slots=1)
    plat.bus.write(setlpir, 8193, 4, master="0000:00:01.0")
    plat.bus.write(setlpir, 8194, 4, master="uart-msi")        # never programmed with it
    assert [(s.master, s.data, s.target_cpu, s.reason) for s in plat.spoofed_msis] == [
        ("0000:00:01.0", 8193, 1, "unknown bus master"),
        ("uart-msi", 8194, 1, "not a message this device is programmed to send now")]


def test_platform_devices_get_free_device_ids_above_every_rid() -> None:
    plat = Platform.bare(2, its=(0x0808_0000,), direct_lpi=False, mbis=False)
    a = plat.add_platform_device("a", device_id=0x10001)
    b = plat.add_platform_device("b")
    c = plat.add_platform_device("c")
    assert (a.msi_device_id, b.msi_device_id, c.msi_device_id) == (0x10001, 0x10000, 0x10002)
    assert plat.device_id_of("b") == 0x10000 and plat.device_id_of(None) is None
    with pytest.raises(ConfigError):
        plat.add_platform_device("d", device_id=0x10002)
    with pytest.raises(ConfigError):
        plat.add_platform_device("e", device_id=1 << 17)
