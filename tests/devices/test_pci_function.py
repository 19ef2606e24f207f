"""The PCI function model against the PCI specification: capabilities, MSI, MSI-X, DMA."""

from __future__ import annotations

import errno

import pytest

from directlpi import ConfigError, DirectLPIError, Platform

# Literal PCI offsets (PCI Local Bus spec), not imported from the model.
COMMAND = 0x04
STATUS = 0x06
CAP_PTR = 0x34
BAR0 = 0x10
BDF = "0000:00:01.0"


def ecam(plat: Platform, bdf: str, off: int, size: int = 4) -> int:
    bus, dev, fn = int(bdf[5:7], 16), int(bdf[8:10], 16), int(bdf[11])
    return plat.bus.read(0x3F00_0000 + (bus << 20 | dev << 15 | fn << 12) + off, size)


def ecam_w(plat: Platform, bdf: str, off: int, value: int, size: int = 4) -> None:
    bus, dev, fn = int(bdf[5:7], 16), int(bdf[8:10], 16), int(bdf[11])
    plat.bus.write(0x3F00_0000 + (bus << 20 | dev << 15 | fn << 12) + off, value, size)


def caps(plat: Platform, bdf: str) -> dict[int, int]:
    out = {}
    pos = ecam(plat, bdf, CAP_PTR, 1)
    while pos:
        out[ecam(plat, bdf, pos, 1)] = pos
        pos = ecam(plat, bdf, pos + 1, 1)
    return out


def dma_log(plat: Platform) -> list[tuple[int, int, str]]:
    log: list[tuple[int, int, str]] = []
    plat.machine.bus.add_dma_hook(lambda a, v, s, m: log.append((a, v, m)))
    return log


def test_config_space_through_ecam_lists_the_capabilities() -> None:
    plat = Platform.default(cpus=2)
    plat.add_pci_device(BDF, msi_vectors=4, msix_vectors=16)
    assert ecam(plat, BDF, 0x00, 2) == 0x1AF4
    assert ecam(plat, BDF, STATUS, 2) & 0x10                  # capability list
    assert set(caps(plat, BDF)) == {0x05, 0x11}                # MSI and MSI-X
    assert ecam(plat, "0000:00:05.0", 0x00, 2) == 0xFFFF       # no function there
    assert ecam(plat, BDF, COMMAND, 2) & 0x6 == 0x6            # firmware: MEM and BME on
    assert ecam(plat, BDF, BAR0) & 0xFFFF_F000 != 0            # BAR0 assigned


def test_msi_capability_fields() -> None:
    plat = Platform.default(cpus=2)
    plat.add_pci_device(BDF, msi_vectors=8, msi_64bit=False, msi_per_vector_mask=True)
    msi = caps(plat, BDF)[0x05]
    flags = ecam(plat, BDF, msi + 2, 2)
    assert (flags >> 1) & 7 == 3                               # Multiple Message Capable: 8
    assert not flags & 0x80 and flags & 0x100                   # 32-bit, per-vector masking
    ecam_w(plat, BDF, msi + 2, 0xFFFF, 2)
    assert ecam(plat, BDF, msi + 2, 2) & 0x7F == 0x77          # only Enable and MME stick


def test_multimsi_vector_i_writes_base_or_i_to_the_one_address() -> None:
    plat = Platform.default(cpus=2)
    fn = plat.add_pci_device(BDF, msi_vectors=4)
    log = dma_log(plat)
    msi = caps(plat, BDF)[0x05]
    ecam_w(plat, BDF, msi + 4, 0x4000_1000)                    # address lo
    ecam_w(plat, BDF, msi + 8, 0)                              # address hi
    ecam_w(plat, BDF, msi + 0xC, 0x2008, 2)                    # data base
    ecam_w(plat, BDF, msi + 2, (2 << 4) | 1, 2)                # MME = 4 vectors, enable
    for i in range(4):
        assert fn.raise_msi(i)
    assert log == [(0x4000_1000, 0x2008 | i, BDF) for i in range(4)]
    with pytest.raises(DirectLPIError) as exc:
        fn.raise_msi(4)
    assert exc.value.errno == errno.EINVAL


def test_masked_msi_vector_is_pending_and_sent_on_unmask() -> None:
    plat = Platform.default(cpus=2)
    fn = plat.add_pci_device(BDF, msi_vectors=2, msi_per_vector_mask=True)
    log = dma_log(plat)
    msi = caps(plat, BDF)[0x05]
    ecam_w(plat, BDF, msi + 4, 0x4000_2000)
    ecam_w(plat, BDF, msi + 0xC, 0x40, 2)
    ecam_w(plat, BDF, msi + 0x10, 0b10)                        # mask vector 1
    ecam_w(plat, BDF, msi + 2, (1 << 4) | 1, 2)
    assert not fn.raise_msi(1)
    assert ecam(plat, BDF, msi + 0x14) == 0b10                 # pending bit
    assert log == []
    ecam_w(plat, BDF, msi + 0x10, 0)
    assert log == [(0x4000_2000, 0x41, BDF)]
    assert ecam(plat, BDF, msi + 0x14) == 0


def test_msix_table_and_pba_in_bar0() -> None:
    plat = Platform.default(cpus=2)
    fn = plat.add_pci_device(BDF, msix_vectors=4)
    log = dma_log(plat)
    msix = caps(plat, BDF)[0x11]
    assert ecam(plat, BDF, msix + 2, 2) & 0x7FF == 3           # table size N - 1
    bar = ecam(plat, BDF, BAR0) & ~0xF
    entry = bar + 16 * 2
    plat.bus.write(entry + 0, 0x80C_0040, 4)
    plat.bus.write(entry + 4, 0, 4)
    plat.bus.write(entry + 8, 0x2005, 4)
    ecam_w(plat, BDF, msix + 2, 0x8000, 2)                     # MSI-X enable
    assert not fn.raise_msi(2)                                 # entries reset masked
    assert plat.bus.read(bar + 0x8000, 8) == 1 << 2            # PBA bit
    plat.bus.write(entry + 12, 0, 4)                           # unmask: pending goes out
    assert log == [(0x80C_0040, 0x2005, BDF)]
    ecam_w(plat, BDF, msix + 2, 0xC000, 2)                     # function mask
    assert not fn.raise_msi(2)
    ecam_w(plat, BDF, msix + 2, 0x8000, 2)
    assert len(log) == 2


def test_bar0_decodes_where_the_bar_says_and_only_with_memory_enabled() -> None:
    plat = Platform.default(cpus=2)
    fn = plat.add_pci_device(BDF, msix_vectors=4)
    plat.add_pci_device("0000:00:02.0", msix_vectors=4)
    bar = ecam(plat, BDF, BAR0) & ~0xF
    plat.bus.write(bar + 8, 0x1234, 4)
    assert plat.bus.read(bar + 8, 4) == 0x1234                 # the page is now known
    ecam_w(plat, BDF, 0x04, 0x0004, 2)                          # memory decoding off
    assert plat.bus.read(bar + 8, 4) == 0xFFFF_FFFF
    ecam_w(plat, BDF, 0x04, 0x0006, 2)
    moved = bar + 0x10_0000
    ecam_w(plat, BDF, BAR0, moved)                              # BAR0 moved
    assert plat.bus.read(moved + 8, 4) == 0x1234
    assert plat.bus.read(bar + 8, 4) == 0xFFFF_FFFF             # nothing there any more
    fn.cfg_write(BAR0, bar, 4)                                  # moved back, not via ECAM
    assert plat.bus.read(bar + 8, 4) == 0x1234
    assert plat.bus.read(moved + 8, 4) == 0xFFFF_FFFF


def test_no_bus_mastering_no_msi() -> None:
    plat = Platform.default(cpus=2)
    fn = plat.add_pci_device(BDF, msi_vectors=1)
    log = dma_log(plat)
    msi = caps(plat, BDF)[0x05]
    ecam_w(plat, BDF, msi + 4, 0x4000_0000)
    ecam_w(plat, BDF, msi + 2, 1, 2)
    ecam_w(plat, BDF, COMMAND, 0x2, 2)                         # memory only, no BME
    assert not fn.raise_msi(0)
    assert log == [] and fn.dropped == 1


def test_the_messages_it_sends_now_are_what_the_audit_asks_about() -> None:
    plat = Platform.default(cpus=2)
    fn = plat.add_pci_device(BDF, msi_vectors=2)
    msi = caps(plat, BDF)[0x05]
    ecam_w(plat, BDF, msi + 4, 0x80A_0040)
    ecam_w(plat, BDF, msi + 0xC, 0x2000, 2)
    ecam_w(plat, BDF, msi + 2, (1 << 4) | 1, 2)
    assert fn.sends(0x80A_0040, 0x2001)
    assert not fn.sends(0x80A_0040, 0x2002)
    ecam_w(plat, BDF, msi + 4, 0x80C_0040)                     # reprogrammed
    assert not fn.sends(0x80A_0040, 0x2001)                    # the old one is not current


@pytest.mark.parametrize("kwargs,needle", [
    ({"msi_vectors": 3}, "msi_vectors=3"),
    ({"msix_vectors": 4096}, "msix_vectors=4096"),
])
def test_impossible_functions_are_refused(kwargs: dict[str, int], needle: str) -> None:
    plat = Platform.default(cpus=1)
    with pytest.raises(ConfigError, match=needle):
        plat.add_pci_device(BDF, **kwargs)


@pytest.mark.parametrize("bdf", ["00:01.0", "0000:00:20.0", "0000:00:01.8", "zz"])
def test_bad_pci_addresses_are_refused(bdf: str) -> None:
    with pytest.raises(ConfigError, match=r"DDDD:BB:DD\.F"):
        Platform.default(cpus=1).add_pci_device(bdf, msi_vectors=1)


def test_two_functions_at_one_address_are_refused() -> None:
    plat = Platform.default(cpus=1)
    plat.add_pci_device(BDF, msi_vectors=1)
    with pytest.raises(ConfigError) as exc:
        plat.add_pci_device(BDF, msi_vectors=1)
    assert exc.value.errno == errno.EEXIST


def test_bare_platforms_have_no_pci() -> None:
    with pytest.raises(ConfigError, match="no PCI host bridge"):
        Platform.bare(cpus=1).add_pci_device(BDF, msi_vectors=1)


def test_platform_msi_device_slots() -> None:
    plat = Platform.default(cpus=1)
    dev = plat.add_platform_device("dma", slots=2)
    log = dma_log(plat)
    assert not dev.raise_msi(0)                                # unprogrammed
    dev.program_slot(1, 0x80A_0040, 8300)
    assert dev.raise_msi(1)
    assert log == [(0x80A_0040, 8300, "dma")]
    with pytest.raises(DirectLPIError):
        dev.raise_msi(2)
    with pytest.raises(ConfigError):
        plat.add_platform_device("dma", slots=1)
