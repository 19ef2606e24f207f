"""ACPI MADT and IORT (with the proposed Direct LPI node) writers and readers: round
trips, and a clear FirmwareError for every malformed table."""

from __future__ import annotations

import re
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.firmware.tables import rewrite as _rewrite

from directlpi import Platform
from directlpi.firmware.acpi import (
    GICC,
    GICC_LEN,
    GICR_FRAME_PAIR,
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


def _board(cpus: int):  # type: ignore[no-untyped-def]
    return Platform.default(cpus=cpus).board


@pytest.mark.parametrize("cpus", [1, 8, 123, 124, 256])
def test_a_written_madt_reads_back_as_the_same_board(cpus: int) -> None:
    board = _board(cpus)
    madt = parse_madt(build_madt(board))
    assert madt.cpus == board.cpus
    assert madt.dist_base == board.gic.dist_base == 0x0800_0000
    assert madt.redist_regions == board.gic.redist_regions
    assert len(madt.redist_regions) == (1 if cpus <= 123 else 2)   # second region above 4 GiB


def test_the_madt_never_names_direct_lpi() -> None:
    gic = parse_madt(build_madt(_board(8))).gic()
    assert not gic.direct_lpi and not gic.msi_controller


def test_layout_is_acpi_6_3() -> None:
    raw = build_madt(_board(2))
    assert raw[:4] == b"APIC" and raw[8] == 5 and sum(raw) & 0xFF == 0
    assert struct.unpack_from("<I", raw, 4)[0] == len(raw) == 44 + 2 * 80 + 24 + 16
    first = raw[MADT_FIXED_LEN:MADT_FIXED_LEN + GICC_LEN]
    assert first[0] == GICC and first[1] == GICC_LEN
    assert struct.unpack_from("<Q", first, 68)[0] == 0           # MPIDR of CPU0
    second = raw[MADT_FIXED_LEN + GICC_LEN:]
    assert struct.unpack_from("<Q", second, 68)[0] == 1          # Aff0 = 1



def test_per_cpu_redistributors_are_read_from_the_giccs() -> None:
    raw = build_madt(_board(2))
    gicr_sub = len(raw) - 16
    t = bytearray(raw[:gicr_sub])
    struct.pack_into("<I", t, 4, len(t))
    for i in range(2):
        struct.pack_into("<Q", t, MADT_FIXED_LEN + i * GICC_LEN + 60, 0x080A_0000 + i * 0x20000)
    checksum_fix(t)
    madt = parse_madt(bytes(t))
    assert madt.redist_regions == ((0x080A_0000, GICR_FRAME_PAIR), (0x080C_0000, GICR_FRAME_PAIR))


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda r: r[:20], "shorter than the 36-byte table header"),
    (lambda r: b"FACP" + r[4:], "offset 0x0 Signature"),
    (lambda r: r + b"\0", "offset 0x4 Length"),
    (lambda r: r[:9] + bytes([r[9] ^ 1]) + r[10:], "offset 0x9 Checksum"),
    (lambda r: _rewrite(r, MADT_FIXED_LEN + 1, "<B", 79), "offset 0x2c (GICC) Length: 79, "
     "expected 80"),
    (lambda r: _rewrite(r, MADT_FIXED_LEN + 12, "<I", 0), "no enabled GICC"),
    (lambda r: _rewrite(r, MADT_FIXED_LEN + GICC_LEN + 20, "<B", 2), "GIC Version at +20: 2"),
    (lambda r: _rewrite(r, len(r) - 4, "<I", 0), "Discovery Range Length at +12: 0"),
    (lambda r: _rewrite(r, MADT_FIXED_LEN + 60, "<Q", 0x080A_0000), "use one or the other"),
])
def test_malformed_tables_name_the_offset_and_field(mutate, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FirmwareError, match=re.escape(message)):
        parse_madt(mutate(build_madt(_board(1))))


def test_overlapping_gicr_regions_are_refused() -> None:
    board = _board(1)
    raw = bytearray(build_madt(board))
    raw += raw[-16:]                                   # the same GICR subtable twice
    struct.pack_into("<I", raw, 4, len(raw))
    checksum_fix(raw)
    with pytest.raises(FirmwareError, match="overlap"):
        parse_madt(bytes(raw))


@st.composite
def _mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` with a few bytes changed, maybe cut short, and maybe its length and
    checksum made right again (so that mutations reach past the header checks)."""
    t = bytearray(valid)
    for off, val in draw(st.lists(st.tuples(st.integers(0, len(valid) - 1),
                                            st.integers(0, 255)), min_size=1, max_size=6)):
        t[off] = val
    t = t[:draw(st.integers(36, len(valid)))]
    if draw(st.booleans()):
        struct.pack_into("<I", t, 4, len(t))
        checksum_fix(t)
    return bytes(t)


@settings(max_examples=400, deadline=None)
@given(_mutated(build_madt(Platform.default(cpus=4).board)))
def test_mutated_tables_give_a_firmware_error_or_a_consistent_board(raw: bytes) -> None:
    try:
        madt = parse_madt(raw)
    except FirmwareError as e:
        assert str(e).startswith("APIC: ")
        return
    assert madt.cpus and all(size > 0 for _, size in madt.redist_regions)


# -- IORT with the proposed Direct LPI node -------------------------------------------------------

_ROUTES = (DirectLpiRoute(0, 0, 0x10000), DirectLpiRoute(1, 0x100, 0x100))


def test_an_iort_routes_requester_ids_to_direct_lpi_and_reads_back() -> None:
    raw = build_iort(_ROUTES)
    assert raw[:4] == b"IORT" and sum(raw) & 0xFF == 0
    assert struct.unpack_from("<I", raw, 36)[0] == 3          # Direct LPI node + 2 RCs
    assert raw[48] == 0x80                                    # the proposed node comes first
    assert parse_iort(raw) == _ROUTES


def test_an_iort_without_the_proposed_node_routes_nothing() -> None:
    raw = bytearray(build_iort(()))
    assert parse_iort(bytes(raw)) == ()


def test_a_cleared_direct_lpi_flag_is_refused() -> None:
    raw = _rewrite(build_iort(_ROUTES), 48 + 16, "<I", 0)
    with pytest.raises(FirmwareError, match=re.escape("IORT: offset 0x30 (GIC MSI target) "
                                                      "Flags at +16: 0x0, bit 0")):
        parse_iort(raw)


def test_a_mapping_to_an_its_group_is_an_its_route_not_direct_lpi() -> None:
    raw = _rewrite(build_iort(_ROUTES), 48, "<B", 0)          # the target becomes an ITS group
    assert parse_iort(raw) == ()                              # (its flags word reads as 1 ITS)
    assert read_iort(raw).its == (ItsRoute(0, 0, 0x10000, its_id=0),
                                  ItsRoute(1, 0x100, 0x100, its_id=0))


def test_a_dangling_output_reference_is_refused() -> None:
    raw = _rewrite(build_iort(_ROUTES), 48 + 28 + 36 + 12, "<I", 0x31)
    with pytest.raises(FirmwareError, match="Output Reference: 0x31 is not the offset"):
        parse_iort(raw)


@settings(max_examples=400, deadline=None)
@given(_mutated(build_iort(_ROUTES)))
def test_mutated_iorts_give_a_firmware_error_or_routes(raw: bytes) -> None:
    try:
        routes = parse_iort(raw)
    except FirmwareError as e:
        assert str(e).startswith("IORT: ")
        return
    assert all(r.count >= 1 for r in routes)
