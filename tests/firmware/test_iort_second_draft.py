"""The IORT, second draft: node revisions of the fields we fill, node identifiers, the
PROPOSED GIC MSI target node in its two modes (Direct LPI, MBI) with Output Base 0,
named components for platform-MSI devices, the per-device MBI-or-Direct-LPI choice,
SMMUs refused by name, and the UEFI memory map in ``Platform.from_acpi``."""

from __future__ import annotations

import errno
import re
import struct

import pytest
from tests.firmware.tables import rewrite as _patched

from directlpi import IRQ_HANDLED, PCI_IRQ_MSIX, KernelError, Platform
from directlpi.firmware.acpi import (
    GIC_MSI_TARGET_LEN,
    ID_MAPPING_LEN,
    IORT_FIXED_LEN,
    RC_NODE_LEN,
    ComponentRoute,
    DirectLpiRoute,
    FirmwareError,
    ItsRoute,
    MbiRoute,
    build_iort,
    build_madt,
    checksum_fix,
    component_path,
    read_iort,
)
from directlpi.hw.regs import GICR

GICD_SETSPI_NSR = 0x0800_0000 + 0x40
MADT = build_madt(Platform.default(cpus=4).board)


def _nodes(raw: bytes) -> list[tuple[int, int, int, int]]:
    """(offset, type, length, revision) of every node."""
    count, off, _ = struct.unpack_from("<III", raw, 36)
    out = []
    for _ in range(count):
        kind, length, rev = struct.unpack_from("<BHB", raw, off)
        out.append((off, kind, length, rev))
        off += length
    return out



# -- revisions -----------------------------------------------------------------------------------

def test_nodes_are_written_at_the_revisions_whose_fields_we_fill() -> None:
    raw = build_iort((DirectLpiRoute(0, 0, 0x100), MbiRoute(0, 0x100, 0x100, 256, 64),
                      ItsRoute(0, 0x200, 0x10, its_id=3),
                      ComponentRoute("\\_SB_.DMA0", "direct-lpi")))
    assert raw[8] == 0                                            # table revision 0
    kinds = {(kind, rev) for _off, kind, _len, rev in _nodes(raw)}
    # GIC MSI target r1 (twice: Direct LPI and MBI), ITS group r0, root complex r1 (it
    # defines Memory Address Size Limit), named component r2: edk2's choice below table
    # revision 5.
    assert kinds == {(0x80, 1), (0x00, 0), (0x02, 1), (0x01, 2)}
    rc = next(off for off, kind, _l, _r in _nodes(raw) if kind == 2)
    assert raw[rc + 16 + 16] == 48                                # the address size limit
    # At table revision 0 the header word at +4 is Reserved: every node writes 0.
    assert all(struct.unpack_from("<I", raw, off + 4)[0] == 0 for off, *_ in _nodes(raw))


def test_from_table_revision_3_node_identifiers_are_unique() -> None:
    raw = build_iort((DirectLpiRoute(0, 0, 0x100), ItsRoute(0, 0x100, 1, its_id=0)))
    rev3 = _patched(raw, 8, "<B", 3)
    with pytest.raises(FirmwareError, match=r"IORT: offset 0x4c \(node 1\) Identifier: 0x0 is "
                                            r"also the node's at 0x30; from table revision 3"):
        read_iort(rev3)
    t = rev3
    for i, (off, *_rest) in enumerate(_nodes(raw)):
        t = _patched(t, off + 4, "<I", 0x10 + i)
    assert read_iort(t).revision == 3 and read_iort(t).direct_lpi == (DirectLpiRoute(0, 0, 0x100),)
    assert read_iort(raw).revision == 0                          # revision 0: no identifiers


def test_the_proposed_node_has_a_revision_field_the_reader_checks() -> None:
    raw = _patched(build_iort((DirectLpiRoute(0, 0, 1),)), IORT_FIXED_LEN + 3, "<B", 0)
    with pytest.raises(FirmwareError, match=r"\(GIC MSI target\) Revision: 0, this reader knows "
                                            "revision 1 of the proposed node"):
        read_iort(raw)


# -- the GIC MSI target: Direct LPI or MBI, Output Base 0 ------------------------------------------

def test_a_mapping_to_a_gic_msi_target_has_output_base_zero() -> None:
    raw = build_iort((DirectLpiRoute(0, 0, 0x100),))
    mapping = IORT_FIXED_LEN + GIC_MSI_TARGET_LEN + RC_NODE_LEN
    bad = _patched(raw, mapping + 8, "<I", 0x40)
    with pytest.raises(FirmwareError, match=r"ID mapping 0 Output Base: 0x40, must be 0: a GIC "
                                            "MSI target takes no DeviceID"):
        read_iort(bad)


@pytest.mark.parametrize(("flags", "spis", "message"), [
    (3, (0, 0), "bit 0 (Direct LPI) and bit 1 (MBI) are both set"),
    (0, (0, 0), "bit 0 (Direct LPI) is clear, and bit 1 (MBI) too"),
    (1 | 8, (0, 0), "reserved bits set"),
    (1, (256, 8), "must be 0 for Direct LPI"),
    (2, (16, 8), "not a range of SPIs"),
    (2, (1016, 8), "not a range of SPIs"),
    (2, (256, 0), "not a range of SPIs"),
])
def test_a_gic_msi_target_says_exactly_one_thing(flags: int, spis: tuple[int, int],
                                                 message: str) -> None:
    raw = build_iort((DirectLpiRoute(0, 0, 1),))
    t = _patched(raw, IORT_FIXED_LEN + 16, "<I", flags)
    t = _patched(t, IORT_FIXED_LEN + 20, "<I", spis[0])
    t = _patched(t, IORT_FIXED_LEN + 24, "<I", spis[1])
    with pytest.raises(FirmwareError, match=re.escape(message)):
        read_iort(t)


def test_two_direct_lpi_targets_or_overlapping_mbi_targets_are_refused() -> None:
    two = build_iort((MbiRoute(0, 0, 1, 256, 64), MbiRoute(0, 1, 1, 512, 64)))
    first_mbi = IORT_FIXED_LEN + GIC_MSI_TARGET_LEN
    with pytest.raises(FirmwareError, match=r"SPIs 288\+64 overlap the MBI target's at 0x4c"):
        read_iort(_patched(two, first_mbi + GIC_MSI_TARGET_LEN + 20, "<I", 288))
    as_dlpi = _patched(_patched(_patched(two, first_mbi + 16, "<I", 1), first_mbi + 20, "<I", 0),
                       first_mbi + 24, "<I", 0)
    with pytest.raises(FirmwareError, match="a second Direct LPI target"):
        read_iort(as_dlpi)


def test_mbi_and_direct_lpi_are_chosen_per_requester_id_range() -> None:
    iort = build_iort((DirectLpiRoute(0, 0, 0x100), MbiRoute(0, 0x100, 0xFF00, 256, 128)))
    table = read_iort(iort)
    assert table.direct_lpi == (DirectLpiRoute(0, 0, 0x100),)
    assert table.mbi == (MbiRoute(0, 0x100, 0xFF00, 256, 128),) and table.mbi_ranges == (
        (256, 128),)
    plat = Platform.from_acpi(MADT, iort)
    kern = plat.boot()
    assert kern.mbi is not None and kern.direct_lpi is not None
    seen: list[int] = []
    addresses = {}
    for bdf in ("0000:00:02.0", "0000:01:00.0"):       # RID 0x10 (Direct LPI), 0x100 (MBI)
        fn = plat.add_pci_device(bdf, msix_vectors=1)
        assert kern.pci_alloc_irq_vectors(fn, 1, 1, PCI_IRQ_MSIX) == 1
        virq = kern.pci_irq_vector(fn, 0)
        kern.request_irq(virq, lambda irq, dev: (seen.append(irq), IRQ_HANDLED)[1], name=bdf)
        fn.raise_msi(0)
        plat.run_until_idle()
        addresses[bdf] = fn.msi_message(0)
    assert len(seen) == 2
    assert addresses["0000:00:02.0"][0] - GICR.SETLPIR.offset in {plat.gicr_base(c)
                                                                  for c in range(4)}
    assert addresses["0000:01:00.0"][0] == GICD_SETSPI_NSR
    assert 256 <= addresses["0000:01:00.0"][1] < 384


def test_an_mbi_range_the_gic_cannot_give_is_a_firmware_error() -> None:
    iort = build_iort((MbiRoute(0, 0, 0x100, 256, 128),))
    with pytest.raises(FirmwareError, match=r"GIC MSI target SPIs 256\+128: the GIC has no MBIs"):
        Platform.from_acpi(MADT, iort, mbis=False)
    with pytest.raises(FirmwareError, match=r"SPIs 256\+128: the GIC's SPIs end at 223"):
        Platform.from_acpi(MADT, iort, spis=192)


# -- named components: platform-MSI devices ------------------------------------------------------

def _platform_msi(plat: Platform, name: str) -> tuple[int, int]:
    kern = plat.kernel
    assert kern is not None
    dev = plat.add_platform_device(name, slots=1)
    virq = kern.platform_msi_domain_alloc_irqs(
        dev, 1, lambda desc, msg: dev.program_slot(desc.msi_index, msg.address, msg.data))
    seen: list[int] = []
    kern.request_irq(virq, lambda irq, d: (seen.append(irq), IRQ_HANDLED)[1], name=name)
    dev.raise_msi(0)
    plat.run_until_idle()
    assert seen == [virq]
    return dev.msi_message(0)


def test_named_components_choose_their_msi_controller() -> None:
    iort = build_iort((DirectLpiRoute(0, 0, 0x10000),
                       ComponentRoute(component_path("dma0"), "direct-lpi"),
                       ComponentRoute("\\_SB_.UART", "mbi", spis=(512, 32))))
    table = read_iort(iort)
    assert [(c.path, c.name, c.target) for c in table.components] == [
        ("\\_SB_.DMA0", "dma0", "direct-lpi"), ("\\_SB_.UART", "uart", "mbi")]
    plat = Platform.from_acpi(MADT, iort)
    plat.boot()
    assert _platform_msi(plat, "dma0")[0] - GICR.SETLPIR.offset in {plat.gicr_base(c)
                                                                    for c in range(4)}
    addr, data = _platform_msi(plat, "uart")
    assert addr == GICD_SETSPI_NSR and 512 <= data < 544         # the component's MBI SPIs


def test_a_named_component_mapped_to_an_its_gets_its_device_id() -> None:
    from directlpi.firmware.acpi import build_madt as madt_of

    board = Platform.from_devicetree(
        __import__("directlpi.firmware.boards", fromlist=["BOARDS_DIR"]).BOARDS_DIR
        / "its.dts").board
    its_id = board.gic.its[0].translation_id
    iort = build_iort((ItsRoute(0, 0, 0x10000, its_id=its_id),
                       ComponentRoute("\\_SB_.DMA0", "its", its_id=its_id, device_id=0x1A000)))
    plat = Platform.from_acpi(madt_of(board), iort)
    plat.boot()
    _platform_msi(plat, "dma0")
    assert plat.device_id_of("dma0") == 0x1A000


def test_a_described_component_whose_controller_is_absent_gets_no_domain() -> None:
    iort = build_iort((ComponentRoute("\\_SB_.DMA0", "direct-lpi"),))
    plat = Platform.from_acpi(MADT, iort, direct_lpi=[True, False, True, True])
    kern = plat.boot()                                # R8: the kernel refuses Direct LPI
    dev = plat.add_platform_device("dma0", slots=1)
    with pytest.raises(KernelError, match="firmware routes its MSIs to gic-direct-lpi") as exc:
        kern.platform_msi_domain_alloc_irqs(dev, 1, lambda desc, msg: None)
    assert exc.value.errno == errno.ENODEV


@pytest.mark.parametrize(("path", "ok"), [("\\_SB_.DMA0", True), ("\\_SB_.PCI0.DEV_", True),
                                          ("_SB_.DMA0", False), ("\\_SB_.DMA", False),
                                          ("\\_SB_.0DMA", False), ("\\_SB_.dma0", False)])
def test_a_named_component_path_is_an_acpi_name_path(path: str, ok: bool) -> None:
    if ok:
        assert read_iort(build_iort((ComponentRoute(path, "direct-lpi"),))).components[0].path \
            == path
    else:
        with pytest.raises(FirmwareError, match="not an absolute ACPI name path"):
            build_iort((ComponentRoute(path, "direct-lpi"),))


def test_a_named_component_has_one_single_mapping_to_its_msi_controller() -> None:
    raw = build_iort((ComponentRoute("\\_SB_.DMA0", "direct-lpi"),))
    nc = next(off for off, kind, _l, _r in _nodes(raw) if kind == 1)
    ref = struct.unpack_from("<I", raw, nc + 12)[0]
    with pytest.raises(FirmwareError, match="a named component's MSIs are one single mapping"):
        read_iort(_patched(raw, nc + ref + 16, "<I", 0))
    with pytest.raises(FirmwareError, match="Device Object Name at"):
        read_iort(_patched(raw, nc + 29, "<B", 0x80))


# -- an SMMU in the way is refused, naming the nodes ---------------------------------------------

def _behind_smmu(kind: int) -> bytes:
    """Root complex -> SMMU (type ``kind``) -> the Direct LPI target."""
    target = IORT_FIXED_LEN
    smmu = target + GIC_MSI_TARGET_LEN
    smmu_len = 68 + ID_MAPPING_LEN
    rc = smmu + smmu_len
    body = struct.pack("<BHBIII", 0x80, GIC_MSI_TARGET_LEN, 1, 0, 0, 0) + struct.pack(
        "<III", 1, 0, 0)
    body += struct.pack("<BHBIII", kind, smmu_len, 0, 0, 1, 68) + b"\0" * (68 - 16)
    body += struct.pack("<IIIII", 0, 0xFFFF, 0, target, 0)
    body += struct.pack("<BHBIII", 2, RC_NODE_LEN + ID_MAPPING_LEN, 1, 0, 1, RC_NODE_LEN)
    body += struct.pack("<IBHBIIB3s", 1, 0, 0, 0, 0, 0, 48, b"\0\0\0")
    body += struct.pack("<IIIII", 0, 0xFFFF, 0, smmu, 0)
    hdr = bytearray(build_iort(())[:36])
    t = bytearray(hdr + struct.pack("<III", 3, IORT_FIXED_LEN, 0) + body)
    struct.pack_into("<I", t, 4, len(t))
    checksum_fix(t)
    assert rc == IORT_FIXED_LEN + len(body) - RC_NODE_LEN - ID_MAPPING_LEN
    return bytes(t)


@pytest.mark.parametrize(("kind", "name"), [(4, "SMMUv3"), (3, "SMMUv1/v2")])
def test_direct_lpi_behind_an_smmu_is_refused_naming_the_nodes(kind: int, name: str) -> None:
    with pytest.raises(FirmwareError, match=re.escape(
            f"IORT: offset 0xa4 (root complex) ID mapping 0 goes through the {name} at 0x4c to "
            "GIC MSI target at 0x30: the model has no SMMU")):
        read_iort(_behind_smmu(kind))


# -- the memory map -------------------------------------------------------------------------------

def test_the_uefi_memory_map_gives_the_ram() -> None:
    ram = ((0x8000_0000, 0x4000_0000), (0x1_0000_0000, 0x1000_0000))
    plat = Platform.from_acpi(MADT, build_iort((DirectLpiRoute(0, 0, 0x10000),)),
                              memory_map=ram)
    assert plat.board.memory == ram and plat.machine.config.ram == ram
    assert plat.boot().msi_provider == "direct-lpi"             # its tables are in that RAM


@pytest.mark.parametrize(("ram", "message"), [
    ((), "memory map: no RAM"),
    (((0x8000_0800, 0x1000),), r"RAM @0x80000800\+0x1000 is not a run of whole 4 KiB pages"),
    (((0x8000_0000, 0x2000), (0x8000_1000, 0x1000)), "overlap"),
    ((("x", 1),), "entries are \\(base, size\\) pairs of integers"),
])
def test_a_bad_memory_map_is_a_firmware_error(ram: tuple[tuple[int, int], ...],
                                              message: str) -> None:
    with pytest.raises(FirmwareError, match=message):
        Platform.from_acpi(MADT, None, memory_map=ram)


def test_check_names_every_route_of_the_second_draft(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from directlpi.cli import main

    (tmp_path / "apic.dat").write_bytes(MADT)
    (tmp_path / "iort.dat").write_bytes(build_iort((
        DirectLpiRoute(0, 0, 0x100), MbiRoute(0, 0x100, 0x100, 256, 64),
        ComponentRoute("\\_SB_.DMA0", "mbi", spis=(256, 64)))))
    assert main(["check", str(tmp_path / "apic.dat"), str(tmp_path / "iort.dat")]) == 0
    out = capsys.readouterr().out
    assert ("IORT: Direct LPI (PROPOSED node) for segment 0 RIDs 0x0+0x100; MBI (PROPOSED "
            "node, SPIs 256+64) for segment 0 RIDs 0x100+0x100; MBI (PROPOSED node, SPIs "
            "256+64) for named component \\_SB_.DMA0") in out


@pytest.mark.parametrize(("ram", "message"), [
    (((0x0800_0000, 0x10000),), r"memory map: RAM range 0 \[0x8000000, 0x8010000\) overlaps "
                                "GICD"),
    (((0x3F00_0000, 0x200_0000),), r"QEMU virt's ECAM \(no MCFG\) @0x3f000000\+0x1000000 "
                                   "overlaps RAM"),
])
def test_a_memory_map_over_the_gic_or_the_ecam_is_refused(ram: tuple[tuple[int, int], ...],
                                                          message: str) -> None:
    with pytest.raises(FirmwareError, match=message):
        Platform.from_acpi(MADT, None, memory_map=ram)
