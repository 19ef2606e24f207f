"""The independent check: ACPICA's disassembler (iasl -d, installed by ./bootstrap) decodes
the tables we write, field by field, without a warning -- except that it does not know
the PROPOSED Direct LPI IORT node, which is the point of calling it a proposal."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from directlpi import Platform
from directlpi.firmware.acpi import DirectLpiRoute, build_iort, build_madt


def _disassemble(tmp_path: Path, name: str, data: bytes) -> str:
    iasl = shutil.which("iasl")
    assert iasl is not None, "iasl (Debian acpica-tools) is missing: run ./bootstrap"
    (tmp_path / f"{name}.dat").write_bytes(data)
    out = subprocess.run([iasl, "-d", f"{name}.dat"], cwd=tmp_path, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Warning" not in out.stdout + out.stderr and "Error" not in out.stdout + out.stderr
    return (tmp_path / f"{name}.dsl").read_text()


def _fields(dsl: str, name: str) -> list[str]:
    return re.findall(rf"\]\s+{re.escape(name)} : (\S+)", dsl)


@pytest.mark.parametrize("cpus", [3, 130])
def test_iasl_decodes_our_madt_field_by_field(tmp_path: Path, cpus: int) -> None:
    board = Platform.default(cpus=cpus).board
    dsl = _disassemble(tmp_path, "apic", build_madt(board))
    assert "Multiple APIC Description Table (MADT)" in dsl
    assert "Unknown" not in dsl and "Invalid" not in dsl and "Incorrect" not in dsl
    assert [int(v, 16) for v in _fields(dsl, "ARM MPIDR")] == list(board.cpus)
    assert _fields(dsl, "Version") == ["03"]
    bases = [int(v, 16) for v in _fields(dsl, "Base Address")]
    assert 0x0800_0000 in bases and 0x080A_0000 in bases
    assert (0x40_0000_0000 in bases) == (cpus > 123)


def test_iasl_decodes_our_iort_except_the_proposed_node(tmp_path: Path) -> None:
    dsl = _disassemble(tmp_path, "iort", build_iort((DirectLpiRoute(0, 0, 0x10000),)))
    assert "IO Remapping Table" in dsl
    assert re.findall(r"\*\*\*\* .*", dsl) == ["**** Unknown IORT node type 0x80"]
    assert _fields(dsl, "PCI Segment Number") == ["00000000"]
    assert _fields(dsl, "ID Count") == ["0000FFFF"]
    assert _fields(dsl, "Output Reference") == ["00000030"]      # the proposed node's offset


def test_iasl_decodes_redistributors_described_in_each_gicc(tmp_path: Path) -> None:
    from directlpi.firmware.boards import BOARDS_DIR

    board = Platform.from_devicetree(BOARDS_DIR / "gicr-256cpus.dts").board
    dsl = _disassemble(tmp_path, "apic", build_madt(board, gicr_in_gicc=True))
    assert "Unknown" not in dsl and "Invalid" not in dsl and "GICR Base" not in dsl.split(
        "Generic Interrupt Distributor")[1]                       # no GICR subtable
    rds = [int(v, 16) for v in _fields(dsl, "Redistributor Base Address")]
    assert rds[:2] == [0x080A_0000, 0x080C_0000] and rds[123] == 0x40_0000_0000
    assert len(rds) == 256


def test_iasl_decodes_every_node_of_the_second_draft(tmp_path: Path) -> None:
    """Both modes of the proposed GIC MSI target, an ITS group, a root complex choosing
    per range, and two named components: iasl's only complaint is the proposed node type
    (once per node), and it reads every revision, name and mapping where we put them."""
    from directlpi.firmware.acpi import ComponentRoute, ItsRoute, MbiRoute

    dsl = _disassemble(tmp_path, "iort", build_iort((
        DirectLpiRoute(0, 0, 0x100), MbiRoute(0, 0x100, 0x100, 256, 64),
        ItsRoute(0, 0x200, 0x10, its_id=3), ComponentRoute("\\_SB_.DMA0", "direct-lpi"),
        ComponentRoute("\\_SB_.UART", "its", its_id=3, device_id=0x1000))))
    assert re.findall(r"\*\*\*\* .*", dsl) == ["**** Unknown IORT node type 0x80"] * 2
    assert _fields(dsl, "Type") == ["80", "80", "00", "02", "01", "01"]
    assert _fields(dsl, "Revision") == ["00", "01", "01", "00", "01", "02", "02"]  # table first
    assert _fields(dsl, "Device Name") == ['"\\_SB_.DMA0"', '"\\_SB_.UART"']
    assert _fields(dsl, "Output Reference") == ["00000030", "0000004C", "00000068",
                                                "00000030", "00000068"]
    assert _fields(dsl, "Output Base") == ["00000000"] * 4 + ["00001000"]
    assert re.findall(r"Single Mapping : (\d)", dsl) == ["0", "0", "0", "1", "1"]
    assert _fields(dsl, "Memory Size Limit") == ["30"] * 3       # the RC's, each component's
