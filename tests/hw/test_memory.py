"""Sparse physical memory: zero until written, little-endian, page-granular, 52-bit."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st

from directlpi import DirectLPIError, Platform
from directlpi.hw.memory import PhysicalMemory


def test_untouched_memory_reads_zero_and_allocates_nothing() -> None:
    mem = PhysicalMemory()
    assert mem.read(0x4000_0000, 64) == bytes(64)
    assert mem.read_int((1 << 52) - 8, 8) == 0
    assert mem.allocated_bytes == 0


def test_scalar_access_is_little_endian() -> None:
    mem = PhysicalMemory()
    mem.write_int(0x1000, 0x1122334455667788, 8)
    assert mem.read(0x1000, 8) == bytes.fromhex("8877665544332211")
    assert mem.read_int(0x1000, 2) == 0x7788
    assert mem.read_int(0x1004, 4) == 0x11223344


def test_accesses_crossing_a_page_boundary() -> None:
    mem = PhysicalMemory()
    mem.write_int(0x1FFE, 0xAABBCCDD, 4)
    assert mem.read(0x1FFE, 4) == bytes.fromhex("ddccbbaa")
    assert mem.read_int(0x1FFE, 4) == 0xAABBCCDD
    assert mem.allocated_bytes == 2 * 4096


def test_writing_zeros_to_untouched_pages_allocates_nothing() -> None:
    mem = PhysicalMemory()
    mem.write(0x10_0000, bytes(3 * 4096))
    mem.fill(0x20_0000, 1 << 20, 0)
    mem.write_int(0x30_0000, 0, 8)
    assert mem.allocated_bytes == 0


def test_fill_with_zero_frees_whole_pages() -> None:
    mem = PhysicalMemory()
    mem.fill(0x4000, 3 * 4096, 0xA2)
    assert mem.allocated_bytes == 3 * 4096
    assert mem.read(0x4000 + 4095, 2) == b"\xa2\xa2"
    mem.fill(0x4000, 3 * 4096, 0)
    assert mem.allocated_bytes == 0
    assert mem.read(0x4000, 16) == bytes(16)


def test_top_of_the_52_bit_space_is_usable() -> None:
    mem = PhysicalMemory()
    top = (1 << 52) - 4
    mem.write(top, b"\x01\x02\x03\x04")
    assert mem.read(top, 4) == b"\x01\x02\x03\x04"


@pytest.mark.parametrize("addr,n", [((1 << 52) - 2, 4), (-1, 1), (0, -1)])
def test_out_of_range_bulk_access_raises_with_errno(addr: int, n: int) -> None:
    mem = PhysicalMemory()
    with pytest.raises(DirectLPIError) as exc:
        mem.read(addr, n)
    assert exc.value.errno in (errno.EFAULT, errno.EINVAL)
    assert "physical" in str(exc.value) or "negative" in str(exc.value)


def test_512_cpus_with_24_bit_lpis_allocate_nothing_at_reset() -> None:
    hw = Platform.bare(cpus=512, lpi_id_bits=24)
    assert hw.memory.allocated_bytes == 0
    # Touching one byte of RAM costs one page, not a table.
    hw.bus.write(0x4000_0000, 1, 1)
    assert hw.memory.allocated_bytes == 4096


@given(st.lists(st.tuples(st.integers(0, 1 << 20), st.binary(min_size=1, max_size=300)),
                max_size=40))
def test_memory_matches_a_flat_reference(writes: list[tuple[int, bytes]]) -> None:
    mem = PhysicalMemory()
    ref = bytearray((1 << 20) + 400)
    for addr, data in writes:
        mem.write(addr, data)
        ref[addr:addr + len(data)] = data
    for addr, data in writes:
        assert mem.read(addr, len(data)) == bytes(ref[addr:addr + len(data)])
        assert mem.read_int(addr, 8) == int.from_bytes(ref[addr:addr + 8], "little")
    touched = {a >> 12 for a, d in writes for a in range(a, a + len(d))}
    assert mem.allocated_bytes <= len(touched) * 4096
