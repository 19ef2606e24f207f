"""Reads that complete from a device land its posted writes first (PCIe ordering).

A completion may not pass a posted write in the same direction: a CPU read of a
function's configuration space (ECAM) or of its BAR returns only after that
function's posted writes have landed -- and nobody else's.  CPU writes to
configuration space or BARs land nothing (the model makes a driver read back).
"""

from __future__ import annotations

import errno

import pytest

from directlpi import DirectLPIError, EventKind
from directlpi.devices.pci import PciFunction, PciHostBridge
from directlpi.devices.platform_msi import PlatformMsiDevice
from tests.devices.rig import (
    ECAM_BASE,
    ECAM_SIZE,
    FNS,
    PCI_COMMAND,
    PCI_MEM_BASE,
    PCI_MEM_SIZE,
    PLAT_DEV,
    RAM,
    Rig,
    ecam_addr,
    machine,
)

MSIX_ENTRY = 16           # bytes per MSI-X table entry; Message Data at +8


def test_a_config_read_lands_that_functions_writes_before_it_returns() -> None:
    rig = Rig()
    order: list[tuple[EventKind, str | None, str]] = []
    rig.m.hub.subscribe(lambda e: order.append((e.kind, e.master, e.source)),
                        [EventKind.DMA_LANDED, EventKind.MMIO_READ])
    rig.issue(0, 1)
    rig.issue(0, 2)
    rig.issue(1, 7)
    assert rig.cfg_read(0, PCI_COMMAND, 2) & 0x6 == 0x6
    assert order == [(EventKind.DMA_LANDED, FNS[0], "BUS"), (EventKind.DMA_LANDED, FNS[0], "BUS"),
                     (EventKind.MMIO_READ, None, "PCI ECAM")]
    assert rig.landed == [(FNS[0], 1), (FNS[0], 2)]
    assert (rig.ram_word(0), rig.ram_word(1)) == (2, 0)       # function 1's still in flight
    assert rig.m.bus.posted_pending == 1
    rig.cfg_read(1, PCI_COMMAND, 2)
    assert rig.ram_word(1) == 7 and rig.m.bus.posted_pending == 0


def test_a_bar_read_returns_what_the_functions_own_posted_write_put_there() -> None:
    rig = Rig()
    bus = rig.m.bus
    entry1_data = rig.bars[0] + MSIX_ENTRY + 8
    rig.fns[0].spoof_msi(entry1_data, 0x1111)     # function 0 writes into its own table
    rig.fns[1].spoof_msi(entry1_data + MSIX_ENTRY, 0x2222)   # function 1 into entry 2
    rig.issue(1, 5)
    assert bus.read(entry1_data, 4) == 0x1111
    assert bus.read(entry1_data + MSIX_ENTRY, 4) == 0          # function 1's: not landed
    assert rig.ram_word(1) == 0 and bus.posted_pending == 2
    assert bus.read(rig.bars[1] + 8, 4) == 0                   # a read of function 1's BAR
    assert bus.read(entry1_data + MSIX_ENTRY, 4) == 0x2222 and rig.ram_word(1) == 5


def test_a_pba_read_lands_the_functions_writes() -> None:
    rig = Rig()
    rig.issue(0, 3)
    rig.m.bus.read(rig.bars[0] + 0x8000, 8)        # the PBA, 32 KiB into BAR0 here
    assert rig.ram_word(0) == 3


def test_cpu_config_and_bar_writes_land_nothing() -> None:
    rig = Rig()
    bus = rig.m.bus
    rig.issue(0, 1)
    rig.cfg_write(0, PCI_COMMAND, 0x6, 2)                      # as firmware left it
    msix = rig.cap(0, 0x11)                                    # a read: lands the write
    assert rig.landed == [(FNS[0], 1)]
    rig.issue(0, 2)
    rig.cfg_write(0, msix + 2, 0x8000, 2)                      # MSI-X enable
    bus.write(rig.bars[0] + 8, 0x4242, 4)                      # entry 0's data
    bus.write(rig.bars[0] + 12, 0, 4)                          # unmask entry 0
    assert rig.landed == [(FNS[0], 1)] and rig.ram_word(0) == 1
    assert bus.posted_pending == 1


def test_reads_that_no_function_completes_land_nothing() -> None:
    rig = Rig()
    bus = rig.m.bus
    rig.issue(0, 1)
    assert bus.read(ecam_addr("0000:00:07.0", PCI_COMMAND), 2) == 0xFFFF   # master abort
    assert bus.read(PCI_MEM_BASE + PCI_MEM_SIZE - 4, 4) == 0xFFFFFFFF      # no BAR there
    assert bus.read(RAM + 0x1000, 4) == 0                                  # RAM: the host's
    assert bus.read(rig.m.gicd_base, 4) >= 0                               # a GIC frame
    assert rig.landed == [] and bus.posted_pending == 1


def test_read_slot_lands_that_devices_writes_first() -> None:
    rig = Rig()
    dev = rig.dev
    dev.program_slot(1, RAM + 0x900, 77)
    assert dev.raise_msi(1)
    rig.issue(0, 9)
    assert rig.m.bus.read(RAM + 0x900, 4) == 0
    assert dev.read_slot(1) == (RAM + 0x900, 77)
    assert rig.landed == [(PLAT_DEV, 77)] and rig.m.bus.read(RAM + 0x900, 4) == 77
    assert rig.ram_word(0) == 0 and rig.m.bus.posted_pending == 1   # function 0's stays


def test_read_slot_of_a_missing_slot_raises_and_lands_nothing() -> None:
    rig = Rig()
    rig.issue(2, 1)                                            # the platform device's
    with pytest.raises(DirectLPIError) as exc:
        rig.dev.read_slot(2)
    assert exc.value.errno == errno.EINVAL
    assert rig.m.bus.posted_pending == 1


def test_devices_not_wired_for_flushing_still_read() -> None:
    m = machine(posted=False)
    host = PciHostBridge(ecam_base=ECAM_BASE, ecam_size=ECAM_SIZE, mem_base=PCI_MEM_BASE,
                         mem_size=PCI_MEM_SIZE)
    m.bus.map_window(ECAM_BASE, ECAM_SIZE, host.ecam_window)
    fn = PciFunction(FNS[0], msix_vectors=1)
    host.attach(fn, m.bus.write)                               # no flush given
    assert fn.flush is None
    assert m.bus.read(ecam_addr(FNS[0], 0), 2) == 0x1AF4
    dev = PlatformMsiDevice("dev", 1)
    dev.program_slot(0, RAM, 1)
    assert dev.read_slot(0) == (RAM, 1)
