"""Platform.from_acpi: the model boots from the MADT and IORT it is given, and only an
IORT with the proposed Direct LPI node makes Direct LPI an MSI provider (R7)."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import pytest

from directlpi import IRQ_HANDLED, PCI_IRQ_MSIX, KernelError, Platform
from directlpi.firmware.acpi import (
    DirectLpiRoute,
    FirmwareError,
    build_iort,
    build_madt,
    checksum_fix,
)

IORT = build_iort((DirectLpiRoute(0, 0, 0x10000),))


def _madt(cpus: int) -> bytes:
    return build_madt(Platform.default(cpus=cpus).board)


def test_the_hardware_built_matches_the_madt() -> None:
    plat = Platform.from_acpi(_madt(256), IORT)
    assert plat.num_cpus == 256
    assert plat.gicr_base(0) == 0x080A_0000 and plat.gicr_base(122) == 0x0900_0000 - 0x20000
    assert plat.gicr_base(123) == 0x40_0000_0000                 # the region above 4 GiB
    assert plat.board.cpus == Platform.default(cpus=256).board.cpus


def test_a_device_signals_by_direct_lpi_when_the_iort_says_so(tmp_path: Path) -> None:
    (tmp_path / "apic.dat").write_bytes(_madt(4))
    (tmp_path / "iort.dat").write_bytes(IORT)
    plat = Platform.from_acpi(tmp_path / "apic.dat", str(tmp_path / "iort.dat"))
    kern = plat.boot()
    assert kern.msi_provider == "direct-lpi"
    nic = plat.add_pci_device("0000:00:02.0", msix_vectors=2)
    assert kern.pci_alloc_irq_vectors(nic, 1, 2, PCI_IRQ_MSIX) == 2
    seen = []
    virq = kern.pci_irq_vector(nic, 1)
    kern.request_irq(virq, lambda irq, dev: (seen.append(irq), IRQ_HANDLED)[1], name="nic")
    nic.raise_msi(1)
    plat.run_until_idle()
    assert seen == [virq]
    assert nic.msi_message(1)[0] - 0x40 in {plat.gicr_base(c) for c in range(4)}


@pytest.mark.parametrize("iort", [None, build_iort(())], ids=["no-iort", "iort-without-node"])
def test_without_the_proposed_iort_node_there_is_no_direct_lpi(iort: bytes | None) -> None:
    plat = Platform.from_acpi(_madt(4), iort)         # every RD reports DirectLPI, no ITS
    kern = plat.boot()
    assert kern.msi_provider == "none"
    assert "Direct LPI not described by firmware" in kern.dmesg()
    nic = plat.add_pci_device("0000:00:02.0", msix_vectors=2)
    with pytest.raises(KernelError) as exc:
        kern.pci_alloc_irq_vectors(nic, 1, 2, PCI_IRQ_MSIX)
    assert exc.value.errno == errno.ENOSPC


def test_rds_without_directlpi_refuse_it_with_a_log_line() -> None:
    plat = Platform.from_acpi(_madt(4), IORT, direct_lpi=[True, False, True, True])
    kern = plat.boot()
    assert kern.msi_provider == "none"
    assert "not every redistributor reports GICR_TYPER.DirectLPI" in kern.dmesg()


def test_a_madt_the_hardware_cannot_match_is_a_firmware_error() -> None:
    board = Platform.default(cpus=4).board
    raw = bytearray(build_madt(board))
    # Shrink the GICR region to 3 RDs while 4 GICCs are enabled.
    struct.pack_into("<I", raw, len(raw) - 4, 3 * 0x20000)
    checksum_fix(raw)
    with pytest.raises(FirmwareError, match="APIC: the hardware it describes cannot be built"):
        Platform.from_acpi(bytes(raw))
    struct.pack_into("<I", raw, len(raw) - 4, 3 * 0x20000 + 0x1000)
    checksum_fix(raw)
    with pytest.raises(FirmwareError, match="not a multiple of one redistributor"):
        Platform.from_acpi(bytes(raw))


def test_a_missing_table_file_is_a_firmware_error(tmp_path: Path) -> None:
    with pytest.raises(FirmwareError, match=r"MADT .*nope\.dat: No such file"):
        Platform.from_acpi(tmp_path / "nope.dat")


def test_a_madt_with_redistributors_in_the_giccs_boots_the_same_board() -> None:
    from directlpi.firmware.boards import BOARDS_DIR

    dt = Platform.from_devicetree(BOARDS_DIR / "gicr-256cpus.dts")
    plat = Platform.from_acpi(build_madt(dt.board, gicr_in_gicc=True), IORT)
    assert plat.board.cpus == dt.board.cpus
    assert [plat.gicr_base(c) for c in (0, 122, 123, 255)] == [
        dt.gicr_base(c) for c in (0, 122, 123, 255)]
    assert plat.boot().msi_provider == "direct-lpi"
