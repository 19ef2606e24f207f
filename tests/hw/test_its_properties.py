"""Hypothesis: no MMIO stream on the ITS frames and no command stream -- random words,
valid commands with random fields, tables anywhere including outside RAM -- raises,
runs away, or leaves the ITS or the redistributors inconsistent."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from directlpi import EventKind
from tests.hw import arch
from tests.hw.its_arch import (
    CMDQ,
    COLTAB,
    COMMAND_NUMBERS,
    CREADR_STALLED,
    CTLR_ENABLED,
    CWRITER_RETRY,
    DEV,
    DEV2,
    DEVTAB,
    GITS_BASER0,
    GITS_CBASER,
    GITS_CREADR,
    GITS_CTLR,
    GITS_CWRITER,
    GITS_TYPER,
    ITS_BASE,
    LPI,
    LPI_BITS,
    OFFSET_MASK,
    STRANGER,
    TRANSLATION_FRAME,
    VALID,
    Rig,
    itt,
)

U64 = st.integers(0, (1 << 64) - 1)
VALUES = st.one_of(U64, st.integers(0, 0xFFFF), st.sampled_from([0, 1, 0xFFFF_FFFF, VALID]))
SIZES = st.sampled_from([1, 2, 3, 4, 8])
REGISTER_OFFSETS = [0x0000, 0x0004, 0x0008, 0x000C, 0x0040, 0x0048, 0x0080, 0x0084, 0x0088,
                    0x008C, 0x0090, 0x0094] + [GITS_BASER0 + 4 * k for k in range(16)]
MASTERS = st.sampled_from([None, DEV, DEV, DEV2, STRANGER])
# Values that make the command-queue registers interact: queues of 1, 2 and 4 pages in
# RAM, offsets inside and beyond them, Enabled.
QUEUE_VALUES = st.one_of(VALUES, st.sampled_from(
    [CMDQ | VALID, CMDQ | VALID | 1, CMDQ | VALID | 3, CMDQ, 1, 0x20, 0xFE0, 0x1000, 0x2000,
     0x3FE0, 0x8000]))

# The command-queue registers, at their natural widths.
QUEUE = st.tuples(st.just(0), st.sampled_from([0x0000, 0x0080, 0x0088, 0x0090]),
                  st.just(8), QUEUE_VALUES, st.booleans(), MASTERS).map(
    lambda a: (a[0], a[1], 4 if a[1] == 0 else 8, *a[3:]))

# (frame, offset, size, value, is_write, master): control-frame registers, the doorbell
# with EventIDs that Rig.setup() maps, and anything else.
access = st.one_of(
    st.tuples(st.just(0), st.sampled_from(REGISTER_OFFSETS), SIZES, VALUES, st.booleans(),
              MASTERS),
    QUEUE, QUEUE,
    st.tuples(st.just(TRANSLATION_FRAME), st.sampled_from([0x40, 0x40, 0x42, 0x44]),
              st.sampled_from([2, 4, 4, 8]), st.one_of(st.integers(0, 3), VALUES),
              st.just(True), MASTERS),
    st.tuples(st.sampled_from([0, TRANSLATION_FRAME]), st.integers(0, 0xFFFF), SIZES, VALUES,
              st.booleans(), MASTERS),
)


def check_consistent(rig: Rig, typer: int) -> None:
    """What must hold after any stream: read through registers and RD state only."""
    assert rig.read(GITS_TYPER) == typer
    for n in range(2, 8):
        assert rig.read(GITS_BASER0 + 8 * n) == 0
    cbaser = rig.read(GITS_CBASER)
    creadr = rig.read(GITS_CREADR)
    assert creadr & ~(OFFSET_MASK | CREADR_STALLED) == 0   # 32-byte aligned offset only
    if cbaser & VALID:
        assert creadr & OFFSET_MASK < ((cbaser & 0xFF) + 1) * 0x1000
    if creadr & CREADR_STALLED:
        assert rig.plat.event_count(EventKind.ITS_COMMAND_ERROR) > 0
    for cpu in range(rig.cpus):
        pending = rig.plat.machine.redistributor(cpu).lpi_pending
        assert all(LPI <= i < 1 << LPI_BITS for i in pending)
        hppi = rig.hppi(cpu)
        assert hppi == arch.SPURIOUS or hppi in pending


@given(st.booleans(), st.lists(access, min_size=10, max_size=80))
def test_no_mmio_stream_on_the_its_frames_raises_or_runs_away(
        programmed: bool, stream: list[tuple[int, int, int, int, bool, str | None]]) -> None:
    rig = Rig(cpus=2, program=programmed)
    if programmed:
        rig.setup()
    typer = rig.read(GITS_TYPER)
    ran = rig.guard()
    for frame, off, size, value, is_write, master in stream:
        ran[0] = 0
        addr = ITS_BASE + frame + off
        if is_write:
            rig.bus.write(addr, value, size, master=master)
        else:
            assert 0 <= rig.bus.read(addr, size, master=master) < 1 << 64
    check_consistent(rig, typer)


# -- command streams -------------------------------------------------------------------------

def mostly(common: st.SearchStrategy[int], rare: st.SearchStrategy[int]) -> st.SearchStrategy[int]:
    """``common`` four times in five, else ``rare``."""
    return st.integers(0, 4).flatmap(lambda k: rare if k == 0 else common)


DEVICE = mostly(st.sampled_from([8, 9, 0]),
                st.one_of(st.sampled_from([511, 512, 600, (1 << 16) - 1, 1 << 16, 1 << 17]),
                          st.integers(0, 0xFFFF_FFFF)))
EVENT = mostly(st.integers(0, 17), st.one_of(st.sampled_from([LPI, LPI + 1, 0xFFFF, 1 << 16]),
                                             st.integers(0, 0xFFFF_FFFF)))
PINTID = mostly(st.integers(LPI, LPI + 40),
                st.sampled_from([0, 1023, LPI - 1, (1 << 16) - 1, 1 << 16, 0xFFFF_FFFF]))
ICID = mostly(st.integers(0, 2), st.sampled_from([3, 511, 512, 0xFFFF]))
RDBASE = mostly(st.integers(0, 2), st.one_of(st.sampled_from([3, 0x80A, 0x80C, 0x810]),
                                             st.integers(0, (1 << 36) - 1)))
ITT_ADDR = mostly(st.sampled_from([itt(8), itt(9), itt(0) + 0x100]),
                  st.one_of(st.sampled_from([0x1000_0000, (1 << 52) - 0x100]),
                            st.integers(0, (1 << 52) - 1)))
ITT_BITS = mostly(st.integers(3, 16), st.integers(0, 31))


@st.composite
def command(draw: st.DrawFn) -> tuple[int, int, int, int]:
    if draw(st.integers(0, 7)) == 0:
        return draw(st.tuples(U64, U64, U64, U64))                     # any 32 bytes
    op = draw(mostly(st.sampled_from(COMMAND_NUMBERS), st.sampled_from([0x00, 0x02, 0x21, 0xFF])))
    dev, ev, pint = draw(DEVICE), draw(EVENT), draw(PINTID)
    icid, valid = draw(ICID), draw(st.booleans()) or draw(st.booleans())   # mostly V = 1
    dw0 = op | (dev & 0xFFFF_FFFF) << 32
    dw1 = (ev & 0xFFFF_FFFF) | pint << 32
    if op == 0x08:                                                     # MAPD
        dw1 = (draw(ITT_BITS) - 1) % 32 | draw(st.sampled_from([0, 0, 0xFFE0]))
        dw2 = (draw(ITT_ADDR) & 0x000F_FFFF_FFFF_FF00) | valid << 63
    elif op in (0x09, 0x05, 0x0E):                                     # MAPC, SYNC, MOVALL
        dw2 = icid | draw(RDBASE) << 16 | valid << 63
    else:
        dw2 = icid
    dw3 = draw(RDBASE) << 16 if op == 0x0E else draw(st.sampled_from([0, (1 << 64) - 1]))
    return dw0, dw1, dw2, dw3


PLACEMENT = st.integers(0, 15).flatmap(lambda k: st.just(0) if k else st.sampled_from(
    [0x1000_0000, (1 << 52) - 0x1000, 0x8000_0000_0000]))           # mostly in RAM

CMD = st.tuples(st.just("cmd"), command())
MSI = st.tuples(st.just("msi"), st.tuples(MASTERS, EVENT, st.sampled_from([2, 4])))
HIT = st.tuples(st.just("msi"), st.tuples(st.just(DEV), st.integers(0, 1), st.just(4)))
op = st.one_of(
    CMD, CMD, CMD, MSI, HIT,
    st.tuples(st.just("creadr"), st.just(0)),
    st.tuples(st.just("creadr"), st.just(0)),
    st.tuples(st.just("fix"), st.just(0)),
    st.tuples(st.just("retry"), st.booleans()),
    st.tuples(st.just("ack"), st.integers(0, 2)),
    st.tuples(st.just("ctlr"), st.integers(0, 1)),
    st.tuples(st.just("cbaser"), st.tuples(st.integers(0, 3), st.booleans())),
)


@given(st.tuples(PLACEMENT, PLACEMENT, PLACEMENT), st.integers(0, 2),
       mostly(st.just(1), st.just(0)), st.lists(op, min_size=10, max_size=60))
def test_no_command_stream_raises_or_leaves_the_model_inconsistent(
        moves: tuple[int, int, int], queue_pages_code: int, mapped: int,
        stream: list[tuple[str, object]]) -> None:
    queue_pages = 1 << queue_pages_code
    rig = Rig(cpus=3, queue_pages=queue_pages)
    if mapped:
        rig.setup()
    # Move the tables (possibly outside RAM) and the queue, as a driver bug might.
    qmove, dmove, cmove = moves
    rig.write(GITS_CTLR, 0, 4)
    rig.write(GITS_CBASER, (CMDQ + qmove) % (1 << 52) | VALID | (queue_pages - 1))
    rig.write(GITS_CWRITER, 0)
    rig.write(GITS_BASER0, (DEVTAB + dmove) % (1 << 48) | VALID)
    rig.write(GITS_BASER0 + 8, (COLTAB + cmove) % (1 << 48) | VALID)
    rig.write(GITS_CTLR, CTLR_ENABLED, 4)
    base = (CMDQ + qmove) % (1 << 52) & ~0xFFF
    wptr = 0
    typer = rig.read(GITS_TYPER)
    ran = rig.guard()
    for kind, arg in stream:
        ran[0] = 0
        if kind == "cmd":
            assert isinstance(arg, tuple)
            for k, word in enumerate(arg):
                if base + wptr + 8 * k + 8 <= 1 << 52:
                    rig.memory.write_int(base + wptr + 8 * k, word, 8)
            wptr = (wptr + 32) % (queue_pages * 0x1000)
            rig.write(GITS_CWRITER, wptr)
        elif kind == "creadr":
            rig.creadr()
        elif kind == "fix":         # software replaces a failed command by a SYNC, retries
            creadr = rig.creadr()
            if creadr & CREADR_STALLED:
                rig.memory.write_int(base + (creadr & OFFSET_MASK), 0x05, 8)
                rig.memory.write_int(base + (creadr & OFFSET_MASK) + 16, 0, 8)
                rig.write(GITS_CWRITER, wptr | CWRITER_RETRY)
        elif kind == "retry":
            rig.write(GITS_CWRITER, wptr | (CWRITER_RETRY if arg else 0))
        elif kind == "msi":
            assert isinstance(arg, tuple)
            master, event, size = arg
            rig.msi(event, master=master, size=size)
        elif kind == "ack":
            assert isinstance(arg, int)
            rig.ack(arg)
        elif kind == "ctlr":
            rig.write(GITS_CTLR, CTLR_ENABLED if arg else 0, 4)
        else:                       # a driver re-sizing the queue (ignored while enabled)
            assert isinstance(arg, tuple)
            size, rewind = arg
            rig.write(GITS_CBASER, base | VALID | size)
            if not rig.read(GITS_CTLR, 4) & CTLR_ENABLED:
                queue_pages = size + 1
                wptr = 0
                if rewind:
                    rig.write(GITS_CWRITER, 0)
        check_consistent(rig, typer)
