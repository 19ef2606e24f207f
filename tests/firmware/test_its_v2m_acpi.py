"""The ACPI side of ITSes and GICv2m frames: MADT GIC ITS and GIC MSI Frame structures,
IORT ITS groups and root complex ID mappings to them -- written where the specification
puts them (literal offsets), read back as the same description, malformed ones refused
naming offset and field, decoded by ``iasl -d`` without a complaint, and booted by
``Platform.from_acpi`` into hardware that has the blocks."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from tests.firmware.tables import rewrite as _rewrite

from directlpi import Platform
from directlpi.cli import main
from directlpi.firmware.acpi import (
    MADT_FIXED_LEN,
    DirectLpiRoute,
    FirmwareError,
    ItsRoute,
    build_iort,
    build_madt,
    checksum_fix,
    parse_iort,
    parse_madt,
    read_iort,
)
from directlpi.firmware.boards import BOARDS_DIR
from directlpi.firmware.devicetree import load_board
from directlpi.kernel.fwdesc import BoardDescription, V2mFrameDescription

GICD_TYPER, GICD_TYPER_LPIS = 0x0004, 1 << 17
MSI_TYPER = 0x008


def _board(name: str) -> BoardDescription:
    return load_board(BOARDS_DIR / f"{name}.dts").board


def _subtables(madt: bytes, kind: int) -> list[int]:
    """Offsets of the MADT subtables of type ``kind``."""
    out, off = [], MADT_FIXED_LEN
    while off < len(madt):
        if madt[off] == kind:
            out.append(off)
        off += madt[off + 1]
    return out



def _with_frame_override(board: BoardDescription, base: int, count: int) -> BoardDescription:
    frame = replace(board.gic.v2m_frames[0], spi_base=base, spi_count=count)
    return replace(board, gic=replace(board.gic, v2m_frames=(frame,)))


# -- MADT ---------------------------------------------------------------------------------------

def test_the_madt_gic_its_structure_is_where_acpi_puts_it() -> None:
    raw = build_madt(_board("its"))
    (off,) = _subtables(raw, 0x0F)
    assert raw[off + 1] == 20
    assert struct.unpack_from("<HIQI", raw, off + 2) == (0, 0, 0x0808_0000, 0)
    assert _subtables(raw, 0x0D) == []


def test_the_madt_gic_msi_frame_structure_is_where_acpi_puts_it() -> None:
    raw = build_madt(_board("gicv2m"))
    (off,) = _subtables(raw, 0x0D)
    assert raw[off + 1] == 24
    # reserved, frame ID, base, flags (bit 0 clear: MSI_TYPER says), SPI count, SPI base
    assert struct.unpack_from("<HIQIHH", raw, off + 2) == (0, 0, 0x0802_0000, 0, 0, 0)
    over = build_madt(_with_frame_override(_board("gicv2m"), 100, 32))
    (off,) = _subtables(over, 0x0D)
    assert struct.unpack_from("<IHH", over, off + 16) == (1, 32, 100)
    assert _subtables(raw, 0x0F) == []


@pytest.mark.parametrize("name", ["its", "gicv2m"])
def test_a_written_madt_reads_back_as_the_same_gic(name: str) -> None:
    board = _board(name)
    madt = parse_madt(build_madt(board))
    assert madt.its == board.gic.its and madt.v2m_frames == board.gic.v2m_frames
    gic = madt.gic()
    assert gic.its == board.gic.its and gic.v2m_frames == board.gic.v2m_frames
    assert [i.fwnode.name for i in gic.its + gic.v2m_frames] == [      # Linux's ACPI names
        f"irqchip@{d.base:#018x}" for d in board.gic.its + board.gic.v2m_frames]


def test_an_msi_typer_override_reads_back() -> None:
    board = _with_frame_override(_board("gicv2m"), 100, 32)
    (frame,) = parse_madt(build_madt(board)).v2m_frames
    assert frame == V2mFrameDescription(0x0802_0000, 100, 32)


def test_half_an_override_cannot_be_written() -> None:
    board = _board("gicv2m")
    frame = replace(board.gic.v2m_frames[0], spi_base=100)
    with pytest.raises(FirmwareError, match="SPI Count/Base Select flag overrides both"):
        build_madt(replace(board, gic=replace(board.gic, v2m_frames=(frame,))))


def _its_off(raw: bytes) -> int:
    return _subtables(raw, 0x0F)[0]


def _frame_off(raw: bytes) -> int:
    return _subtables(raw, 0x0D)[0]


_ITS_MADT = build_madt(_board("its"))
_V2M_MADT = build_madt(_board("gicv2m"))


def _two_itses() -> bytes:
    raw = bytearray(_ITS_MADT)
    raw += raw[_its_off(_ITS_MADT):_its_off(_ITS_MADT) + 20]            # the same ITS twice
    struct.pack_into("<I", raw, 4, len(raw))
    struct.pack_into("<Q", raw, len(raw) - 12, 0x0C00_0000)              # ... elsewhere
    checksum_fix(raw)
    return bytes(raw)


@pytest.mark.parametrize(("raw", "message"), [
    (_two_itses(), "(GIC ITS) GIC ITS ID at +4: 0 is also the ID of the subtable at offset"),
    (_rewrite(_ITS_MADT, _its_off(_ITS_MADT) + 8, "<Q", 0x0808_1000),
     "(GIC ITS) Physical Base Address at +8: 0x8081000 is not 64 KiB-aligned"),
    (_rewrite(_ITS_MADT, _its_off(_ITS_MADT) + 8, "<Q", 0x0800_0000),
     "APIC: GIC ITS 0 @0x8000000 overlaps the GICD @0x8000000 (+0x10000)"),
    (_rewrite(_V2M_MADT, _frame_off(_V2M_MADT) + 8, "<Q", 0x0802_1000),
     "(GIC MSI Frame) Physical Base Address at +8: 0x8021000 is not 64 KiB-aligned (the "
     "model maps each GICv2m frame as a 64 KiB region)"),
    (_rewrite(_V2M_MADT, _frame_off(_V2M_MADT) + 16, "<I", 3),
     "(GIC MSI Frame) Flags at +16: 0x3, reserved bits set"),
    (_rewrite(_V2M_MADT, _frame_off(_V2M_MADT) + 16, "<I", 1),
     "(GIC MSI Frame) SPI Count at +20 / SPI Base at +22: 0 SPIs from 0 are not SPIs 32..1019"),
    (_rewrite(_V2M_MADT, _frame_off(_V2M_MADT) + 1, "<B", 20),
     "(GIC MSI Frame) Length: 20, expected 24"),
], ids=["duplicate-its-id", "its-unaligned", "its-over-gicd", "frame-unaligned",
        "frame-reserved-flags", "frame-empty-override", "frame-short"])
def test_malformed_its_and_frame_subtables_name_offset_and_field(raw: bytes,
                                                                 message: str) -> None:
    with pytest.raises(FirmwareError, match=re.escape(message)) as exc:
        parse_madt(raw)
    assert str(exc.value).startswith("APIC: ")


# -- IORT ---------------------------------------------------------------------------------------

_ITS_ROUTES = (ItsRoute(0, 0, 0x100, its_id=0, output_base=0),
               ItsRoute(0, 0x100, 0xFF00, its_id=7, output_base=0x1000))


def test_the_its_group_and_the_id_mapping_are_where_iort_puts_them() -> None:
    raw = build_iort(_ITS_ROUTES[:1], direct_lpi_node=False)
    assert struct.unpack_from("<I", raw, 36)[0] == 2                    # ITS group + RC
    # ITS group at 48: type 0, length 24, 0 mappings; ITS count 1, GIC ITS ID 0
    assert struct.unpack_from("<BHBIIIII", raw, 48) == (0, 24, 0, 0, 0, 0, 1, 0)
    rc = 48 + 24
    assert raw[rc] == 2 and struct.unpack_from("<I", raw, rc + 8)[0] == 1
    # input base, ID count - 1, output base (the DeviceID), output reference, flags
    assert struct.unpack_from("<IIIII", raw, rc + 36) == (0, 0xFF, 0, 48, 0)


def test_its_routes_read_back_with_their_device_ids() -> None:
    raw = build_iort(_ITS_ROUTES, its_ids=[0, 7], direct_lpi_node=False)
    iort = read_iort(raw)
    assert iort.its == _ITS_ROUTES and iort.direct_lpi == () and iort.its_groups == ((0,), (7,))
    assert parse_iort(raw) == ()                                        # no Direct LPI route


def test_its_and_direct_lpi_routes_share_a_root_complex() -> None:
    routes = (DirectLpiRoute(0, 0, 0x100), ItsRoute(0, 0x100, 0x100, its_id=0, output_base=0x100))
    raw = build_iort(routes)
    assert raw[48] == 0x80 and raw[48 + 24] == 0x00                      # proposed node first
    iort = read_iort(raw)
    assert iort.direct_lpi == routes[:1] and iort.its == routes[1:]


def test_a_board_without_routes_gets_a_root_complex_node_with_no_mapping() -> None:
    raw = build_iort((), direct_lpi_node=False, segments=[0])
    assert struct.unpack_from("<I", raw, 36)[0] == 1 and raw[48] == 2
    assert struct.unpack_from("<II", raw, 48 + 8) == (0, 0)
    assert read_iort(raw).its == ()


@pytest.mark.parametrize(("routes", "kwargs", "message"), [
    (_ITS_ROUTES[1:], {"its_ids": [0]}, "route to GIC ITS 7, which has no ITS group"),
    ((DirectLpiRoute(0, 0, 1),), {"direct_lpi_node": False},
     "route to Direct LPI, which has no GIC MSI target node"),
])
def test_a_route_to_a_node_the_table_lacks_cannot_be_written(routes, kwargs,  # type: ignore[no-untyped-def]
                                                             message) -> None:
    with pytest.raises(FirmwareError, match=message):
        build_iort(routes, **kwargs)


_IORT = build_iort(_ITS_ROUTES[:1], direct_lpi_node=False)


@pytest.mark.parametrize(("raw", "message"), [
    (_rewrite(_IORT, 48 + 16, "<I", 0), "IORT: offset 0x30 (ITS group) Number of ITSs at +16: "
     "0: an ITS group lists at least one ITS"),
    (_rewrite(_IORT, 48 + 16, "<I", 2), "IORT: offset 0x30 (ITS group) Number of ITSs at +16: "
     "2: 2 identifiers do not fit the 24-byte node"),
    (_rewrite(_IORT, 48 + 24 + 36 + 8, "<I", 0xFFFF_FFF0), "ID mapping 0 Output Base: "
     "0xfffffff0 + 0xff IDs run past 32-bit DeviceIDs"),
], ids=["no-its", "its-count-too-big", "device-id-overflow"])
def test_malformed_its_groups_and_mappings_name_offset_and_field(raw: bytes,
                                                                 message: str) -> None:
    with pytest.raises(FirmwareError, match=re.escape(message)):
        read_iort(raw)


# -- directlpi acpi --from, and iasl ------------------------------------------------------------

def _disassemble(tmp_path: Path, name: str) -> str:
    iasl = shutil.which("iasl")
    assert iasl is not None, "iasl (Debian acpica-tools) is missing: run ./bootstrap"
    out = subprocess.run([iasl, "-d", f"{name}.dat"], cwd=tmp_path, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout + out.stderr
    assert "Warning" not in text and "Error" not in text and "Remark" not in text, text
    dsl = (tmp_path / f"{name}.dsl").read_text()
    assert not re.search(r"\*\*\*\*|Unknown|Invalid|Incorrect", dsl), dsl
    return dsl


def _fields(dsl: str, name: str) -> list[str]:
    return re.findall(rf"\]\s+{re.escape(name)} : (\S+)", dsl)


def test_iasl_decodes_the_its_boards_tables_field_by_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["acpi", "--from", str(BOARDS_DIR / "its.dts"), "--out", str(tmp_path)]) == 0
    assert "note:" not in capsys.readouterr().out
    apic, iort = _disassemble(tmp_path, "apic"), _disassemble(tmp_path, "iort")
    assert "Subtable Type : 0F [Generic Interrupt Translator]" in apic
    assert _fields(apic, "Translation ID") == ["00000000"]
    assert "0000000008080000" in _fields(apic, "Base Address")
    assert _fields(iort, "ItsCount") == ["00000001"] and _fields(iort, "Identifiers") == [
        "00000000"]
    assert _fields(iort, "Type") == ["00", "02"]                     # no proposed node
    assert _fields(iort, "ID Count") == ["0000FFFF"] and _fields(iort, "Output Base") == [
        "00000000"]
    assert _fields(iort, "Output Reference") == ["00000030"]          # the ITS group


def test_iasl_decodes_the_gicv2m_boards_tables_field_by_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["acpi", "--from", str(BOARDS_DIR / "gicv2m.dts"), "--out", str(tmp_path)]) == 0
    assert "use GICv2m: IORT has no GICv2m node" in capsys.readouterr().out
    apic, iort = _disassemble(tmp_path, "apic"), _disassemble(tmp_path, "iort")
    assert "Subtable Type : 0D [Generic MSI Frame]" in apic
    assert _fields(apic, "MSI Frame ID") == ["00000000"]
    assert "0000000008020000" in _fields(apic, "Base Address")
    assert re.search(r"Select SPI : 0\n", apic)
    assert _fields(iort, "Type") == ["02"] and _fields(iort, "Mapping Count") == ["00000000"]


def test_iasl_decodes_an_msi_typer_override(tmp_path: Path) -> None:
    board = _with_frame_override(_board("gicv2m"), 100, 32)
    (tmp_path / "apic.dat").write_bytes(build_madt(board))
    apic = _disassemble(tmp_path, "apic")
    assert re.search(r"Select SPI : 1\n", apic)
    assert _fields(apic, "SPI Count") == ["0020"] and _fields(apic, "SPI Base") == ["0064"]


# -- Platform.from_acpi ---------------------------------------------------------------------------

def _tables(tmp_path: Path, name: str) -> tuple[Path, Path]:
    assert main(["acpi", "--from", str(BOARDS_DIR / f"{name}.dts"), "--out", str(tmp_path)]) == 0
    return tmp_path / "apic.dat", tmp_path / "iort.dat"


def test_from_acpi_builds_the_its_and_routes_pci_to_it(tmp_path: Path) -> None:
    plat = Platform.from_acpi(*_tables(tmp_path, "its"))
    (block,) = plat.machine.its
    assert block.base == 0x0808_0000 and plat.machine.v2m == []
    gic = plat.board.gic
    assert [(i.base, i.translation_id) for i in gic.its] == [(0x0808_0000, 0)]
    (host,) = plat.board.pci_hosts
    assert host.msi_parent is None and len(host.msi_map) == 1
    assert host.msi_route_for(0x0100) == (gic.its[0].fwnode, 0x0100)
    assert plat.bus.read(plat.gicd_base + GICD_TYPER, 4) & GICD_TYPER_LPIS


def test_from_acpi_offsets_device_ids_as_the_iort_says() -> None:
    madt = build_madt(_board("its"))
    plat = Platform.from_acpi(madt, build_iort((ItsRoute(0, 0x10, 0x10, 0, 0x400),)))
    (host,) = plat.board.pci_hosts
    assert host.msi_route_for(0x0012) == (plat.board.gic.its[0].fwnode, 0x0402)
    assert host.msi_route_for(0x0022) is None


def test_from_acpi_builds_a_gicv2m_board_without_lpis(tmp_path: Path) -> None:
    plat = Platform.from_acpi(*_tables(tmp_path, "gicv2m"))
    assert plat.machine.its == [] and len(plat.machine.v2m) == 1
    typer = plat.bus.read(0x0802_0000 + MSI_TYPER, 4)
    assert (typer >> 16 & 0x3FF, typer & 0x3FF) == (80, 64)          # QEMU virt's default
    assert not plat.bus.read(plat.gicd_base + GICD_TYPER, 4) & GICD_TYPER_LPIS
    (host,) = plat.board.pci_hosts
    assert host.msi_parent is plat.board.gic.v2m_frames[0].fwnode and host.msi_map == ()
    keep = Platform.from_acpi(tmp_path / "apic.dat", lpis=True)        # options override
    assert keep.bus.read(keep.gicd_base + GICD_TYPER, 4) & GICD_TYPER_LPIS


def test_from_acpi_gives_a_frame_the_madts_spis_when_flagged() -> None:
    plat = Platform.from_acpi(build_madt(_with_frame_override(_board("gicv2m"), 100, 32)))
    typer = plat.bus.read(0x0802_0000 + MSI_TYPER, 4)
    assert (typer >> 16 & 0x3FF, typer & 0x3FF) == (100, 32)


def test_an_iort_route_to_an_its_the_madt_lacks_is_a_firmware_error() -> None:
    with pytest.raises(FirmwareError, match=r"route to GIC ITS 5, which the MADT does not "
                                            r"describe \(its GIC ITS IDs: \[0\]\)"):
        Platform.from_acpi(build_madt(_board("its")),
                           build_iort((ItsRoute(0, 0, 0x10000, its_id=5),)))


def test_check_accepts_the_its_boards_tables(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    apic, iort = _tables(tmp_path, "its")
    capsys.readouterr()
    assert main(["check", str(apic), str(iort)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "directlpi check: 2 file(s) valid"
