"""Hypothesis: any interleaving of driver, device, hotplug and attacker actions keeps the
invariants, with Direct LPI (the default board), MBIs (the MBI-only board), an ITS
(its.dts) and GICv2m frames (gicv2m.dts), with
posted writes in flight or not, and where EnableLPIs can be cleared or not.

The operations are :class:`directlpi.sim.stress.StackExerciser`'s (the long random hunt
in ``bench/hunt_direct_lpi.py`` drives the same ones): vector allocation and free, mask
and unmask (of shut-down vectors too: refused), disable and enable, affinity moves
(forced ones of shut-down vectors too), pending-state changes, retrigger, CPU offline and
online, device traffic, stray writes of any INTID into any RD by an unknown bus master,
replays of a device's old messages during and after moves, and kexec with pending state
left behind.  After every operation no invariant may be violated; at every idle point
the checker's end-of-run check must pass as well.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from directlpi.sim.stress import DEVICES, StackExerciser

CPUS = 4
DEV = st.sampled_from(DEVICES)
VEC = st.integers(0, 3)
CPU = st.integers(0, CPUS - 1)


class DirectLpiMachine(RuleBasedStateMachine):
    board = "direct-lpi"
    posted = False
    clearable = False

    def __init__(self) -> None:
        super().__init__()
        self.x = StackExerciser(self.board, cpus=CPUS, posted=self.posted,
                                clearable=self.clearable)

    @rule(name=DEV)
    def unbind(self, name: str) -> None:
        self.x.unbind(name)

    @rule(name=DEV)
    def bind(self, name: str) -> None:
        self.x.bind(name)

    @rule(name=DEV, vec=VEC, count=st.integers(1, 3))
    def traffic(self, name: str, vec: int, count: int) -> None:
        self.x.traffic(name, vec, count)

    @rule(name=DEV, vec=VEC, masked=st.booleans())
    def mask(self, name: str, vec: int, masked: bool) -> None:
        self.x.mask(name, vec, masked)

    @rule(name=DEV, vec=VEC, disable=st.booleans())
    def disable(self, name: str, vec: int, disable: bool) -> None:
        self.x.disable(name, vec, disable)

    @rule(name=DEV, vec=VEC, cpus=st.sets(CPU, min_size=1), force=st.booleans())
    def move(self, name: str, vec: int, cpus: set[int], force: bool) -> None:
        self.x.move(name, vec, cpus, force)

    @rule(name=DEV, vec=VEC, pending=st.booleans())
    def set_pending(self, name: str, vec: int, pending: bool) -> None:
        self.x.set_pending(name, vec, pending)

    @rule(name=DEV, vec=VEC)
    def retrigger(self, name: str, vec: int) -> None:
        self.x.retrigger(name, vec)

    @precondition(lambda self: len(self.x.kern.online_cpus) > 1)
    @rule(cpu=CPU)
    def offline(self, cpu: int) -> None:
        self.x.offline(cpu)

    @rule(cpu=CPU)
    def online(self, cpu: int) -> None:
        self.x.online(cpu)

    @rule(intid=st.integers(0, 64), cpu=CPU)
    def stray(self, intid: int, cpu: int) -> None:
        self.x.stray(intid, cpu)

    @rule(name=DEV, pick=st.integers(0, 16))
    def replay(self, name: str, pick: int) -> None:
        self.x.replay(name, pick)

    @precondition(lambda self: self.x.kexecs < 2)       # a reboot is dear: twice at most
    @rule()
    def kexec(self) -> None:
        self.x.kexec()

    @rule()
    def run(self) -> None:
        self.x.run()

    def teardown(self) -> None:
        self.x.run()


TestDirectLpiMachine = DirectLpiMachine.TestCase
TestDirectLpiMachine.settings = settings(max_examples=40, stateful_step_count=30,
                                         deadline=None)


class DirectLpiPostedMachine(DirectLpiMachine):
    """The same with MSIs posted: they land later, interleaved with the PEs and the kernel."""

    posted = True


TestDirectLpiPostedMachine = DirectLpiPostedMachine.TestCase
TestDirectLpiPostedMachine.settings = settings(max_examples=40, stateful_step_count=30,
                                               deadline=None)


class DirectLpiClearableMachine(DirectLpiMachine):
    """EnableLPIs can be cleared (GICR_CTLR.CES = 1): a dying CPU writes its RD's pending
    state back and it is carried exactly; posted writes in flight."""

    posted = True
    clearable = True


TestDirectLpiClearableMachine = DirectLpiClearableMachine.TestCase
TestDirectLpiClearableMachine.settings = settings(max_examples=30, stateful_step_count=30,
                                                  deadline=None)


class MbiMachine(DirectLpiMachine):
    """The same rules on the MBI-only board: every vector is an MBI SPI (GICD_SETSPI_NSR),
    tracked by the same checker."""

    board = "mbi"


TestMbiMachine = MbiMachine.TestCase
TestMbiMachine.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)


class MbiPostedMachine(MbiMachine):
    posted = True


TestMbiPostedMachine = MbiPostedMachine.TestCase
TestMbiPostedMachine.settings = settings(max_examples=25, stateful_step_count=30,
                                         deadline=None)


class ItsMachine(DirectLpiMachine):
    """The same rules on the ITS board: MSIs are EventIDs translated by an ITS, moves are
    MOVIs, stray writes an unknown master's (no DeviceID: dropped) and a known device's
    (its own table only)."""

    board = "its"


TestItsMachine = ItsMachine.TestCase
TestItsMachine.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)


class ItsPostedMachine(ItsMachine):
    posted = True


TestItsPostedMachine = ItsPostedMachine.TestCase
TestItsPostedMachine.settings = settings(max_examples=25, stateful_step_count=30,
                                         deadline=None)


class V2mMachine(DirectLpiMachine):
    """The same rules on the GICv2m board: every vector is an SPI of a frame."""

    board = "gicv2m"
    posted = True


TestV2mMachine = V2mMachine.TestCase
TestV2mMachine.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)


class SpiPvMachine(DirectLpiMachine):
    """The same rules on the Hyper-V SPI-route board: vPCI vectors are guest SPIs the host
    routes (the platform device uses the guest's GICv2m frame); stray writes hit the
    host's doorbell."""

    board = "spi-pv"
    posted = True


TestSpiPvMachine = SpiPvMachine.TestCase
TestSpiPvMachine.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)
