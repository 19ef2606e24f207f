"""The ITS MSI provider (kernel/irqchip/gic_v3_its.py), on the ITS board and bare ITS machines.

What an ITS gives that Direct LPI cannot: a message naming no CPU (GITS_TRANSLATER,
EventID), MOVI moving what is pending, DeviceID isolation.  Each test checks an
observable outcome: handler runs and where, the device's message, the commands the
ITS executed (ITS_COMMAND events), allocator state.
"""

from __future__ import annotations

import errno
from typing import Any

import pytest

from directlpi import Platform
from directlpi.firmware.boards import BOARDS_DIR
from directlpi.hw.events import Event, EventKind
from directlpi.hw.regs import GITS
from directlpi.kernel.context import Kind
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.chip import IRQCHIP_STATE_PENDING
from directlpi.kernel.irq.desc import IRQ_HANDLED
from directlpi.kernel.kernel import Kernel
from directlpi.kernel.pci import PCI_IRQ_MSI, PCI_IRQ_MSIX
from tests.kernel.drivers import Driver

ITS_BOARD = BOARDS_DIR / "its.dts"
ITS_BASE = 0x0808_0000
TRANSLATER = ITS_BASE + 0x10040
MOVI, INT, CLEAR, SYNC, MAPD, MAPC, MAPTI, INV, INVALL, DISCARD = (
    0x01, 0x03, 0x04, 0x05, 0x08, 0x09, 0x0A, 0x0C, 0x0D, 0x0F)


class Commands:
    """The ITS commands executed, by number."""

    def __init__(self, plat: Platform) -> None:
        self.seen: list[int] = []
        plat.observe(self._on, [EventKind.ITS_COMMAND])

    def _on(self, ev: Event) -> None:
        self.seen.append(ev.value)

    def take(self) -> list[int]:
        out, self.seen = self.seen, []
        return out


@pytest.fixture
def its() -> tuple[Platform, Kernel]:
    plat = Platform.from_devicetree(ITS_BOARD)
    return plat, plat.boot()


def test_the_kernel_uses_the_its_and_maps_one_collection_per_cpu(its: Any) -> None:
    plat, kern = its
    assert kern.msi_provider == "its"
    assert kern.its is not None and kern.lpi is not None
    node = kern.its.nodes[0]
    assert sorted(node.collections) == list(range(plat.num_cpus))
    assert plat.event_count(EventKind.ITS_COMMAND_ERROR) == 0
    assert not plat.machine.its[0].stalled


def test_the_message_is_gits_translater_and_the_event_id(its: Any) -> None:
    plat, kern = its
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 4, msix_vectors=4)
    msgs = [kern.get_cached_msi_msg(v) for v in d.virqs]
    assert {m.address for m in msgs} == {TRANSLATER}
    assert [m.data for m in msgs] == [0, 1, 2, 3]
    assert [d.fn.msi_message(i) for i in range(4)] == [(TRANSLATER, i) for i in range(4)]
    # the LPIs are one block of the shared allocator
    intids = [kern.irq_to_desc(v).irq_data.parent_data.hwirq for v in d.virqs]
    assert intids == list(range(intids[0], intids[0] + 4))
    assert kern.lpi.allocator.allocated_blocks()[-1] == (intids[0], 4)


def test_an_msi_is_translated_and_handled_on_the_affinity_cpu(its: Any) -> None:
    plat, kern = its
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 2, msix_vectors=2)
    translated: list[Event] = []
    plat.observe(translated.append, [EventKind.ITS_TRANSLATED])
    kern.irq_set_affinity(d.virqs[1], {5})
    d.fn.raise_msi(1)
    plat.run_until_idle(verify=True)
    assert d.runs == [(1, 5)]
    assert [(e.master, e.addr, e.value, e.cpu) for e in translated] == [
        ("0000:00:01.0", 0x0008, 1, 5)]        # DeviceID = RID 00:01.0 through the msi-map


def test_a_move_is_a_movi_and_the_device_is_not_rewritten(its: Any) -> None:
    plat, kern = its
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    cmds = Commands(plat)
    before = d.fn.msi_message(0)
    writes: list[Event] = []
    plat.observe(writes.append, [EventKind.MMIO_WRITE])
    kern.irq_set_affinity(d.virqs[0], {3})
    assert cmds.take() == [MOVI, SYNC]
    assert d.fn.msi_message(0) == before
    assert not [w for w in writes if w.source.startswith("PCI")]
    assert kern.irq_get_effective_affinity(d.virqs[0]) == {3}
    kern.irq_set_affinity(d.virqs[0], {3})          # same CPU: no command
    assert cmds.take() == []


def test_movi_carries_what_is_pending_to_the_new_cpu(its: Any) -> None:
    """Direct LPI delivers a pending LPI on the old CPU; the ITS moves it."""
    plat, kern = its
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    kern.irq_set_affinity(d.virqs[0], {1})
    intid = kern.irq_to_desc(d.virqs[0]).irq_data.parent_data.hwirq
    d.fn.raise_msi(0)                                   # pending on CPU1's RD, not taken yet
    assert intid in plat.machine.gic.redists[1].lpi_pending
    kern.irq_set_affinity(d.virqs[0], {6})
    assert intid not in plat.machine.gic.redists[1].lpi_pending
    assert intid in plat.machine.gic.redists[6].lpi_pending
    plat.run_until_idle(verify=True)
    assert d.runs == [(0, 6)]


def test_mask_is_the_property_byte_then_inv_and_sync(its: Any) -> None:
    plat, kern = its
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    cmds = Commands(plat)
    kern.mask_irq(d.virqs[0])
    assert cmds.take() == [INV, SYNC]
    d.fn.raise_msi(0)
    plat.run_until_idle(verify=True)
    assert d.runs == []                      # held pending, masked at the RD
    kern.unmask_irq(d.virqs[0])
    assert cmds.take() == [INV, SYNC]
    plat.run_until_idle(verify=True)
    assert d.runs == [(0, 0)]


def test_with_directlpi_on_every_rd_the_driver_invalidates_with_gicr_invlpir() -> None:
    plat = Platform.bare(4, its=(ITS_BASE,), direct_lpi=True, mbis=False)
    kern = plat.boot()
    dev = plat.add_platform_device("dma", slots=1)
    first = kern.platform_msi_domain_alloc_irqs(
        dev, 1, lambda desc, msg: dev.program_slot(desc.msi_index, msg.address, msg.data))
    kern.request_irq(first, lambda irq, d: IRQ_HANDLED, name="dma")
    cmds = Commands(plat)
    inval: list[Event] = []
    plat.observe(inval.append, [EventKind.INVALIDATE])
    kern.mask_irq(first)
    assert cmds.take() == []                         # no INV command
    assert [(e.source, e.intid) for e in inval] == [("GICR0", 8192)]


def test_multimsi_events_are_an_aligned_block(its: Any) -> None:
    plat, kern = its
    one = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSI, 1, msi_vectors=1)
    four = Driver(plat, kern, "0000:00:02.0", PCI_IRQ_MSI, 4, msi_vectors=4)
    assert len(four.virqs) == 4
    assert [kern.get_cached_msi_msg(v).data for v in four.virqs] == [0, 1, 2, 3]
    assert four.fn.msi_message(0) == (TRANSLATER, 0)
    # Each vector of the block has its own collection (the ITS needs no shared target),
    # spread to the least loaded CPUs: one LPI per CPU here.
    cpus = [min(kern.irq_get_effective_affinity(v)) for v in one.virqs + four.virqs]
    assert sorted(cpus) == [0, 1, 2, 3, 4]
    four.fn.raise_msi(3)
    one.fn.raise_msi(0)
    plat.run_until_idle(verify=True)
    assert four.runs == [(3, cpus[4])] and one.runs == [(0, cpus[0])]


def test_msis_are_isolated_and_vfio_assigns_without_unsafe_interrupts(its: Any) -> None:
    plat, kern = its
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    assert kern.msi_isolated(d.fn)
    kern.vfio_assign(d.fn)
    assert "0000:00:01.0" in kern.assigned


def test_a_spoof_cannot_reach_its_victim(its: Any) -> None:
    """The attacker's DeviceID selects the attacker's own ITT: the victim's EventID either
    hits the attacker's own vector or nothing."""
    plat, kern = its
    victim = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 4, msix_vectors=4)
    attacker = Driver(plat, kern, "0000:00:02.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    addr, data = victim.fn.msi_message(3)
    dropped: list[Event] = []
    plat.observe(dropped.append, [EventKind.MSI_DROPPED])
    attacker.fn.spoof_msi(addr, data)
    plat.run_until_idle(verify=True)
    assert victim.runs == [] and attacker.runs == []
    assert [(e.reason, e.master) for e in dropped] == [("event-out-of-range", "0000:00:02.0")]
    [spoof] = plat.spoofed_msis
    assert spoof.doorbell == "GITS_TRANSLATER" and spoof.victim.startswith("nobody")


def test_free_discards_unmaps_the_device_and_gives_the_lpis_back(its: Any) -> None:
    plat, kern = its
    blocks = kern.lpi.allocator.allocated_blocks()
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 2, msix_vectors=2)
    cmds = Commands(plat)
    for v in d.virqs:
        kern.free_irq(v)          # shut down and deactivated: masked, then DISCARDed
    assert cmds.take() == [INV, SYNC, DISCARD, SYNC] * 2
    kern.pci_free_irq_vectors(d.fn)
    assert cmds.take() == [MAPD]
    assert kern.lpi.allocator.allocated_blocks() == blocks
    assert kern.its.nodes[0].devices == {}
    dropped: list[Event] = []
    plat.observe(dropped.append, [EventKind.MSI_DROPPED])
    plat.bus.write(TRANSLATER, 0, 4, master="0000:00:01.0")     # a late write
    assert [e.reason for e in dropped] == ["unmapped-device"]


def test_a_pending_msi_is_discarded_with_its_vector(its: Any) -> None:
    plat, kern = its
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    kern.irq_set_affinity(d.virqs[0], {2})
    intid = kern.irq_to_desc(d.virqs[0]).irq_data.parent_data.hwirq
    d.fn.raise_msi(0)
    assert intid in plat.machine.gic.redists[2].lpi_pending
    d.free()
    assert intid not in plat.machine.gic.redists[2].lpi_pending


def test_set_and_clear_pending_are_int_and_clear(its: Any) -> None:
    plat, kern = its
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    cmds = Commands(plat)
    kern.disable_irq(d.virqs[0])
    kern.irq_set_irqchip_state(d.virqs[0], IRQCHIP_STATE_PENDING, True)
    kern.irq_set_irqchip_state(d.virqs[0], IRQCHIP_STATE_PENDING, False)
    assert [c for c in cmds.take() if c in (INT, CLEAR)] == [INT, CLEAR]
    kern.enable_irq(d.virqs[0])
    plat.run_until_idle(verify=True)
    assert d.runs == []
    kern.irq_set_irqchip_state(d.virqs[0], IRQCHIP_STATE_PENDING, True)
    plat.run_until_idle(verify=True)
    assert d.runs == [(0, 0)]
    with pytest.raises(KernelError) as e:
        kern.irq_get_irqchip_state(d.virqs[0], IRQCHIP_STATE_PENDING)
    assert e.value.errno == errno.EINVAL


def test_cpu_offline_moves_interrupts_with_movi(its: Any) -> None:
    plat, kern = its
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    kern.irq_set_affinity(d.virqs[0], {4, 5})
    assert kern.irq_get_effective_affinity(d.virqs[0]) == {4}
    d.fn.raise_msi(0)                          # pending on CPU4, which goes down
    cmds = Commands(plat)
    kern.cpu_offline(4)
    assert MOVI in cmds.take()
    plat.run_until_idle(verify=True)
    assert d.runs == [(0, 5)]
    kern.cpu_online(4)
    assert MAPC in cmds.take()


def _alias_board() -> Platform:
    """The ITS board with msi-map-mask folding the eight functions of a slot onto one
    DeviceID (an alias)."""
    import tempfile
    from pathlib import Path
    text = ITS_BOARD.read_text().replace("msi-map = <0x0 &its 0x0 0x10000>;",
                                         "msi-map = <0x0 &its 0x0 0x10000>;\n"
                                         "\t\tmsi-map-mask = <0xfff8>;")
    assert "msi-map-mask" in text
    with tempfile.TemporaryDirectory() as tmp:
        board = Path(tmp) / "alias.dts"
        board.write_text(text)
        (Path(tmp) / "include").symlink_to(BOARDS_DIR / "include")
        return Platform.from_devicetree(board)


def test_functions_behind_one_device_id_share_the_device() -> None:
    """The second function reuses the first one's ITT (sized for the first one's whole
    MSI-X table, as current Linux sizes it) and the device is never freed."""
    plat = _alias_board()
    kern = plat.boot()
    a = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 2, msix_vectors=8)
    b = Driver(plat, kern, "0000:00:01.1", PCI_IRQ_MSIX, 2, msix_vectors=2)
    [dev] = kern.its.nodes[0].devices.values()
    assert dev.shared and dev.nr_lpis == 8 and dev.device_id == 0x8
    assert [kern.get_cached_msi_msg(v).data for v in b.virqs] == [2, 3]
    a.fn.raise_msi(1)
    b.fn.raise_msi(0)
    plat.run_until_idle(verify=True)
    assert [v for v, _ in a.runs] == [1] and [v for v, _ in b.runs] == [0]
    a.free()
    assert kern.its.nodes[0].devices          # shared: not unmapped


def test_an_alias_finds_no_room_in_a_full_itt() -> None:
    """Linux sizes the ITT by the first function that signals with the DeviceID: an
    alias allocating later can run out of events (ENOSPC), as it does in Linux."""
    plat = _alias_board()
    kern = plat.boot()
    Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 2, msix_vectors=2)
    with pytest.raises(KernelError) as e:
        Driver(plat, kern, "0000:00:01.1", PCI_IRQ_MSIX, 2, msix_vectors=2)
    assert e.value.errno == errno.ENOSPC and "free aligned events" in str(e.value)


def test_the_itt_covers_the_msix_table_and_device_id_0_gets_32() -> None:
    plat = Platform.from_devicetree(ITS_BOARD)
    kern = plat.boot()
    Driver(plat, kern, "0000:00:00.0", PCI_IRQ_MSIX, 1, msix_vectors=4)   # RID 0
    Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 4, msix_vectors=64)
    devs = kern.its.nodes[0].devices
    assert (devs[0].nr_ites, devs[8].nr_ites) == (32, 64)
    dev = plat.add_platform_device("dma", slots=1)
    kern.platform_msi_domain_alloc_irqs(dev, 1, lambda desc, msg: None)
    assert devs[0x10000].nr_ites == 32                  # its_pmsi_prepare's minimum


@pytest.mark.parametrize("hw", [{"its_pta": True}, {"rd_coherent": False}],
                         ids=["pta", "non-coherent"])
def test_platform_msis_work_with_pta_and_a_non_coherent_its(hw: dict[str, Any]) -> None:
    plat = Platform.bare(4, its=(ITS_BASE,), direct_lpi=False, mbis=False, **hw)
    kern = plat.boot()
    dev = plat.add_platform_device("dma", slots=2)
    first = kern.platform_msi_domain_alloc_irqs(
        dev, 2, lambda desc, msg: dev.program_slot(desc.msi_index, msg.address, msg.data))
    runs: list[tuple[int, int]] = []
    for i in range(2):
        kern.request_irq(first + i, lambda irq, d: runs.append((irq, kern.this_cpu))
                         or IRQ_HANDLED, name=f"dma{i}")
    kern.irq_set_affinity(first + 1, {3})
    dev.raise_msi(0)
    dev.raise_msi(1)
    plat.run_until_idle(verify=True)
    assert sorted(runs) == [(first, 0), (first + 1, 3)]
    assert plat.event_count(EventKind.ITS_COMMAND_ERROR) == 0
    assert kern.its.nodes[0].pta == hw.get("its_pta", False)
    assert kern.its.nodes[0].needs_flushing == (not hw.get("rd_coherent", True))


def test_a_platform_device_without_a_device_id_is_refused() -> None:
    plat = Platform.bare(2, its=(ITS_BASE,), direct_lpi=False, mbis=False)
    kern = plat.boot()

    class NoId:
        name = "nameless"
    with pytest.raises(KernelError) as e:
        kern.platform_msi_domain_alloc_irqs(NoId(), 1, lambda desc, msg: None)
    assert e.value.errno == errno.EINVAL and "no DeviceID" in str(e.value)


def test_a_stalled_its_is_reported_not_raised() -> None:
    """A command error stalls the ITS (model choice); the driver retries it (GITS_CWRITER.
    Retry) a few times, then, like Linux, logs the queue timeout and goes on."""
    plat = Platform.bare(2, its=(ITS_BASE,), direct_lpi=False, mbis=False)
    kern = plat.boot()
    node = kern.its.nodes[0]
    with kern.running_on(0, Kind.PROCESS):
        node.send([[MAPTI | 0x1234 << 32, 0, 0, 0]])   # MAPTI to an unmapped device
    assert plat.machine.its[0].stalled
    assert plat.event_count(EventKind.ITS_COMMAND_ERROR) == 1 + 8       # and 8 retries
    assert len(kern.log.grep("retrying it")) == 8
    assert kern.log.grep("ITS queue timeout")
    assert kern.log.grep("stalled on a command error")


def test_each_command_batch_ends_with_a_sync_to_the_collection_linux_names(its: Any) -> None:
    """MAPC and INVALL are each followed by a SYNC to the CPU's collection; a MOVI's
    SYNC goes to the *source* collection (its_build_movi_cmd returns it)."""
    plat, kern = its
    words: list[tuple[int, str]] = []
    plat.observe(lambda e: words.append((e.value, e.detail)), [EventKind.ITS_COMMAND])
    kern.cpu_offline(3)
    kern.cpu_online(3)
    last = [(op, int(detail.split()[2], 16)) for op, detail in words][-4:]   # DW2s
    assert [op for op, _ in last] == [MAPC, SYNC, INVALL, SYNC]
    assert [dw2 >> 16 for op, dw2 in last if op == SYNC] == [3, 3]          # RDbase: PE 3
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    kern.irq_set_affinity(d.virqs[0], {2})
    kern.irq_set_affinity(d.virqs[0], {5})
    words.clear()
    kern.irq_set_affinity(d.virqs[0], {6})
    (movi, movi_detail), (sync, sync_detail) = words
    assert (movi, sync) == (MOVI, SYNC)
    assert int(movi_detail.split()[2], 16) & 0xFFFF == 6            # the new ICID
    assert int(sync_detail.split()[2], 16) >> 16 == 5               # SYNC: the old one


def test_activation_falls_back_to_online_cpus_for_a_non_managed_vector(its: Any) -> None:
    """its_select_cpu: a non-managed interrupt whose affinity has no online CPU is
    started on an online one, not refused."""
    plat, kern = its
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    kern.irq_set_affinity(d.virqs[0], {3})
    kern.free_irq(d.virqs[0])
    kern.cpu_offline(3)
    kern.request_irq(d.virqs[0], lambda irq, dev: IRQ_HANDLED, name="again")
    cpu = min(kern.irq_get_effective_affinity(d.virqs[0]))
    assert cpu != 3 and cpu in kern.online_cpus


def test_two_itses_each_translate_the_requester_ids_firmware_maps_to_them(
        tmp_path: Any) -> None:
    from tests.firmware.dt_variants import ITS_NODE, its_at, variant
    path = variant(tmp_path, "its",
                   (ITS_NODE, ITS_NODE + "\n\t\tits1: " + its_at(0x0C00_0000).lstrip()),
                   ("msi-map = <0x0 &its 0x0 0x10000>;",
                    "msi-map = <0x0 &its 0x0 0x100>, <0x100 &its1 0x1000 0xff00>;"))
    plat = Platform.from_devicetree(path)
    kern = plat.boot()
    assert len(kern.its.nodes) == 2
    near = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    far = Driver(plat, kern, "0000:01:00.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    assert near.fn.msi_message(0)[0] == TRANSLATER
    assert far.fn.msi_message(0)[0] == 0x0C01_0040
    assert 0x1000 in kern.its.nodes[1].devices and 0x8 in kern.its.nodes[0].devices
    near.fn.raise_msi(0)
    far.fn.raise_msi(0)
    plat.run_until_idle(verify=True)
    assert len(near.runs) == len(far.runs) == 1


def test_the_command_queue_wraps(its: Any) -> None:
    """A 64 KiB queue holds 2048 commands; 3000 mask/unmask pairs (12,000 commands with
    their SYNCs) wrap it several times without a stall or a timeout."""
    plat, kern = its
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    for _ in range(3000):
        kern.mask_irq(d.virqs[0])
        kern.unmask_irq(d.virqs[0])
    assert not kern.log.grep("ITS queue") and not plat.machine.its[0].stalled
    d.fn.raise_msi(0)
    plat.run_until_idle(verify=True)
    assert len(d.runs) == 1


@pytest.mark.parametrize(("board", "provider", "isolated"),
                         [("its", "its", True), ("gicv2m", "gicv2m", False)])
def test_acpi_descriptions_of_the_boards_boot_their_route(
        tmp_path: Any, board: str, provider: str, isolated: bool) -> None:
    """The MADT and IORT `directlpi acpi --from` writes boot the same route."""
    from directlpi.cli import main
    assert main(["acpi", "--from", str(BOARDS_DIR / f"{board}.dts"), "--out",
                 str(tmp_path)]) == 0
    plat = Platform.from_acpi(tmp_path / "apic.dat", tmp_path / "iort.dat")
    kern = plat.boot()
    assert kern.msi_provider == provider
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 2, msix_vectors=2)
    kern.irq_set_affinity(d.virqs[1], {2})
    d.fn.raise_msi(1)
    plat.run_until_idle(verify=True)
    assert d.runs == [(1, 2)]
    assert kern.msi_isolated(d.fn) is isolated


def test_no_usable_its_means_no_lpis(monkeypatch: pytest.MonkeyPatch) -> None:
    """its_init: "No ITS available, not enabling LPIs" -- probed before the LPI tables."""
    from directlpi.kernel.irqchip import gic_v3_its

    def broken(self: Any) -> None:
        raise KernelError(f"ITS@{self.base:#x}: no ITS detected, giving up", errno.ENODEV)
    monkeypatch.setattr(gic_v3_its.ItsNode, "probe", broken)
    plat = Platform.from_devicetree(ITS_BOARD)
    kern = plat.boot()
    assert kern.lpi is None and kern.its is None and kern.msi_provider == "none"
    assert kern.log.grep("no ITS detected") and kern.log.grep("not enabling LPIs")
    assert not plat.machine.gic.redists[0].lpis_enabled


def test_a_page_size_that_does_not_stick_is_retried_smaller(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """its_setup_baser: an ITS whose BASER takes no 64 KiB pages (Page_Size reads back
    16 KiB) gets its tables described in 16 KiB pages, and they work."""
    from directlpi.hw import its as hw_its
    original = hw_its.Its._w_BASER

    def no_64k(self: hw_its.Its, n: int, value: int) -> None:
        if GITS.BASER.Page_Size.get(value) >= 2:
            value = GITS.BASER.Page_Size.replace(value, 1)
        original(self, n, value)
    monkeypatch.setattr(hw_its.Its, "_w_BASER", no_64k)
    from directlpi.hw import mmio
    monkeypatch.setattr(mmio, "_TABLE_CACHE", {})     # frames bind handlers when first built
    plat = Platform.from_devicetree(ITS_BOARD)
    kern = plat.boot()
    assert len(kern.log.grep("psz 16K")) == 2
    size = plat.machine.its[0].table(0)
    assert size is not None and size[1] == 8 << 17         # every DeviceID, in 16K pages
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    d.fn.raise_msi(0)
    plat.run_until_idle(verify=True)
    assert len(d.runs) == 1
