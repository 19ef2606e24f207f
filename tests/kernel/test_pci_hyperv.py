"""The Hyper-V SPI route (``spi-pv``): pci-hyperv's guest SPIs, the host that routes them.

Observable outcomes: the domain hierarchy, the SPIs and messages each vector gets, the
host's messages and grants, what reaches the function's real registers and what only
the guest's view, handler runs and where, what the host and the kernel refuse.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from directlpi import Platform
from directlpi.errors import DirectLPIError
from directlpi.firmware.boards import BOARDS_DIR
from directlpi.hw.events import Event, EventKind
from directlpi.hw.hv_vpci import HV_MSI_ADDRESS
from directlpi.hw.regs import HV, HV_HYPERCALL_BASE, HV_PCI_CREATE_INTERRUPT
from directlpi.kernel.errors import KernelError
from directlpi.kernel.kernel import Kernel
from directlpi.kernel.pci import PCI_IRQ_MSI, PCI_IRQ_MSIX
from directlpi.kernel.pci_hyperv import HV_PCI_MSI_SPI_NR, HV_PCI_MSI_SPI_START
from tests.hw import arch
from tests.kernel.drivers import Driver

HV_BOARD = BOARDS_DIR / "hyperv-spi.dts"
V2M_SPIS = range(928, 992)          # the board's GICv2m frame (arm,msi-base-spi 928, 64)


@pytest.fixture
def hv() -> tuple[Platform, Kernel]:
    plat = Platform.from_devicetree(HV_BOARD)
    return plat, plat.boot()


def spi_of(kern: Kernel, virq: int) -> int:
    """The GIC INTID under ``virq`` (the hv_vpci_arm64 level's hwirq)."""
    desc = kern.irq_to_desc(virq)
    assert desc is not None
    return desc.irq_data.parent_data.hwirq


def _without_v2m(tmp_path: Path) -> Path:
    """hyperv-spi.dts without its GICv2m frame."""
    text = HV_BOARD.read_text()
    start = text.index("\t\t/* A GICv2m MSI frame")
    end = text.index("\t\t};\n", start) + len("\t\t};\n")
    board = tmp_path / "hv-no-v2m.dts"
    board.write_text(text[:start] + text[end:])
    return board


def hv_writes(plat: Platform) -> list[Event]:
    out: list[Event] = []
    plat.observe(out.append, [EventKind.MMIO_WRITE])
    return out


def test_the_domains_are_pci_hyperv_s(hv: Any) -> None:
    plat, kern = hv
    assert kern.msi_provider == "gicv2m+spi-pv"
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    names = [lvl.domain.name for lvl in kern.irq_to_desc(d.virqs[0]).levels()]
    assert names == ["HV-PCI-MSI", "hv_vpci_arm64", "GICv3"]       # PCI-MSI on top
    chips = {lvl.domain.name: lvl.chip.name for lvl in kern.irq_to_desc(d.virqs[0]).levels()}
    assert chips["hv_vpci_arm64"] == "MSI"
    assert kern.hv.nexus.name == "hv_vpci_arm64"
    assert kern.log.grep("hv_vpci: MSIs as guest SPIs [64:1019]")


def test_vectors_get_guest_spis_from_64_and_the_host_s_message(hv: Any) -> None:
    plat, kern = hv
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 4, msix_vectors=4)
    assert [spi_of(kern, v) for v in d.virqs] == [64, 65, 66, 67]
    msgs = [kern.get_cached_msi_msg(v) for v in d.virqs]
    assert {m.address for m in msgs} == {HV_MSI_ADDRESS}          # the host's doorbell
    # The host programmed the function's real entries; each data is a grant to it.
    assert [d.fn.msi_message(i) for i in range(4)] == [(m.address, m.data) for m in msgs]
    assert [plat.hv.grants[(d.fn.requester, m.data)] for m in msgs] == [64, 65, 66, 67]
    cfg = plat.bus.read(plat.gicd_base + arch.GICD_ICFGR + 4 * (64 // 16), 4)
    assert all(cfg >> (2 * (i % 16) + 1) & 1 for i in range(64, 68))     # edge


def test_an_msi_is_handled_where_gicd_irouter_says_and_a_move_is_irouter_only(hv: Any) -> None:
    plat, kern = hv
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 2, msix_vectors=2)
    writes = hv_writes(plat)
    before = d.fn.msi_message(1)
    kern.irq_set_affinity(d.virqs[1], {6})
    assert d.fn.msi_message(1) == before                      # the device untouched
    assert {e.source for e in writes} == {"GICD"}             # no message to the host
    irouter = plat.bus.read(plat.gicd_base + arch.GICD_IROUTER + 8 * spi_of(kern, d.virqs[1]),
                            8)
    assert irouter == 6                                       # MPIDR of CPU6 (Aff0 = 6)
    d.fn.raise_msi(1)
    plat.run_until_idle(verify=True)
    assert d.runs == [(1, 6)]


def test_a_multimsi_block_is_one_aligned_block_and_one_host_message(hv: Any) -> None:
    plat, kern = hv
    Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)     # SPI 64
    sent = len(kern.hv.channel.sent)
    d = Driver(plat, kern, "0000:00:02.0", PCI_IRQ_MSI, 8, msi_vectors=8)
    spis = [spi_of(kern, v) for v in d.virqs]
    assert spis == list(range(72, 80))                          # aligned to 8, not 65
    assert kern.hv.channel.sent[sent:] == [(HV_PCI_CREATE_INTERRUPT, 0)]
    base = kern.get_cached_msi_msg(d.virqs[0]).data
    assert base % 8 == 0
    assert [kern.get_cached_msi_msg(v).data for v in d.virqs] == [base + i for i in range(8)]
    # Each vector has its own SPI, hence its own IROUTER: per-vector affinity works.
    kern.irq_set_affinity(d.virqs[3], {2})
    d.fn.raise_msi(3)
    d.fn.raise_msi(0)
    plat.run_until_idle(verify=True)
    assert sorted(d.runs) == [(0, 0), (3, 2)]


def test_the_guest_never_writes_the_function_s_message_registers(hv: Any) -> None:
    plat, kern = hv
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    real = d.fn.msi_message(0)
    # What the guest wrote is in its (host-emulated) view; a guest writing the entry
    # itself (here: the address of GICD_SETSPI_NSR) changes only that view.
    bar = d.fn.bar0_base
    plat.bus.write(bar + 0, plat.gicd_base + 0x40, 4)
    plat.bus.write(bar + 8, 99, 4)
    assert d.fn.msi_message(0) == real
    assert plat.pci_host.guest_view(d.fn)["bar:0x0"] == plat.gicd_base + 0x40
    assert plat.bus.read(bar + 8, 4) == 99                     # the guest reads its view
    # Vector control is the function's: a guest mask reaches it.
    plat.bus.write(bar + 12, 1, 4)
    d.fn.raise_msi(0)
    assert d.fn.msix_pending(0)


def test_no_access_width_reaches_the_function_s_message_registers(hv: Any) -> None:
    plat, kern = hv
    x = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    m = Driver(plat, kern, "0000:00:02.0", PCI_IRQ_MSI, 4, msi_vectors=4)
    real_x, real_m = x.fn.msi_message(0), m.fn.msi_message(3)
    bar = x.fn.bar0_base
    plat.bus.write(bar, 0x1234_0802_0040, 8)                    # address lo + hi at once
    plat.bus.write(bar + 8, 0x1_0000_0007, 8)                   # data + vector control
    cap = plat.pci_host.ecam_address(m.fn.bdf) + 0x50
    flags = plat.bus.read(cap, 4)
    plat.bus.write(cap, flags & ~(0x70 << 16), 4)               # MME 0, through the header
    assert x.fn.msi_message(0) == real_x and m.fn.msi_message(3) == real_m
    assert plat.bus.read(bar, 8) == 0x1234_0802_0040             # the guest's view
    assert x.fn.msix_vectors and plat.bus.read(bar + 12, 4) == 1  # vector control: real
    m.fn.raise_msi(3)                                            # MME still the host's 2
    plat.run_until_idle(verify=True)
    assert m.runs == [(3, 0)]


def test_freeing_deletes_the_host_interrupt_and_gives_the_spi_back(hv: Any) -> None:
    plat, kern = hv
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 2, msix_vectors=2)
    data = kern.get_cached_msi_msg(d.virqs[0]).data
    d.free()
    assert plat.hv.grants == {}
    assert d.fn.msi_message(0) == (0, 0)                       # unprogrammed by the host
    assert kern.hv.allocator.allocated() == []
    en = plat.bus.read(plat.gicd_base + arch.GICD_ISENABLER + 8, 4)
    assert not en & 0b11                                       # SPIs 64, 65 disabled
    # A write the function still had in flight for the old grant is dropped, not raised.
    d.fn.spoof_msi(HV_MSI_ADDRESS, data)
    assert plat.event_count(EventKind.MSI_DROPPED) == 1
    again = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, fn=d.fn)
    assert spi_of(kern, again.virqs[0]) == 64


def test_another_device_cannot_raise_a_vector_the_host_granted_elsewhere(hv: Any) -> None:
    plat, kern = hv
    victim = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    attacker = plat.add_pci_device("0000:00:02.0", msix_vectors=1)
    drops: list[Event] = []
    plat.observe(drops.append, [EventKind.MSI_DROPPED])
    msg = kern.get_cached_msi_msg(victim.virqs[0])
    attacker.spoof_msi(msg.address, msg.data)
    plat.run_until_idle(verify=True)
    assert victim.runs == []
    assert [(e.reason, e.master) for e in drops] == [("not-granted", "0000:00:02.0")]
    [spoof] = plat.spoofed_msis
    assert spoof.doorbell == "HV_MSI_DOORBELL" and spoof.victim.startswith("nobody")
    assert not kern.msi_isolated(victim.fn)     # the guest kernel claims nothing (as Linux)


def test_a_cpu_cannot_reach_the_host_doorbell(hv: Any) -> None:
    plat, kern = hv
    victim = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    bad: list[Event] = []
    plat.observe(bad.append, [EventKind.BAD_ACCESS])
    plat.bus.write(HV_MSI_ADDRESS, kern.get_cached_msi_msg(victim.virqs[0]).data, 4)
    plat.run_until_idle()
    assert victim.runs == [] and [e.reason for e in bad] == ["not-guest-visible"]


def _msg(plat: Platform, gpa: int, **words: int) -> dict[str, int]:
    """Send the host one raw message from the guest's CPU (a handcrafted hypercall)."""
    from directlpi.hw.regs import HV_MSG_WORDS
    for i, name in enumerate(HV_MSG_WORDS):
        plat.memory.write_int(gpa + 4 * i, words.get(name, 0), 4)
    plat.bus.write(HV_HYPERCALL_BASE + HV.MSG_GPA.offset, gpa, 8)
    plat.bus.write(HV_HYPERCALL_BASE + HV.SIGNAL.offset, 1, 4)
    return {n: plat.memory.read_int(gpa + 4 * i, 4) for i, n in enumerate(HV_MSG_WORDS)}


@pytest.mark.parametrize(("words", "status"), [
    ({"vector": 928}, errno.EINVAL),              # the guest's GICv2m frame owns it
    ({"vector": 31}, errno.EINVAL),               # not an SPI
    ({"vector": 65, "vector_count": 2}, errno.EINVAL),   # a block not aligned to its size
    ({"vector": 64, "vector_count": 3}, errno.EINVAL),   # not a power of two
    ({"vector": 64, "wslot": 0x18}, errno.ENODEV),       # no function 00:03.0
    ({"vector": 64, "index": 4}, errno.EINVAL),          # no MSI-X entry 4
])
def test_the_host_refuses_what_it_cannot_route(hv: Any, words: dict[str, int],
                                               status: int) -> None:
    plat, kern = hv
    fn = plat.add_pci_device("0000:00:01.0", msix_vectors=4)
    gpa = kern.mm.alloc(64)
    reply = _msg(plat, gpa, type=HV_PCI_CREATE_INTERRUPT, **{"wslot": 0x08,
                                                              "vector_count": 1, **words})
    assert reply["status"] == status
    assert plat.hv.grants == {} and fn.msi_message(0) == (0, 0)
    ok = _msg(plat, gpa, type=HV_PCI_CREATE_INTERRUPT, wslot=0x08, vector=64, vector_count=1)
    assert ok["status"] == 0
    assert _msg(plat, gpa, type=HV_PCI_CREATE_INTERRUPT, wslot=0x08, vector=64,
                vector_count=1, index=1)["status"] == errno.EBUSY


def test_a_refused_route_fails_the_allocation_with_the_host_s_errno(hv: Any) -> None:
    plat, kern = hv
    fn = plat.add_pci_device("0000:00:01.0", msix_vectors=1)
    kern.pci.scan()
    # The guest's allocator walks into the GICv2m frame's SPIs (Linux's range does not
    # know them): the host refuses that SPI, and the kernel says so.
    kern.hv.allocator.ranges[0].mark(HV_PCI_MSI_SPI_START, V2M_SPIS.start - HV_PCI_MSI_SPI_START,
                                     True)
    with pytest.raises(KernelError) as exc:
        kern.pci_alloc_irq_vectors(fn, 1, 1, PCI_IRQ_MSIX)
    assert exc.value.errno == errno.EINVAL
    assert "the host refused to route SPI 928" in str(exc.value)
    assert plat.hv.grants == {}


def test_the_956_spis_run_out(tmp_path: Path) -> None:
    # The board without its GICv2m frame: every SPI 64..1019 is the vPCI driver's.
    plat = Platform.from_devicetree(_without_v2m(tmp_path))
    kern = plat.boot()
    assert kern.msi_provider == "spi-pv" and kern.hv.allocator.total == HV_PCI_MSI_SPI_NR == 956
    big = plat.add_pci_device("0000:00:01.0", msix_vectors=956)
    kern.pci.scan()
    assert kern.pci_alloc_irq_vectors(big, 956, 956, PCI_IRQ_MSIX) == 956
    assert len(plat.hv.grants) == 956
    one = plat.add_pci_device("0000:00:02.0", msix_vectors=1)
    kern.pci.scan()
    with pytest.raises(KernelError) as exc:
        kern.pci_alloc_irq_vectors(one, 1, 1, PCI_IRQ_MSIX)
    assert exc.value.errno == errno.ENOSPC
    assert "hv_vpci_arm64: no 1 free aligned SPIs left in its SPI range 64..1019" in str(
        exc.value)


def test_a_vpci_bridge_naming_an_msi_controller_is_a_firmware_error(tmp_path: Path) -> None:
    text = HV_BOARD.read_text().replace(
        "\t\t\tlinux,pci-domain = <0>;\n", "\t\t\tlinux,pci-domain = <0>;\n"
        "\t\t\tmsi-parent = <&v2m>;\n")
    board = tmp_path / "bad.dts"
    board.write_text(text)
    with pytest.raises(DirectLPIError) as exc:
        Platform.from_devicetree(board)
    assert "msi-parent: a vPCI bus under the VMBus names no MSI controller" in str(exc.value)


def test_a_kexec_kernel_takes_the_bus_back_from_its_predecessor(hv: Any) -> None:
    plat, kern = hv
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 2, msix_vectors=2)
    assert len(plat.hv.grants) == 2
    new = plat.kexec()          # the old kernel never freed its vectors
    # Bus still in D0: the new kernel left it (the host deleted the old interrupts and
    # unprogrammed the function) and entered again, then routes its own.
    assert new.log.grep("the bus is still in D0")
    assert plat.hv.grants == {} and d.fn.msi_message(0) == (0, 0)
    again = Driver(plat, new, "0000:00:01.0", PCI_IRQ_MSIX, 2, fn=d.fn)
    assert [spi_of(new, v) for v in again.virqs] == [64, 65]
    again.fn.raise_msi(1)
    plat.run_until_idle(verify=True)
    assert [vec for vec, _cpu in again.runs] == [1]


def test_the_host_routes_nothing_before_the_bus_enters_d0() -> None:
    plat = Platform.bare(cpus=2, lpis=False, mbis=False, hv_vpci=True)
    gpa = 0x4100_0000
    assert _msg(plat, gpa, type=HV_PCI_CREATE_INTERRUPT, wslot=8, vector=64,
                vector_count=1)["status"] == errno.EPROTO


def test_a_multimsi_block_composed_again_keeps_its_host_interrupt(hv: Any) -> None:
    plat, kern = hv
    d = Driver(plat, kern, "0000:00:02.0", PCI_IRQ_MSI, 4, msi_vectors=4)
    before = [kern.get_cached_msi_msg(v) for v in d.virqs]
    sent = len(kern.hv.channel.sent)
    desc = kern.irq_to_desc(d.virqs[0])
    from directlpi.kernel.irq.domain import irq_domain_activate_irq, irq_domain_deactivate_irq
    irq_domain_deactivate_irq(desc.irq_data)
    irq_domain_activate_irq(desc.irq_data, False)
    assert kern.hv.channel.sent[sent:] == []                  # no delete, no create
    assert kern.get_cached_msi_msg(d.virqs[0]) == before[0]


def test_a_route_refused_when_a_managed_vector_comes_back_is_logged_not_raised(hv: Any) -> None:
    plat, kern = hv
    from directlpi.kernel.pci import PCI_IRQ_AFFINITY
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX | PCI_IRQ_AFFINITY, 8, msix_vectors=8)
    kern.cpu_offline(7)                                        # vector 7's only CPU
    plat.hv.reserved_spis = frozenset(range(32, 1020))         # the host refuses from now
    kern.cpu_online(7)                                         # startup: create refused
    assert kern.log.grep("the host refused to route SPI") and kern.log.grep(
        "gets no interrupts")
    d.fn.raise_msi(7)
    plat.run_until_idle()
    assert (7, 7) not in d.runs


def test_a_host_bridge_outside_the_vmbus_is_an_ordinary_one(tmp_path: Path) -> None:
    text = HV_BOARD.read_text()
    start = text.index("\t\tpcie@3f000000 {")
    end = text.index("\t\t};\n", start) + len("\t\t};\n")
    pcie = text[start:end].replace("\n\t\t", "\n\t").replace("\t\tpcie@", "\tpcie@", 1)
    pcie = pcie.replace("\t\tlinux,pci-domain = <0>;\n",
                        "\t\tlinux,pci-domain = <0>;\n\t\tmsi-parent = <&v2m>;\n")
    body = text[:start] + text[end:]
    board = tmp_path / "root-bridge.dts"
    board.write_text(body[:body.rindex("};")] + pcie + "};\n")
    plat = Platform.from_devicetree(board)
    kern = plat.boot()
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    assert kern.get_cached_msi_msg(d.virqs[0]).address == 0x0802_0040     # GICv2m
    d.fn.raise_msi(0)
    plat.run_until_idle(verify=True)
    assert len(d.runs) == 1


def test_spis_the_host_refuses_are_skipped_not_stopped_on(hv: Any) -> None:
    plat, kern = hv
    fn = plat.add_pci_device("0000:00:01.0", msix_vectors=1)
    kern.pci.scan()
    kern.hv.allocator.ranges[0].mark(HV_PCI_MSI_SPI_START, V2M_SPIS.start - HV_PCI_MSI_SPI_START,
                                     True)               # 64..927 taken
    outcomes = []
    for _ in range(200):
        try:
            kern.pci_alloc_irq_vectors(fn, 1, 1, PCI_IRQ_MSIX)
        except KernelError as exc:
            outcomes.append(exc.errno)
            if exc.errno == errno.ENOSPC:
                break
            continue
        outcomes.append(spi_of(kern, kern.pci_irq_vector(fn, 0)))
        kern.pci_free_irq_vectors(fn)
        kern.hv.allocator.take_out(outcomes[-1], 1)          # keep it: walk the range
    # The GICv2m frame's 64 SPIs are refused once each, then 992..1019, then no more.
    assert outcomes == [errno.EINVAL] * 64 + list(range(992, 1020)) + [errno.ENOSPC]
    assert kern.log.grep("SPIs 928..928 refused by the host: not used again")


@pytest.mark.parametrize(("edit", "ok", "needle"), [
    # of_irq_find_parent walks on to a node with #interrupt-cells: v2m -> the GIC
    (("\t\tdma-coherent;\n", "\t\tdma-coherent;\n\t\tinterrupt-parent = <&v2m>;\n"), True, ""),
    (("\t\tranges;\n\t\tdma-coherent;", "\t\tranges = <0x0 0x0 0x0 0x1000 0x0 0x1000>;\n"
      "\t\tdma-coherent;"), False, "ranges: must be empty"),
    (("\t\tcompatible = \"microsoft,vmbus\";\n", "\t\tcompatible = \"microsoft,vmbus\";\n"
      "\t\tstatus = \"disabled\";\n"), True, "no MSI"),
])
def test_the_vmbus_node_is_read_as_linux_reads_it(tmp_path: Path, edit: tuple[str, str],
                                                  ok: bool, needle: str) -> None:
    text = HV_BOARD.read_text()
    assert edit[0] in text
    board = tmp_path / "variant.dts"
    board.write_text(text.replace(edit[0], edit[1], 1))
    if not ok:
        with pytest.raises(DirectLPIError) as exc:
            Platform.from_devicetree(board)
        assert needle in str(exc.value)
        return
    plat = Platform.from_devicetree(board)
    kern = plat.boot()
    if needle:                  # a disabled VMBus: its vPCI bus is not there at all
        assert kern.hv is None and plat.pci_host is None
    else:
        assert kern.hv is not None


def test_a_platform_msi_device_on_a_vpci_only_board_is_named_in_the_error(
        tmp_path: Path) -> None:
    plat = Platform.from_devicetree(_without_v2m(tmp_path))
    dma = plat.add_platform_device("dma", 2)
    kern = plat.boot()
    with pytest.raises(KernelError) as exc:
        kern.platform_msi_domain_alloc_irqs(dma, 2, lambda desc, msg: None)
    assert "platform device dma: no platform-MSI domain: the only MSI provider is the " \
        "vPCI bus's (spi-pv)" in str(exc.value)
