"""ACPI MCFG: written for a board's host bridges, read back strictly, and used by
Platform.from_acpi for segment 0's ECAM window instead of QEMU virt's."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from tests.firmware.test_iasl import _disassemble, _fields

from directlpi import ConfigError, Platform
from directlpi.firmware.acpi import (
    DirectLpiRoute,
    FirmwareError,
    McfgEntry,
    build_iort,
    build_madt,
    build_mcfg,
    checksum_fix,
    parse_mcfg,
)
from directlpi.kernel.pci import PCI_IRQ_MSIX


def _mcfg(*entries: tuple[int, int, int, int], fix: bool = True) -> bytes:
    body = bytes(8) + b"".join(struct.pack("<QHBB4x", *e) for e in entries)
    table = bytearray(b"MCFG" + struct.pack("<IBB6s8sI4sI", 36 + len(body), 1, 0, b"DLPI  ",
                                            b"DIRECTLP", 1, b"DLPI", 1) + body)
    if fix:
        checksum_fix(table)
    return bytes(table)


def test_the_default_board_s_mcfg_round_trips() -> None:
    board = Platform.default().board
    [e] = parse_mcfg(build_mcfg(board))
    assert e == McfgEntry(0x3F00_0000, 0, 0, 15) and e.window == (0x3F00_0000, 16 << 20)


def test_iasl_decodes_our_mcfg(tmp_path: Path) -> None:
    dsl = _disassemble(tmp_path, "mcfg", build_mcfg(Platform.default().board))
    assert "Memory Mapped Configuration" in dsl and "Unknown" not in dsl
    assert _fields(dsl, "Base Address") == ["000000003F000000"]
    assert _fields(dsl, "End Bus Number") == ["0F"]


def test_from_acpi_takes_the_ecam_window_from_the_mcfg() -> None:
    madt = build_madt(Platform.default(cpus=4).board)
    ecam = 0x40_1000_0000                     # above 4 GiB, not QEMU virt's
    iort = build_iort((DirectLpiRoute(0, 0, 0x10000),))
    plat = Platform.from_acpi(madt, iort, mcfg=_mcfg((ecam, 0, 0, 3)))
    assert plat.pci_host is not None and plat.pci_host.ecam_base == ecam
    fn = plat.add_pci_device("0000:03:00.0", msix_vectors=1)
    with pytest.raises(ConfigError, match="buses 00-03"):
        plat.add_pci_device("0000:04:00.0", msix_vectors=1)      # bus 4: past End Bus 3
    kern = plat.boot()
    assert kern.pci_alloc_irq_vectors(fn, 1, 1, PCI_IRQ_MSIX) == 1
    assert plat.bus.read(ecam + (3 << 20), 2) == fn.cfg_read(0, 2)   # config space there


@pytest.mark.parametrize(("entries", "fix", "needle"), [
    (((0x3F00_0000, 0, 5, 2),), True, "Start Bus 5 > End Bus 2"),
    (((0x3F00_8000, 0, 0, 15),), True, "not a 1 MiB-aligned"),
    (((0x3F00_0000, 0, 0, 15), (0x5000_0000, 0, 8, 9)), True, "overlap another allocation"),
    (((0x3F00_0000, 0, 0, 15),), False, "Checksum"),
])
def test_a_bad_mcfg_is_one_line_naming_the_field(entries: tuple[tuple[int, ...], ...],
                                                 fix: bool, needle: str) -> None:
    with pytest.raises(FirmwareError) as exc:
        parse_mcfg(_mcfg(*entries, fix=fix))     # type: ignore[arg-type]
    assert needle in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(("entries", "needle"), [
    (((0x3F00_0000, 1, 0, 15),), "one host bridge, segment 0"),
    (((0x3E00_0000, 0, 1, 15),), "starts at bus 1"),
    (((0x4000_0000, 0, 0, 15),), "overlaps RAM"),
    (((0x0800_0000, 0, 0, 0),), "overlaps the GICD"),
])
def test_an_mcfg_the_model_cannot_build_is_refused(entries: tuple[tuple[int, ...], ...],
                                                   needle: str) -> None:
    madt = build_madt(Platform.default(cpus=2).board)
    with pytest.raises(FirmwareError) as exc:
        Platform.from_acpi(madt, mcfg=_mcfg(*entries))  # type: ignore[arg-type]
    assert needle in str(exc.value)


def test_check_reads_an_mcfg_and_wants_its_madt(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from directlpi.cli import main
    assert main(["acpi", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["check", str(tmp_path / "apic.dat"), str(tmp_path / "mcfg.dat")]) == 0
    assert "MCFG: segment 0 buses 0..15 ECAM @0x3f000000+0x1000000" in capsys.readouterr().out
    assert main(["check", str(tmp_path / "mcfg.dat")]) == 1
    assert "an MCFG needs the MADT" in capsys.readouterr().out
