"""``sends(address, data)``: the messages a device is programmed to send *now*.

PCI MSI-X: any table entry's message while MSI-X is enabled; PCI MSI: Message
Address with Message Data's low log2(2^MME) bits replaced by the vector, while
MSI is enabled; a platform device: any programmed slot.
"""

from __future__ import annotations

from directlpi.devices.platform_msi import PlatformMsiDevice
from tests.devices.rig import Rig

DOORBELL = 0x080C_0040          # GICR_SETLPIR of RD 1 on the default map
MSIX_ENTRY = 16


def msix_rig() -> tuple[Rig, int]:
    rig = Rig(posted=False)
    return rig, rig.cap(0, 0x11)


def test_msix_entries_are_current_only_while_msix_is_enabled() -> None:
    rig, msix = msix_rig()
    fn, bar, bus = rig.fns[0], rig.bars[0], rig.m.bus
    entry2 = bar + 2 * MSIX_ENTRY
    bus.write(entry2 + 0, DOORBELL, 4)
    bus.write(entry2 + 4, 0, 4)
    bus.write(entry2 + 8, 8200, 4)
    assert not fn.sends(DOORBELL, 8200)                        # programmed, not enabled
    rig.cfg_write(0, msix + 2, 0x8000, 2)                      # MSI-X Enable
    assert fn.sends(DOORBELL, 8200)                            # even while masked
    assert not fn.sends(DOORBELL, 8201) and not fn.sends(DOORBELL + 4, 8200)
    rig.cfg_write(0, msix + 2, 0xC000, 2)                      # Function Mask too
    assert fn.sends(DOORBELL, 8200)
    bus.write(entry2 + 8, 8300, 4)                             # the driver moves it
    assert fn.sends(DOORBELL, 8300) and not fn.sends(DOORBELL, 8200)
    rig.cfg_write(0, msix + 2, 0, 2)                           # MSI-X off
    assert not fn.sends(DOORBELL, 8300)
    assert not rig.fns[1].sends(DOORBELL, 8300)                # another function's


def test_msix_entry_written_as_one_64_bit_address() -> None:
    rig, msix = msix_rig()
    fn, bar, bus = rig.fns[0], rig.bars[0], rig.m.bus
    bus.write(bar + 0, 0x40_0000_0040, 8)                      # RD 123's SETLPIR
    bus.write(bar + 8, 8192, 4)
    rig.cfg_write(0, msix + 2, 0x8000, 2)
    assert fn.sends(0x40_0000_0040, 8192)
    assert not fn.sends(0x40, 8192)


def test_multi_msi_sends_each_enabled_vector_and_nothing_else() -> None:
    rig = Rig(posted=False, msi_vectors=8, msix_vectors=0)
    fn = rig.fns[0]
    msi = rig.cap(0, 0x05)
    rig.cfg_write(0, msi + 4, DOORBELL)                        # address lo
    rig.cfg_write(0, msi + 8, 0)                               # address hi (64-bit)
    rig.cfg_write(0, msi + 0xC, 0x2009, 2)                     # data (low bits are replaced)
    assert not fn.sends(DOORBELL, 0x2008)                      # MSI not enabled
    rig.cfg_write(0, msi + 2, (2 << 4) | 1, 2)                 # MME = 4 vectors, Enable
    assert [fn.sends(DOORBELL, 0x2008 | i) for i in range(4)] == [True] * 4
    assert not fn.sends(DOORBELL, 0x200C) and not fn.sends(DOORBELL, 0x2004)
    assert not fn.sends(DOORBELL, 0x1_2008)                    # Message Data is 16 bits
    assert not fn.sends(DOORBELL + 0x20000, 0x2008)
    rig.cfg_write(0, msi + 2, (0 << 4) | 1, 2)                 # MME = 1 vector
    assert fn.sends(DOORBELL, 0x2009) and not fn.sends(DOORBELL, 0x2008)
    rig.cfg_write(0, msi + 0xC, 0x3000, 2)
    assert fn.sends(DOORBELL, 0x3000) and not fn.sends(DOORBELL, 0x2009)
    rig.cfg_write(0, msi + 2, 0, 2)                            # MSI off
    assert not fn.sends(DOORBELL, 0x3000)


def test_platform_device_sends_its_programmed_slots() -> None:
    dev = PlatformMsiDevice("dma", 3)
    assert not dev.sends(0, 0)                                 # unprogrammed slots
    dev.program_slot(1, DOORBELL, 8300)
    assert dev.sends(DOORBELL, 8300) and not dev.sends(DOORBELL, 8301)
    dev.program_slot(1, DOORBELL, 8400)
    assert dev.sends(DOORBELL, 8400) and not dev.sends(DOORBELL, 8300)
    dev.program_slot(1, 0, 0)                                  # the driver frees it
    assert not dev.sends(DOORBELL, 8400) and not dev.sends(0, 0)
