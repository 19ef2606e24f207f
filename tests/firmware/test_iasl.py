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
