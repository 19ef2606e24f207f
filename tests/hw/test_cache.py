"""The PEs' data cache over physical memory, which the redistributors do not snoop.

Memory-side writes (``mem.write``) stand for the redistributor, which accesses
PhysicalMemory itself.  The cache line is 64 bytes (CTR_EL0.DminLine = 4).
"""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from directlpi import DirectLPIError
from directlpi.hw.cache import CpuDataCache
from directlpi.hw.memory import PhysicalMemory

LINE = 64
TOP = 1 << 52
# A window of 8 lines straddling a 4 KiB page boundary.
BASE = 0x4000_0000 + 4096 - 4 * LINE
SPAN = 8 * LINE


def pair() -> tuple[PhysicalMemory, CpuDataCache]:
    mem = PhysicalMemory()
    return mem, CpuDataCache(mem)


# -- the rules, one at a time ------------------------------------------------------------------

def test_pe_writes_reach_memory_only_when_cleaned() -> None:
    mem, pe = pair()
    pe.write_int(BASE + 3, 0xA3, 1)
    assert pe.read_u8(BASE + 3) == 0xA3
    assert mem.read_u8(BASE + 3) == 0
    pe.clean(BASE + 3, 1)
    assert mem.read_u8(BASE + 3) == 0xA3


def test_clean_acts_on_whole_lines_and_leaves_them_cached() -> None:
    mem, pe = pair()
    pe.write(BASE + 10, b"\x11")
    pe.write(BASE + 60, b"\x22")
    pe.write(BASE + LINE, b"\x33")                 # the next line: not cleaned
    pe.clean(BASE + 10, 1)
    assert mem.read(BASE + 10, 1) == b"\x11" and mem.read(BASE + 60, 1) == b"\x22"
    assert mem.read(BASE + LINE, 1) == b"\x00"
    # Still cached after the clean: a memory-side write stays invisible.
    mem.write(BASE + 20, b"\x44")
    assert pe.read(BASE + 20, 1) == b"\x00"


def test_a_read_caches_the_line_so_later_memory_writes_stay_invisible() -> None:
    mem, pe = pair()
    assert pe.read_int(BASE, 8) == 0
    mem.write_int(BASE + 8, 0x5A, 1)               # the RD writes back a pending table
    assert pe.read_u8(BASE + 8) == 0
    pe.invalidate(BASE + 8, 1)
    assert pe.read_u8(BASE + 8) == 0x5A


def test_a_memory_write_to_an_uncached_line_is_seen() -> None:
    mem, pe = pair()
    pe.read(BASE, LINE)
    mem.write(BASE + LINE, b"\x77")
    assert pe.read(BASE + LINE, 1) == b"\x77"


def test_invalidate_discards_dirty_data_of_the_whole_line() -> None:
    """The strict choice: DC IVAC drops dirty bytes, even outside the range in the line."""
    mem, pe = pair()
    mem.write(BASE, b"\x01\x02")
    pe.write(BASE, b"\xaa\xbb")
    pe.invalidate(BASE + 1, 1)
    assert pe.read(BASE, 2) == b"\x01\x02"
    assert mem.read(BASE, 2) == b"\x01\x02"


def test_clean_invalidate_writes_back_then_rereads_memory() -> None:
    mem, pe = pair()
    pe.write(BASE, b"\xaa")
    pe.clean_invalidate(BASE, 1)
    assert mem.read(BASE, 1) == b"\xaa"
    mem.write(BASE + 1, b"\xbb")
    assert pe.read(BASE, 2) == b"\xaa\xbb"


def test_clean_invalidate_all_writes_every_dirty_line_and_empties_the_cache() -> None:
    mem, pe = pair()
    pe.fill(BASE, SPAN, 0xA2)
    pe.write_int(0x8000_0000, 0x1234, 2)
    pe.read(0x9000_0000, 1)
    pe.clean_invalidate_all()
    assert mem.read(BASE, SPAN) == b"\xa2" * SPAN
    assert mem.read_int(0x8000_0000, 2) == 0x1234
    assert pe.cached_bytes == 0
    mem.write(0x9000_0000, b"\x01")
    assert pe.read_u8(0x9000_0000) == 1


def test_a_late_clean_overwrites_what_the_rd_wrote_in_the_same_line() -> None:
    """A dirty line written back carries the bytes the PE did not write, as it filled them."""
    mem, pe = pair()
    pe.write(BASE, b"\x01")
    mem.write(BASE + 1, b"\x02")                   # the RD, in the same line
    pe.clean(BASE, 1)
    assert mem.read(BASE, 2) == b"\x01\x00"


def test_nothing_is_cached_until_touched_and_then_one_line_at_a_time() -> None:
    mem, pe = pair()
    assert pe.cached_bytes == 0
    pe.read_u8(BASE + 5)
    assert pe.cached_bytes == LINE
    pe.write(BASE + LINE - 1, b"\x00\x00")         # crosses into the next line
    assert pe.cached_bytes == 2 * LINE
    assert mem.allocated_bytes == 0


def test_maintenance_of_an_empty_range_does_nothing() -> None:
    mem, pe = pair()
    pe.write(BASE, b"\x01")
    pe.clean(BASE, 0)
    pe.invalidate(BASE, 0)
    assert mem.read_u8(BASE) == 0 and pe.read_u8(BASE) == 1


def test_the_top_of_the_physical_address_space_is_usable() -> None:
    mem, pe = pair()
    pe.write(TOP - 4, b"\x01\x02\x03\x04")
    assert pe.read(TOP - 4, 4) == b"\x01\x02\x03\x04"
    assert pe.read_int(TOP - 4, 4) == 0x04030201
    pe.clean(TOP - 4, 4)
    assert mem.read(TOP - 4, 4) == b"\x01\x02\x03\x04"


@pytest.mark.parametrize("call", [
    lambda pe: pe.read(TOP - 2, 4),
    lambda pe: pe.read(-1, 1),
    lambda pe: pe.read(0, -1),
    lambda pe: pe.write(TOP - 1, b"\x00\x00"),
    lambda pe: pe.fill(TOP, 1, 0),
    lambda pe: pe.read_int(TOP - 4, 8),
    lambda pe: pe.write_int(-8, 1, 8),
    lambda pe: pe.read_u8(TOP),
    lambda pe: pe.clean(TOP - 1, 2),
    lambda pe: pe.invalidate(-64, 64),
    lambda pe: pe.clean_invalidate(0, -1),
], ids=["read-past-top", "read-negative", "read-negative-length", "write-past-top",
        "fill-at-top", "read_int-past-top", "write_int-negative", "read_u8-at-top",
        "clean-past-top", "invalidate-negative", "clean_invalidate-negative-length"])
def test_out_of_range_accesses_raise_as_physical_memory_does(
        call: Callable[[CpuDataCache], object]) -> None:
    _, pe = pair()
    with pytest.raises(DirectLPIError) as exc:
        call(pe)
    assert exc.value.errno in (errno.EFAULT, errno.EINVAL)
    assert "physical" in str(exc.value) or "negative" in str(exc.value)


# -- against a reference ---------------------------------------------------------------------------

class Reference:
    """Byte by byte: memory, the bytes of cached lines, and which lines are dirty."""

    def __init__(self) -> None:
        self.mem = bytearray(SPAN)
        self.cached: dict[int, int] = {}           # window offset -> byte, for cached lines
        self.dirty: set[int] = set()               # window line numbers

    def _lines(self, off: int, n: int) -> range:
        return range(off // LINE, (off + n - 1) // LINE + 1) if n else range(0)

    def _allocate(self, line: int) -> None:
        if line * LINE not in self.cached:
            for a in range(line * LINE, (line + 1) * LINE):
                self.cached[a] = self.mem[a]

    def pe_read(self, off: int, n: int) -> bytes:
        for line in self._lines(off, n):
            self._allocate(line)
        return bytes(self.cached[a] for a in range(off, off + n))

    def pe_write(self, off: int, data: bytes) -> None:
        for line in self._lines(off, len(data)):
            self._allocate(line)
            self.dirty.add(line)
        for k, b in enumerate(data):
            self.cached[off + k] = b

    def clean(self, off: int, n: int) -> None:
        for line in self._lines(off, n):
            if line in self.dirty:
                for a in range(line * LINE, (line + 1) * LINE):
                    self.mem[a] = self.cached[a]
                self.dirty.discard(line)

    def invalidate(self, off: int, n: int) -> None:
        for line in self._lines(off, n):
            self.dirty.discard(line)
            for a in range(line * LINE, (line + 1) * LINE):
                self.cached.pop(a, None)


offsets = st.integers(0, SPAN - 1)
OPS = ("read", "read_u8", "read_int", "write", "fill", "write_int", "rd_write", "clean",
       "invalidate", "clean_invalidate", "clean_invalidate_all")


@st.composite
def operation(draw: st.DrawFn) -> tuple[str, int, int, bytes]:
    """(operation, window offset, length, data) with the range inside the window."""
    name = draw(st.sampled_from(OPS))
    off = draw(offsets)
    if name in ("read_int", "write_int"):
        n = draw(st.sampled_from([s for s in (1, 2, 4, 8) if off + s <= SPAN]))
    elif name == "read_u8":
        n = 1
    else:
        n = draw(st.integers(1 if name == "rd_write" else 0, SPAN - off))
    data = draw(st.binary(min_size=n, max_size=n)) if name != "fill" else bytes(
        (draw(st.integers(0, 255)),)) * n
    return name, off, n, data


@settings(max_examples=300)
@given(st.lists(operation(), max_size=40))
def test_the_cache_matches_a_byte_level_reference(ops: list[tuple[str, int, int, bytes]]) -> None:
    mem, pe = pair()
    ref = Reference()
    for name, off, n, data in ops:
        before = mem.read(BASE, SPAN)
        addr = BASE + off
        if name == "read":
            assert pe.read(addr, n) == ref.pe_read(off, n)
        elif name == "read_u8":
            assert pe.read_u8(addr) == ref.pe_read(off, 1)[0]
        elif name == "read_int":
            assert pe.read_int(addr, n) == int.from_bytes(ref.pe_read(off, n), "little")
        elif name in ("write", "fill", "write_int"):
            if name == "write":
                pe.write(addr, bytearray(data))
            elif name == "fill":
                pe.fill(addr, n, data[0] if data else 0)
            else:
                pe.write_int(addr, int.from_bytes(data, "little"), n)
            ref.pe_write(off, data)
        elif name == "rd_write":
            mem.write(addr, data)
            ref.mem[off:off + n] = data
        elif name == "clean":
            pe.clean(addr, n)
            ref.clean(off, n)
        elif name == "invalidate":
            pe.invalidate(addr, n)
            ref.invalidate(off, n)
        elif name == "clean_invalidate":
            pe.clean_invalidate(addr, n)
            ref.clean(off, n)
            ref.invalidate(off, n)
        else:
            pe.clean_invalidate_all()
            ref.clean(0, SPAN)
            ref.invalidate(0, SPAN)
        # Memory holds exactly what the RD wrote and what was cleaned, nothing else.
        assert mem.read(BASE, SPAN) == bytes(ref.mem)
        if name not in ("rd_write", "clean", "clean_invalidate", "clean_invalidate_all"):
            assert mem.read(BASE, SPAN) == before
    # Finally everything the PE sees; after a full flush it sees memory, which holds its
    # dirty lines.
    assert pe.read(BASE, SPAN) == ref.pe_read(0, SPAN)
    pe.clean_invalidate_all()
    ref.clean(0, SPAN)
    assert mem.read(BASE, SPAN) == bytes(ref.mem)
    assert pe.read(BASE, SPAN) == bytes(ref.mem)


# Few offsets, in three lines, so that operations meet on the same bytes and lines.
few = st.sampled_from([0, 1, LINE - 1, LINE, LINE + 1, 2 * LINE + 7])
pe_op = st.one_of(
    st.tuples(st.just("write"), few, st.integers(0, 255)),
    st.tuples(st.just("rd_write"), few, st.integers(0, 255)),
    st.tuples(st.just("read"), few, st.just(0)),
    st.tuples(st.just("clean"), few, st.integers(1, 3 * LINE)),
)


@given(st.lists(pe_op, max_size=60))
def test_without_invalidation_the_pe_sees_its_own_latest_writes(
        ops: list[tuple[str, int, int]]) -> None:
    """Neither a clean nor a memory-side write hides what the PE wrote last."""
    mem, pe = pair()
    latest: dict[int, int] = {}
    for name, off, value in ops:
        if name == "write":
            pe.write_int(BASE + off, value, 1)
            latest[off] = value
        elif name == "rd_write":
            mem.write_int(BASE + off, value, 1)
            # Checked right after the memory-side write: reading earlier could refill a
            # line that was wrongly dropped, and hide that.
            for a, v in latest.items():
                assert pe.read_u8(BASE + a) == v
        elif name == "read":
            pe.read_u8(BASE + off)
        else:
            pe.clean(BASE + off, value)
    for a, v in latest.items():
        assert pe.read_u8(BASE + a) == v


@given(st.lists(st.tuples(few, st.integers(1, 255)), min_size=1, max_size=20),
       st.lists(few, max_size=4))
def test_memory_side_writes_are_seen_only_in_lines_not_cached(
        rd_writes: list[tuple[int, int]], read_first: list[int]) -> None:
    mem, pe = pair()
    for off in read_first:
        pe.read_u8(BASE + off)
    cached = {off // LINE for off in read_first}
    for off, value in rd_writes:
        mem.write_int(BASE + off, value, 1)
    final = {off: value for off, value in rd_writes}
    for off, value in final.items():
        assert pe.read_u8(BASE + off) == (0 if off // LINE in cached else value)
    pe.invalidate(BASE, SPAN)
    for off, value in final.items():
        assert pe.read_u8(BASE + off) == value
