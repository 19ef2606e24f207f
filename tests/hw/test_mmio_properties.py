"""Hypothesis: any access stream is handled without raising and leaves the model consistent.

Consistency is checked through observable behaviour only: after a random stream
of accesses, each PE's ICC_HPPIR1_EL1 must name exactly the interrupt that a
reference computes from the registers the stream left behind (ISPENDR,
ISENABLER, ISACTIVER, IGROUPR, IPRIORITYR, IROUTER, GICD_CTLR).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from directlpi import EventKind, Platform
from tests.hw import arch

SIZES = st.sampled_from([1, 2, 4, 8, 0, 3, 16])
VALUES = st.one_of(st.integers(0, (1 << 64) - 1), st.sampled_from([0, 1, 0xFFFFFFFF]))


def frame_bases(plat: Platform) -> list[int]:
    bases = [plat.gicd_base]
    for cpu in range(plat.num_cpus):
        bases += [plat.gicr_base(cpu), plat.gicr_base(cpu) + arch.SGI_BASE]
    return bases


access = st.tuples(st.integers(0, 6), st.integers(0, 0xFFFF), SIZES, VALUES, st.booleans())


@given(st.lists(access, min_size=5, max_size=120))
def test_no_access_stream_raises(stream: list[tuple[int, int, int, int, bool]]) -> None:
    plat = Platform.bare(cpus=3, spis=64)
    bases = frame_bases(plat)
    typer = plat.bus.read(plat.gicd_base + arch.GICD_TYPER, 4)
    rd_typers = [plat.bus.read(plat.gicr_base(c) + arch.GICR_TYPER, 8) for c in range(3)]
    for frame, off, size, value, is_write in stream:
        addr = bases[frame] + off
        if is_write:
            plat.bus.write(addr, value, size, master="fuzz" if frame % 2 else None)
        else:
            assert 0 <= plat.bus.read(addr, size) < 1 << 64
    # Read-only identification never changes.
    assert plat.bus.read(plat.gicd_base + arch.GICD_TYPER, 4) == typer
    assert [plat.bus.read(plat.gicr_base(c) + arch.GICR_TYPER, 8) for c in range(3)] == rd_typers


# Offsets that hold no register in any configuration of the model.
RESERVED = {
    "gicd": [0x0014, 0x0020, 0x003C, 0x0060, 0x0F30, 0x1000, 0x5FFC, 0x7FE0, 0xC000, 0xFFCC],
    "rd": [0x0018, 0x0030, 0x0050, 0x0080, 0x00A8, 0x00C4, 0x0100, 0x8000, 0xFFCC],
    "sgi": [0x0000, 0x0004, 0x0084, 0x0104, 0x0420, 0x0C08, 0x0D04, 0x0E04, 0x2000],
}


@given(st.sampled_from(sorted(RESERVED)), st.data(), st.sampled_from([1, 2, 4, 8]),
       st.booleans())
def test_reserved_offsets_are_raz_wi_and_counted(which: str, data: st.DataObject, size: int,
                                                 is_write: bool) -> None:
    plat = Platform.bare(cpus=1, spis=64)
    base = {"gicd": plat.gicd_base, "rd": plat.gicr_base(0),
            "sgi": plat.gicr_base(0) + arch.SGI_BASE}[which]
    off = data.draw(st.sampled_from(RESERVED[which]))
    off -= off % size
    if which == "gicd" and off < 0x0020 and size == 8:
        off = 0x0020
    seen = []
    plat.observe(seen.append, [EventKind.BAD_ACCESS])
    if is_write:
        plat.bus.write(base + off, 0xFFFF_FFFF_FFFF_FFFF, size)
    else:
        assert plat.bus.read(base + off, size) == 0
    assert len(seen) == 1
    assert seen[0].reason in ("reserved", "unsupported-width")


def reference_hppi(plat: Platform, cpu: int) -> int:
    """The HPPI of ``cpu`` computed from register reads only (SGI/PPI and SPI)."""
    bus = plat.bus
    ctlr = bus.read(plat.gicd_base + arch.GICD_CTLR, 4) & 0x3
    bus.read(plat.gicd_base + arch.GICD_CTLR, 4)           # consume a pending RWP read
    igrpen = (plat.cpu(cpu).read_sysreg("ICC_IGRPEN0_EL1")
              | plat.cpu(cpu).read_sysreg("ICC_IGRPEN1_EL1") << 1)
    groups = ctlr & igrpen
    waker = bus.read(plat.gicr_base(cpu) + arch.GICR_WAKER, 4)
    if waker & arch.WAKER_PROCESSOR_SLEEP or not groups:
        return arch.SPURIOUS
    best: tuple[int, int] | None = None
    sgi = plat.gicr_base(cpu) + arch.SGI_BASE

    def consider(intid: int, pend: int, en: int, act: int, grp: int, prio: int) -> None:
        nonlocal best
        if pend and en and not act and (groups >> grp) & 1:
            key = (prio, intid)
            if best is None or key < best:
                best = key

    bits = {name: bus.read(sgi + off, 4) for name, off in (
        ("p", arch.GICR_ISPENDR0), ("e", arch.GICR_ISENABLER0), ("a", arch.GICR_ISACTIVER0),
        ("g", arch.GICR_IGROUPR0))}
    for i in range(32):
        consider(i, (bits["p"] >> i) & 1, (bits["e"] >> i) & 1, (bits["a"] >> i) & 1,
                 (bits["g"] >> i) & 1, bus.read(sgi + arch.GICR_IPRIORITYR + i, 1))
    typer = bus.read(plat.gicd_base + arch.GICD_TYPER, 4)
    lines = 32 * ((typer & 0x1F) + 1)
    mpidr = plat.cpu(cpu).mpidr
    for i in range(32, min(lines, 1020)):
        n, b = divmod(i, 32)
        d = plat.gicd_base
        route = bus.read(d + arch.GICD_IROUTER + 8 * i, 8)
        if route & (1 << 31):
            aimed = True
        else:
            aimed = (route & 0xFFFFFF) == (mpidr & 0xFFFFFF) and (route >> 32) & 0xFF == (
                mpidr >> 32) & 0xFF
        if not aimed:
            continue
        consider(i, (bus.read(d + arch.GICD_ISPENDR + 4 * n, 4) >> b) & 1,
                 (bus.read(d + arch.GICD_ISENABLER + 4 * n, 4) >> b) & 1,
                 (bus.read(d + arch.GICD_ISACTIVER + 4 * n, 4) >> b) & 1,
                 (bus.read(d + arch.GICD_IGROUPR + 4 * n, 4) >> b) & 1,
                 bus.read(d + arch.GICD_IPRIORITYR + i, 1))
    if best is None:
        return arch.SPURIOUS
    _, intid = best
    grp = (bits["g"] >> intid) & 1 if intid < 32 else (
        bus.read(plat.gicd_base + arch.GICD_IGROUPR + 4 * (intid // 32), 4) >> (intid % 32)) & 1
    return intid if grp == 1 else arch.SPURIOUS


# A dense stream: a handful of INTIDs (SGIs 0-3, PPIs 16-19, SPIs 32-35) so that
# the bits written by different registers overlap and interesting states arise.
LOW = st.integers(0, 15)
SGI_BITS = st.builds(lambda lo, hi: lo | (hi << 16), LOW, LOW)
SPI_MASKS = [arch.GICD_IGROUPR, arch.GICD_ISENABLER, arch.GICD_ICENABLER, arch.GICD_ISPENDR,
             arch.GICD_ICPENDR, arch.GICD_ISACTIVER, arch.GICD_ICACTIVER]
SGI_MASKS = [arch.GICR_IGROUPR0, arch.GICR_ISENABLER0, arch.GICR_ICENABLER0,
             arch.GICR_ISPENDR0, arch.GICR_ICPENDR0, arch.GICR_ISACTIVER0,
             arch.GICR_ICACTIVER0]

op = st.one_of(
    st.tuples(st.just("gicd"), st.sampled_from([o + 4 for o in SPI_MASKS]), LOW),
    st.tuples(st.just("gicd"), st.just(arch.GICD_CTLR), st.integers(0, 3)),
    st.tuples(st.just("gicd"), st.just(arch.GICD_ICFGR + 8), st.integers(0, 0xFF)),
    st.tuples(st.just("gicd"), st.just(arch.GICD_IPRIORITYR + 32), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("gicd"), st.sampled_from([arch.GICD_SETSPI_NSR, arch.GICD_CLRSPI_NSR]),
              st.integers(32, 35)),
    st.tuples(st.just("route"), st.integers(32, 35), st.sampled_from([0, 1, 1 << 31, 0x100])),
    st.tuples(st.just("sgi"), st.sampled_from(SGI_MASKS), SGI_BITS),
    st.tuples(st.just("sgi"), st.just(arch.GICR_ICFGR1), st.integers(0, 0xFF)),
    st.tuples(st.just("sgi"), st.sampled_from([arch.GICR_IPRIORITYR, arch.GICR_IPRIORITYR + 16]),
              st.integers(0, 2**32 - 1)),
    st.tuples(st.just("icc"), st.sampled_from(["ICC_IGRPEN0_EL1", "ICC_IGRPEN1_EL1"]),
              st.integers(0, 1)),
    st.tuples(st.just("icc"), st.sampled_from(["ICC_PMR_EL1", "ICC_BPR1_EL1"]),
              st.integers(0, 0xFF)),
    st.tuples(st.just("ack"), st.sampled_from(["ICC_IAR1_EL1", "ICC_IAR0_EL1"]), st.just(0)),
    st.tuples(st.just("eoi"), st.sampled_from(["ICC_EOIR1_EL1", "ICC_EOIR0_EL1"]),
              st.integers(0, 35)),
    st.tuples(st.just("waker"), st.just(0), st.sampled_from([0, 0, arch.WAKER_PROCESSOR_SLEEP])),
    st.tuples(st.just("line"), st.integers(32, 35), st.booleans()),
    st.tuples(st.just("ppi"), st.integers(16, 19), st.booleans()),
)


@settings(max_examples=300)
@given(st.lists(st.integers(0, 0xF8), min_size=16, max_size=16),
       st.lists(st.tuples(st.integers(0, 1), op), min_size=10, max_size=80))
def test_hppir_matches_a_reference_built_from_registers(
        prios: list[int], stream: list[tuple[int, tuple[str, int | str, int]]]) -> None:
    plat = Platform.bare(cpus=2, spis=64)
    # Start live -- groups enabled, PEs awake, PMR open, the few INTIDs in play
    # enabled (one of each kind in Group 0) -- and let the stream perturb it.
    d = plat.gicd_base
    plat.bus.write(d + arch.GICD_CTLR, 0x3, 4)
    plat.bus.write(d + arch.GICD_IGROUPR + 4, 0b0111, 4)
    plat.bus.write(d + arch.GICD_ISENABLER + 4, 0b1111, 4)
    for k in range(4):
        plat.bus.write(d + arch.GICD_IPRIORITYR + 32 + k, prios[k], 1)
    for cpu in range(2):
        sgi = plat.gicr_base(cpu) + arch.SGI_BASE
        plat.bus.write(sgi + arch.GICR_IGROUPR0, 0xFFFF_FFF7, 4)
        plat.bus.write(sgi + arch.GICR_ISENABLER0, 0x000F_000F, 4)
        for k in range(4):
            plat.bus.write(sgi + arch.GICR_IPRIORITYR + k, prios[4 + 6 * cpu + k], 1)
            plat.bus.write(sgi + arch.GICR_IPRIORITYR + 16 + k, prios[6 + 6 * cpu + k], 1)
        plat.bus.write(plat.gicr_base(cpu) + arch.GICR_WAKER, 0, 4)
        for reg, value in (("ICC_PMR_EL1", 0xF8), ("ICC_IGRPEN0_EL1", 1),
                           ("ICC_IGRPEN1_EL1", 1)):
            plat.cpu(cpu).write_sysreg(reg, value)
    for cpu, (kind, target, value) in stream:
        if kind == "gicd":
            assert isinstance(target, int)
            plat.bus.write(plat.gicd_base + target, value, 4)
        elif kind == "route":
            assert isinstance(target, int)
            plat.bus.write(plat.gicd_base + arch.GICD_IROUTER + 8 * target, value, 8)
        elif kind == "sgi":
            assert isinstance(target, int)
            plat.bus.write(plat.gicr_base(cpu) + arch.SGI_BASE + target, value, 4)
        elif kind in ("icc", "eoi"):
            plat.cpu(cpu).write_sysreg(str(target), value)
        elif kind == "ack":
            plat.cpu(cpu).read_sysreg(str(target))
        elif kind == "waker":
            plat.bus.write(plat.gicr_base(cpu) + arch.GICR_WAKER, value, 4)
        elif kind == "line":
            assert isinstance(target, int)
            plat.set_spi_line(target, bool(value))
        else:
            assert isinstance(target, int)
            plat.set_ppi_line(cpu, target, bool(value))
    for cpu in range(2):
        assert plat.cpu(cpu).read_sysreg("ICC_HPPIR1_EL1") == reference_hppi(plat, cpu)
