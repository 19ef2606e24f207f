"""Posted DMA writes (PCIe ordering) and the requester on the GIC's write events.

Per master, posted writes land in issue order and exactly once, whatever the
interleaving of deliveries, flushes and CPU reads; a read completing from a PCI
function lands that function's writes (and only those) before it returns; a CPU
write lands nothing.  Register offsets are literal (Arm IHI 0069): GICR_SETLPIR
is RD_base + 0x40, GICD_SETSPI_NSR is GICD + 0x40.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from directlpi import ArchitectureViolation, ConfigError, EventKind
from directlpi.hw.events import Event
from directlpi.hw.machine import Machine, MachineConfig
from tests.devices.rig import (
    ECAM_BASE,
    FNS,
    MASTERS,
    PCI_COMMAND,
    PCI_MEM_BASE,
    PLAT_DEV,
    RAM,
    RAW,
    Rig,
    ecam_addr,
    machine,
)
from tests.hw import arch


def test_posted_options_are_validated_by_name() -> None:
    for flag in ("yes", 1, None):
        with pytest.raises(ConfigError, match="posted_writes"):
            MachineConfig(posted_writes=flag)  # type: ignore[arg-type]
    for seed in (-1, True, 1.5, "0"):
        with pytest.raises(ConfigError, match="posted_seed"):
            MachineConfig(posted_seed=seed)  # type: ignore[arg-type]


def test_a_posted_write_is_issued_now_and_lands_later() -> None:
    m = machine()
    issued: list[int] = []
    landed: list[int] = []
    events: list[EventKind] = []
    m.bus.add_dma_hook(lambda a, v, s, master: issued.append(v))
    m.bus.add_landing_hook(lambda a, v, s, master: landed.append(v))
    m.hub.subscribe(lambda e: events.append(e.kind), [EventKind.DMA_WRITE, EventKind.DMA_LANDED])
    m.bus.write(RAM, 0x55, 4, master="dev")
    assert (issued, landed, events) == ([0x55], [], [EventKind.DMA_WRITE])
    assert m.bus.read(RAM, 4) == 0 and m.bus.posted_pending == 1
    assert m.bus.deliver_one()
    assert (issued, landed) == ([0x55], [0x55])
    assert events == [EventKind.DMA_WRITE, EventKind.DMA_LANDED]
    assert m.bus.read(RAM, 4) == 0x55 and m.bus.posted_pending == 0
    assert not m.bus.deliver_one()
    assert (len(issued), len(landed), len(events)) == (1, 1, 2)   # once each


def test_cpu_stores_are_never_posted() -> None:
    m = machine()
    m.bus.write(RAM, 7, 4)
    assert m.bus.read(RAM, 4) == 7 and m.bus.posted_pending == 0


def test_without_the_option_every_write_lands_at_issue_in_issue_order() -> None:
    m = machine(posted=False)
    log: list[tuple[str, str, int]] = []
    m.bus.add_dma_hook(lambda a, v, s, master: log.append(("issue", master, v)))
    m.bus.add_landing_hook(lambda a, v, s, master: log.append(("land", master, v)))
    landed_events: list[Event] = []
    m.hub.subscribe(landed_events.append, [EventKind.DMA_LANDED])
    for k in range(6):
        m.bus.write(RAM + 4 * (k % 2), k, 4, master=f"m{k % 2}")
        assert m.bus.read(RAM + 4 * (k % 2), 4) == k          # already there
        assert m.bus.posted_pending == 0
    assert log == [(what, f"m{k % 2}", k) for k in range(6) for what in ("issue", "land")]
    assert [(e.master, e.value, e.addr) for e in landed_events] == [
        (f"m{k % 2}", k, RAM + 4 * (k % 2)) for k in range(6)]
    assert not m.bus.deliver_one()


def test_landing_comes_before_the_write_acts_on_its_target() -> None:
    m = machine(posted=False)
    seen: list[tuple[EventKind, str | None]] = []
    m.hub.subscribe(lambda e: seen.append((e.kind, e.master)),
                    [EventKind.DMA_WRITE, EventKind.DMA_LANDED, EventKind.MMIO_WRITE])
    m.bus.write(m.gicd_base + arch.GICD_SETSPI_NSR, 40, 4, master="dev")
    assert seen == [(EventKind.DMA_WRITE, "dev"), (EventKind.DMA_LANDED, "dev"),
                    (EventKind.MMIO_WRITE, "dev")]


def test_one_masters_writes_never_pass_each_other_others_may() -> None:
    overtaken = False
    for seed in range(20):
        m = machine(seed=seed)
        order: list[tuple[str, int]] = []

        def note(addr: int, value: int, size: int, master: str,
                 order: list[tuple[str, int]] = order) -> None:
            order.append((master, value))
        m.bus.add_landing_hook(note)
        m.bus.write(RAM, 1, 4, master="a")
        m.bus.write(RAM + 8, 1, 4, master="b")
        m.bus.write(RAM, 2, 4, master="a")
        while m.bus.deliver_one():
            pass
        assert [v for who, v in order if who == "a"] == [1, 2]
        overtaken |= order[0] == ("b", 1)
        assert m.bus.read(RAM, 4) == 2
    assert overtaken, "b's write, issued after a's first, never landed first"


def test_the_choice_of_master_is_seeded_and_uniform() -> None:
    def landing_order(seed: int) -> list[str]:
        m = machine(seed=seed)
        order: list[str] = []
        m.bus.add_landing_hook(lambda a, v, s, master: order.append(master))
        for k in range(200):
            m.bus.write(RAM, k, 4, master="a")
            m.bus.write(RAM + 8, k, 4, master="b")
        for _ in range(200):
            m.bus.deliver_one()
        return order

    assert landing_order(3) == landing_order(3)
    assert landing_order(3) != landing_order(4)
    assert 70 <= landing_order(3).count("a") <= 130


def test_flush_lands_exactly_that_masters_writes_in_order() -> None:
    m = machine()
    order: list[tuple[str, int]] = []
    m.bus.add_landing_hook(lambda a, v, s, master: order.append((master, v)))
    for k in range(3):
        m.bus.write(RAM, k, 4, master="a")
        m.bus.write(RAM + 8, k, 4, master="b")
    m.bus.flush("a")
    assert order == [("a", 0), ("a", 1), ("a", 2)]
    assert m.bus.posted_pending == 3 and m.bus.read(RAM + 8, 4) == 0
    m.bus.flush("nobody")
    assert m.bus.posted_pending == 3
    m.bus.flush_all()
    assert order[3:] == [("b", 0), ("b", 1), ("b", 2)] and m.bus.posted_pending == 0


def unmask_pending_vector(rig: Rig, unmasker: str) -> None:
    """Vector 0 of function 0 pending (masked, entry to a RAM word), and ``unmasker``
    posts the write of its Vector Control that unmasks it."""
    fn, bar = rig.fns[0], rig.bars[0]
    bus = rig.m.bus
    bus.write(bar + 0, RAM + 0x800, 4)                        # entry 0 -> RAM word
    bus.write(bar + 8, 0xAB, 4)
    bus.write(ecam_addr(FNS[0], 0x70 + 2), 0x8000, 2)         # MSI-X enable
    assert not fn.raise_msi(0)                                # masked: PBA bit
    bus.write(bar + 12, 0, 4, master=unmasker)
    assert bus.posted_pending == 1


@pytest.mark.parametrize("unmasker", [FNS[1], FNS[0]])
def test_a_write_caused_by_a_landing_is_issued_then_and_stays_in_flight(unmasker: str) -> None:
    """The MSI an unmask sends is posted behind the unmasking write, not flushed with it."""
    rig = Rig()
    bus = rig.m.bus
    unmask_pending_vector(rig, unmasker)
    bus.flush(unmasker)
    assert bus.posted_pending == 1                            # function 0's MSI, now issued
    assert bus.read(RAM + 0x800, 4) == 0
    bus.flush(FNS[0])
    assert bus.read(RAM + 0x800, 4) == 0xAB and bus.posted_pending == 0


def test_a_flush_from_inside_a_landing_lands_each_write_once() -> None:
    """A listener that reads the function's config space while its writes land."""
    rig = Rig()
    bus = rig.m.bus

    def read_config(addr: int, value: int, size: int, master: str) -> None:
        bus.read(ecam_addr(FNS[0], PCI_COMMAND), 2)
    bus.add_landing_hook(read_config)
    for value in (1, 2, 3):
        rig.issue(0, value)
    bus.flush(FNS[0])
    assert rig.landed == [(FNS[0], 1), (FNS[0], 2), (FNS[0], 3)]
    assert bus.posted_pending == 0 and rig.ram_word(0) == 3


@pytest.mark.parametrize("seed", range(8))
def test_deliveries_from_inside_a_landing_keep_each_masters_order(seed: int) -> None:
    rig = Rig(seed=seed)
    bus = rig.m.bus

    def deliver(addr: int, value: int, size: int, master: str) -> None:
        bus.deliver_one()
    bus.add_landing_hook(deliver)
    for value in (1, 2, 3):
        rig.issue(0, value)
        rig.issue(1, value)
    while bus.deliver_one():
        pass
    for k in (0, 1):
        assert [v for who, v in rig.landed if who == FNS[k]] == [1, 2, 3]
        assert rig.ram_word(k) == 3


def test_flush_all_lands_what_was_in_flight_when_called() -> None:
    rig = Rig()
    unmask_pending_vector(rig, FNS[1])
    rig.m.bus.flush_all()
    assert rig.m.bus.posted_pending == 1 and rig.m.bus.read(RAM + 0x800, 4) == 0
    rig.m.bus.flush_all()
    assert rig.m.bus.posted_pending == 0 and rig.m.bus.read(RAM + 0x800, 4) == 0xAB


# -- any interleaving ------------------------------------------------------------------------

OPS = st.one_of(
    st.tuples(st.just("issue"), st.integers(0, len(MASTERS) - 1)),
    st.tuples(st.just("deliver"), st.just(0)),
    st.tuples(st.just("flush"), st.integers(0, len(MASTERS) - 1)),
    st.tuples(st.just("flush_all"), st.just(0)),
    st.tuples(st.just("cfg_read"), st.integers(0, len(FNS) - 1)),
    st.tuples(st.just("bar_read"), st.integers(0, len(FNS) - 1)),
    st.tuples(st.just("slot_read"), st.just(len(FNS))),
    st.tuples(st.just("cfg_write"), st.integers(0, len(FNS) - 1)),
    st.tuples(st.just("bar_write"), st.integers(0, len(FNS) - 1)),
)


@given(st.lists(OPS, max_size=80), st.integers(0, 2**32))
def test_any_interleaving_lands_each_masters_writes_once_in_order(
        ops: list[tuple[str, int]], seed: int) -> None:
    rig = Rig(seed=seed)
    bus = rig.m.bus
    issued: dict[str, list[int]] = {m: [] for m in MASTERS}
    landed: dict[str, list[int]] = {m: [] for m in MASTERS}
    for op, k in ops:
        in_flight = {m: len(issued[m]) - len(landed[m]) for m in MASTERS}
        before = len(rig.landed)
        if op == "issue":
            issued[MASTERS[k]].append(len(issued[MASTERS[k]]) + 1)
            rig.issue(k, issued[MASTERS[k]][-1])
        elif op == "deliver":
            assert bus.deliver_one() == any(in_flight.values())
        elif op == "flush":
            bus.flush(MASTERS[k])
        elif op == "flush_all":
            bus.flush_all()
        elif op == "cfg_read":
            bus.read(ecam_addr(FNS[k], PCI_COMMAND), 2)
        elif op == "bar_read":
            bus.read(rig.bars[k] + 8, 4)
        elif op == "slot_read":
            rig.dev.read_slot(0)
        elif op == "cfg_write":
            bus.write(ecam_addr(FNS[k], PCI_COMMAND), 0x6, 2)    # as firmware left it
        else:
            bus.write(rig.bars[k] + 8, 0x1234, 4)               # an entry's data
        new = rig.landed[before:]
        for master, value in new:
            landed[master].append(value)
        who = {master for master, _ in new}
        # Which writes this step landed.
        if op in ("issue", "cfg_write", "bar_write"):
            assert new == []
        elif op == "deliver":
            assert len(new) == (1 if any(in_flight.values()) else 0)
        elif op == "flush_all":
            assert len(new) == sum(in_flight.values())
        else:
            target = MASTERS[k]
            assert who <= {target} and len(new) == in_flight[target]
        # Each master's writes land once each, in issue order; the rest is in flight.
        for i, master in enumerate(MASTERS):
            assert landed[master] == issued[master][:len(landed[master])]
            assert rig.ram_word(i) == (landed[master][-1] if landed[master] else 0)
        assert bus.posted_pending == sum(len(issued[m]) - len(landed[m]) for m in MASTERS)


ADDRS = st.one_of(
    st.sampled_from([0x0800_0000, 0x080A_0000, 0x080A_0040, 0x080B_0000, 0x0900_0000,
                     ECAM_BASE, ECAM_BASE + 0x8004, PCI_MEM_BASE, RAM, RAM + (2 << 30) - 4,
                     -8, 1 << 52, (1 << 64) + 4]),
    st.integers(-(1 << 12), 1 << 53))
SIZES = st.sampled_from([1, 2, 4, 8, 0, 3, 16, -4])


@given(st.lists(st.tuples(ADDRS, st.integers(0, (1 << 64) - 1), SIZES,
                          st.sampled_from([None, FNS[0], PLAT_DEV, RAW]),
                          st.sampled_from(["write", "deliver", "read"])), max_size=60))
def test_no_access_raises_in_posted_mode(
        accesses: list[tuple[int, int, int, str | None, str]]) -> None:
    rig = Rig(seed=1)
    bus = rig.m.bus
    for addr, value, size, master, what in accesses:
        if what == "write":
            bus.write(addr, value, size, master)
        elif what == "deliver":
            bus.deliver_one()
        else:
            bus.read(addr, size)
    bus.flush_all()
    assert bus.posted_pending == 0
    assert rig.m.hub.requester is None


def test_bad_accesses_are_recorded_when_they_land() -> None:
    m = machine()
    m.bus.write(0x0000_1000, 1, 4, master="dev")          # nothing there
    m.bus.write(RAM, 1, 3, master="dev")                  # no such size
    assert m.hub.count(EventKind.BAD_ACCESS) == 0         # not there yet
    m.bus.flush_all()
    assert m.hub.count(EventKind.BAD_ACCESS) == 2


# -- the requester on the GIC's write events ------------------------------------------------

def lpis_on(m: Machine, cpu: int) -> None:
    """Wake ``cpu``'s RD, give it tables (LPI 8192 enabled) and enable LPIs."""
    bus = m.bus
    rd = m.gicr_base(cpu)
    bus.write(m.gicd_base + arch.GICD_CTLR, 0x2, 4)                 # EnableGrp1
    bus.write(rd + arch.GICR_WAKER, 0, 4)
    while bus.read(rd + arch.GICR_WAKER, 4) & arch.WAKER_CHILDREN_ASLEEP:
        pass
    prop, pend = 0x4100_0000, 0x4200_0000
    bus.write(prop, 0xA0 | arch.LPI_RES1 | arch.LPI_ENABLE, 1)        # LPI 8192
    bus.write(rd + arch.GICR_PROPBASER, prop | 15, 8)                 # IDbits: 16 bits
    bus.write(rd + arch.GICR_PENDBASER, pend, 8)
    bus.write(rd + arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS, 4)


def watch(m: Machine) -> list[tuple[EventKind, str, str | None, str | None]]:
    """(kind, reason, event's master, hub.requester seen by the listener)."""
    seen: list[tuple[EventKind, str, str | None, str | None]] = []
    m.hub.subscribe(lambda e: seen.append((e.kind, e.reason, e.master, m.hub.requester)),
                    [EventKind.LPI_PENDING, EventKind.SPI_PENDING, EventKind.IGNORED])
    return seen


@pytest.mark.parametrize("posted", [False, True])
def test_setlpir_events_carry_the_writing_master(posted: bool) -> None:
    m = machine(posted=posted)
    setlpir = m.gicr_base(1) + arch.GICR_SETLPIR
    m.bus.write(setlpir, 8192, 4, master="early")           # LPIs still off
    m.bus.flush_all()
    lpis_on(m, 1)
    seen = watch(m)
    m.bus.write(setlpir, 8192, 4, master="dev")
    m.bus.write(setlpir, 8192, 4, master="dev")             # coalesces
    m.bus.write(setlpir, 100, 4, master="dev")              # not an LPI
    m.bus.flush_all()
    m.bus.write(setlpir, 8193, 4)                           # a CPU store
    assert seen == [(EventKind.LPI_PENDING, "setlpir", "dev", "dev"),
                    (EventKind.IGNORED, "already-pending", "dev", "dev"),
                    (EventKind.IGNORED, "unimplemented-intid", "dev", "dev"),
                    (EventKind.LPI_PENDING, "setlpir", None, None)]
    assert m.hub.requester is None


def test_an_ignored_setlpir_is_counted_with_its_master_when_reported() -> None:
    m = machine(posted=False)
    seen = watch(m)
    m.bus.write(m.gicr_base(0) + arch.GICR_SETLPIR, 8192, 4, master="dev")
    assert seen == [(EventKind.IGNORED, "lpis-disabled", "dev", "dev")]


@pytest.mark.parametrize("posted", [False, True])
def test_setspi_nsr_events_carry_the_writing_master(posted: bool) -> None:
    m = machine(posted=posted)
    seen = watch(m)
    setspi = m.gicd_base + arch.GICD_SETSPI_NSR
    m.bus.write(setspi, 40, 4, master="dev")
    m.bus.write(setspi, 40, 4, master="dev")                # already pending
    m.bus.write(setspi, 5, 4, master="dev")                 # an SGI's INTID: not an SPI
    m.bus.flush_all()
    m.bus.write(setspi, 41, 4)                              # a CPU store
    assert seen == [(EventKind.SPI_PENDING, "setspi", "dev", "dev"),
                    (EventKind.IGNORED, "already-pending", "dev", "dev"),
                    (EventKind.IGNORED, "invalid-spi", "dev", "dev"),
                    (EventKind.SPI_PENDING, "setspi", None, None)]
    assert m.hub.requester is None


def test_the_requester_is_set_only_while_a_dma_write_is_routed() -> None:
    m = machine(posted=True)
    at_issue: list[str | None] = []
    at_landing: list[str | None] = []
    m.bus.add_dma_hook(lambda a, v, s, master: at_issue.append(m.hub.requester))
    m.bus.add_landing_hook(lambda a, v, s, master: at_landing.append(m.hub.requester))
    m.bus.write(RAM, 1, 4, master="dev")
    assert m.hub.requester is None
    m.bus.deliver_one()
    assert (at_issue, at_landing, m.hub.requester) == ([None], [None], None)


def test_the_requester_does_not_leak_out_of_a_failing_write() -> None:
    m = machine(posted=False, strict=True)
    with pytest.raises(ArchitectureViolation):
        m.bus.write(m.gicr_base(0) + 0x0800, 1, 4, master="dev")   # reserved in RD_base
    assert m.hub.requester is None
    m = machine(posted=True, strict=True)
    m.bus.write(0x0000_1000, 1, 4, master="dev")
    with pytest.raises(ArchitectureViolation):
        m.bus.deliver_one()
    assert m.hub.requester is None and m.bus.posted_pending == 0


# -- the documented example ----------------------------------------------------------------

def test_the_posted_writes_snippet_runs() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "hardware-model.md"
    section = doc.read_text().split("## Posted writes (option)", 1)[1]
    (snippet,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    exec(compile(snippet, str(doc), "exec"), {})
