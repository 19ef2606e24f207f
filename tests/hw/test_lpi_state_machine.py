"""Hypothesis state machine: the redistributors' LPI behaviour against a reference model.

The reference implements the documented rules in the plainest way: a set of
pending INTIDs per RD, and per RD a cache of configuration bytes that is filled
from memory when an LPI first becomes pending and refreshed only by INVLPIR /
INVALLR.  The model (a heap with lazy deletion) must agree with it on every
acknowledge and every HPPIR read, whatever the interleaving of SETLPIR,
CLRLPIR, property-table writes, invalidations and acknowledges.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from directlpi import Platform
from directlpi.sim.bringup import bring_up
from tests.hw import arch

CPUS = 2
INTIDS = st.sampled_from([8192, 8193, 8194, 65535])
BAD_INTIDS = st.sampled_from([0, 8191, 65536, 1 << 31])
PRIOS = st.integers(0, 0xF0)
CPU = st.integers(0, CPUS - 1)


class LpiMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.plat = Platform.bare(cpus=CPUS)
        self.tables = bring_up(self.plat, pmr=0xF8)
        self.memory: dict[int, int] = {}           # reference view of the property table
        self.pending: list[set[int]] = [set() for _ in range(CPUS)]
        self.cache: list[dict[int, int]] = [{} for _ in range(CPUS)]

    # -- helpers ---------------------------------------------------------------

    def mem_byte(self, intid: int) -> int:
        return self.memory.get(intid, 0xA0 | arch.LPI_RES1)

    def rd(self, cpu: int, off: int) -> int:
        return self.plat.gicr_base(cpu) + off

    def expected(self, cpu: int) -> int:
        cands = [((self.cache[cpu][i] & 0xF8), i) for i in self.pending[cpu]
                 if self.cache[cpu][i] & arch.LPI_ENABLE]
        return min(cands)[1] if cands else arch.SPURIOUS

    # -- rules -------------------------------------------------------------------

    @rule(cpu=CPU, intid=INTIDS)
    def setlpir(self, cpu: int, intid: int) -> None:
        self.plat.bus.write(self.rd(cpu, arch.GICR_SETLPIR), intid, 4, master="dev")
        if intid not in self.pending[cpu]:
            self.pending[cpu].add(intid)
            self.cache[cpu].setdefault(intid, self.mem_byte(intid))

    @rule(cpu=CPU, intid=BAD_INTIDS)
    def setlpir_unimplemented(self, cpu: int, intid: int) -> None:
        self.plat.bus.write(self.rd(cpu, arch.GICR_SETLPIR), intid, 8, master="dev")

    @rule(cpu=CPU, intid=INTIDS)
    def clrlpir(self, cpu: int, intid: int) -> None:
        self.plat.bus.write(self.rd(cpu, arch.GICR_CLRLPIR), intid, 8)
        self.pending[cpu].discard(intid)

    @rule(intid=INTIDS, prio=PRIOS, enabled=st.booleans())
    def write_property_byte(self, intid: int, prio: int, enabled: bool) -> None:
        byte = (prio & 0xFC) | arch.LPI_RES1 | (arch.LPI_ENABLE if enabled else 0)
        self.plat.memory.write(self.tables.prop + intid - 8192, bytes((byte,)))
        self.memory[intid] = byte

    @rule(cpu=CPU, intid=INTIDS)
    def invlpir(self, cpu: int, intid: int) -> None:
        self.plat.bus.write(self.rd(cpu, arch.GICR_INVLPIR), intid, 8)
        assert self.plat.bus.read(self.rd(cpu, arch.GICR_SYNCR), 4) == 1
        assert self.plat.bus.read(self.rd(cpu, arch.GICR_SYNCR), 4) == 0
        self.cache[cpu][intid] = self.mem_byte(intid)

    @rule(cpu=CPU)
    def invallr(self, cpu: int) -> None:
        self.plat.bus.write(self.rd(cpu, arch.GICR_INVALLR), 0, 8)
        for intid in self.cache[cpu]:
            self.cache[cpu][intid] = self.mem_byte(intid)

    @rule(cpu=CPU)
    def acknowledge(self, cpu: int) -> None:
        want = self.expected(cpu)
        got = self.plat.cpu(cpu).read_sysreg("ICC_IAR1_EL1")
        assert got == want
        if got != arch.SPURIOUS:
            self.pending[cpu].discard(got)
            self.plat.cpu(cpu).write_sysreg("ICC_EOIR1_EL1", got)

    @invariant()
    def hppir_agrees(self) -> None:
        for cpu in range(CPUS):
            assert self.plat.cpu(cpu).read_sysreg("ICC_HPPIR1_EL1") == self.expected(cpu)


TestLpiMachine = LpiMachine.TestCase


def test_heap_does_not_grow_without_bound_under_set_clear_cycles() -> None:
    """SETLPIR/CLRLPIR and INVLPIR loops without acknowledges must not leak memory."""
    import tracemalloc

    plat = Platform.bare(cpus=1)
    tables = bring_up(plat)
    plat.memory.write(tables.prop, bytes([0xA3]) * 16)
    rd = plat.gicr_base(0)

    def churn(n: int) -> None:
        for i in range(n):
            intid = 8192 + i % 16
            plat.bus.write(rd + arch.GICR_SETLPIR, intid, 8)
            plat.bus.write(rd + arch.GICR_INVLPIR, intid, 8)
            plat.bus.write(rd + arch.GICR_CLRLPIR, intid, 8)

    churn(2000)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    churn(20000)
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert grown < 64 * 1024
    assert plat.cpu(0).read_sysreg("ICC_IAR1_EL1") == arch.SPURIOUS
