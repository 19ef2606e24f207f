"""The ITS (Arm IHI 0069, chapter "The ITS"): registers, commands, command errors and
MSI translation, from the architecture with literal offsets and command encodings."""

from __future__ import annotations

import pytest

from directlpi import Event, EventKind, Platform
from directlpi.hw.cache import CpuDataCache
from tests.hw import arch
from tests.hw.its_arch import (
    CMDQ,
    COLTAB,
    CREADR_STALLED,
    CTLR_ENABLED,
    CTLR_QUIESCENT,
    CWRITER_RETRY,
    DEV,
    DEV2,
    DEVTAB,
    GITS_BASER0,
    GITS_CBASER,
    GITS_CREADR,
    GITS_CTLR,
    GITS_CWRITER,
    GITS_IIDR,
    GITS_PIDR2,
    GITS_TRANSLATER,
    GITS_TYPER,
    INDIRECT,
    INNER_RAWAWB,
    ITS_BASE,
    LPI,
    OUTER_RAWAWB,
    PAGE_4K,
    PAGE_16K,
    PAGE_64K,
    SH_INNER,
    SH_MASK,
    STRANGER,
    TRANSLATION_FRAME,
    TYPE_COLLECTION,
    TYPE_DEVICE,
    TYPER_CCT,
    TYPER_PHYSICAL,
    TYPER_PTA,
    TYPER_SEIS,
    TYPER_VIRTUAL,
    VALID,
    Rig,
    Runaway,
    all_quiet,
    clear,
    device_ids,
    discard,
    int_,
    inv,
    invall,
    itt,
    mapc,
    mapd,
    mapi,
    mapti,
    movall,
    movi,
    sync,
    typer_devbits,
    typer_hcc,
    typer_id_bits,
    typer_itt_entry_size,
)

BASER1 = GITS_BASER0 + 8


def bad_accesses(rig: Rig) -> int:
    return rig.plat.event_count(EventKind.BAD_ACCESS)


def unpredictable(rig: Rig) -> int:
    return rig.plat.event_count(EventKind.UNPREDICTABLE)


# == registers ==============================================================================

@pytest.mark.parametrize("pta", [False, True])
def test_typer_describes_a_physical_its_with_8_byte_itt_entries(pta: bool) -> None:
    rig = Rig(pta=pta, program=False)
    typer = rig.read(GITS_TYPER)
    assert typer & TYPER_PHYSICAL
    assert not typer & (TYPER_VIRTUAL | TYPER_CCT | TYPER_SEIS)
    assert typer_itt_entry_size(typer) == 8
    assert typer_id_bits(typer) == 16
    assert 16 <= typer_devbits(typer) <= 32            # PCI requester IDs need 16
    assert bool(typer & TYPER_PTA) == pta
    assert typer_hcc(typer) == 0                       # collections live in memory
    assert (typer >> 36) & 1 == 0                      # CIL: 16-bit collection IDs
    # Either 32-bit half of the 64-bit register.
    assert rig.read(GITS_TYPER, 4) == typer & 0xFFFF_FFFF
    assert rig.read(GITS_TYPER + 4, 4) == typer >> 32
    assert bad_accesses(rig) == 0


def test_iidr_and_pidr2_identify_a_gicv3_its() -> None:
    rig = Rig(program=False)
    assert (rig.read(GITS_PIDR2, 4) >> 4) & 0xF == 3          # ArchRev: GICv3
    assert rig.read(GITS_IIDR, 4) & 0xFFF == 0x43B            # Implementer: Arm (JEP106)
    assert bad_accesses(rig) == 0


def test_ctlr_is_quiescent_exactly_while_disabled() -> None:
    rig = Rig(program=False)
    assert rig.read(GITS_CTLR, 4) == CTLR_QUIESCENT
    rig.write(GITS_CTLR, 0xFFFF_FFFF, 4)                      # only Enabled is writable
    assert rig.read(GITS_CTLR, 4) == CTLR_ENABLED
    rig.write(GITS_CTLR, 0, 4)
    assert rig.read(GITS_CTLR, 4) == CTLR_QUIESCENT


def test_baser0_is_the_device_table_and_baser1_the_collection_table() -> None:
    rig = Rig(program=False)
    b0, b1 = rig.read(GITS_BASER0), rig.read(BASER1)
    assert (b0 >> 56) & 7 == TYPE_DEVICE
    assert (b1 >> 56) & 7 == TYPE_COLLECTION
    assert ((b0 >> 48) & 0x1F) + 1 == 8 and ((b1 >> 48) & 0x1F) + 1 == 8
    assert not (b0 | b1) & VALID


def test_baser2_to_7_are_unimplemented_raz_wi_without_a_bad_access() -> None:
    rig = Rig(program=False)
    for n in range(2, 8):
        rig.write(GITS_BASER0 + 8 * n, DEVTAB | VALID | (TYPE_DEVICE << 56), 8)
        rig.write(GITS_BASER0 + 8 * n + 4, 0xFFFF_FFFF, 4)
        assert rig.read(GITS_BASER0 + 8 * n) == 0
        assert rig.read(GITS_BASER0 + 8 * n, 4) == 0
    assert bad_accesses(rig) == 0


def test_baser_keeps_its_writable_fields_type_and_entry_size_are_read_only() -> None:
    rig = Rig(program=False)
    reset = rig.read(GITS_BASER0)
    value = (VALID | INNER_RAWAWB | OUTER_RAWAWB | 0x0000_8765_4321_0000 | SH_INNER
             | PAGE_64K | 0x2A)
    rig.write(GITS_BASER0, value | (7 << 56) | (0x1F << 48))
    assert rig.read(GITS_BASER0) == value | (reset & (0x7 << 56 | 0x1F << 48))
    # Indirect (two-level tables) is not implemented: RAZ/WI.
    rig.write(GITS_BASER0, value | INDIRECT)
    assert not rig.read(GITS_BASER0) & INDIRECT


def test_baser_page_size_0b11_reads_as_64k() -> None:
    rig = Rig(program=False)
    rig.write(GITS_BASER0, DEVTAB | (0b11 << 8))
    assert (rig.read(GITS_BASER0) >> 8) & 3 == 0b10


def test_64_bit_registers_compose_from_32_bit_halves() -> None:
    rig = Rig(program=False)
    rig.write(GITS_CBASER, (CMDQ | 3) & 0xFFFF_FFFF, 4)
    rig.write(GITS_CBASER + 4, VALID >> 32, 4)
    assert rig.read(GITS_CBASER) == VALID | CMDQ | 3
    assert rig.read(GITS_CBASER + 4, 4) == VALID >> 32
    rig.write(GITS_BASER0 + 4, (VALID | 0x1_0000_0000) >> 32, 4)
    rig.write(GITS_BASER0, DEVTAB | 1, 4)
    b0 = rig.read(GITS_BASER0)
    assert b0 & (VALID | 0xFFFF_FFFF_F000 | 0xFF) == VALID | 0x1_0000_0000 | DEVTAB | 1
    assert (b0 >> 56) & 7 == TYPE_DEVICE
    rig.write(GITS_CWRITER, 0x60, 4)
    assert rig.read(GITS_CWRITER) == 0x60
    assert rig.read(GITS_CREADR + 4, 4) == 0
    assert bad_accesses(rig) == 0


@pytest.mark.parametrize(("frame", "off", "size", "write"), [
    (0, GITS_TYPER, 8, True),                 # RO
    (0, GITS_TYPER + 4, 4, True),
    (0, GITS_IIDR, 4, True),
    (0, GITS_CREADR, 8, True),
    (0, GITS_PIDR2, 4, True),
    (TRANSLATION_FRAME, GITS_TRANSLATER, 4, False),    # WO
    (0, 0x0010, 4, False),                    # reserved
    (0, 0x0098, 8, True),
    (0, 0x0140, 8, False),                    # beyond BASER7
    (0, 0xC000, 4, True),
    (TRANSLATION_FRAME, 0x0000, 4, True),
    (TRANSLATION_FRAME, 0x0044, 4, True),
    (0, GITS_CTLR, 8, False),                 # widths the register does not have
    (0, GITS_CTLR, 2, True),
    (0, GITS_TYPER, 1, False),
    (0, GITS_CBASER + 2, 2, False),
    (0, GITS_CWRITER + 4, 8, True),           # misaligned
    (TRANSLATION_FRAME, GITS_TRANSLATER, 8, True),
    (TRANSLATION_FRAME, GITS_TRANSLATER, 1, True),
    (TRANSLATION_FRAME, GITS_TRANSLATER + 2, 2, True),
])
def test_bad_accesses_are_recorded_raz_wi_and_never_raise(frame: int, off: int, size: int,
                                                          write: bool) -> None:
    rig = Rig()
    rig.setup()
    typer, cbaser, creadr = rig.read(GITS_TYPER), rig.read(GITS_CBASER), rig.creadr()
    if write:
        rig.bus.write(ITS_BASE + frame + off, 0xFFFF_FFFF_FFFF_FFFF, size, master=DEV)
    else:
        assert rig.bus.read(ITS_BASE + frame + off, size) == 0
    assert bad_accesses(rig) == 1
    assert (rig.read(GITS_TYPER), rig.read(GITS_CBASER), rig.creadr()) == (typer, cbaser, creadr)
    assert all_quiet(rig)                    # nothing was translated by the stray access


def test_a_3_byte_access_is_a_bad_access_not_an_exception() -> None:
    rig = Rig()
    rig.bus.write(ITS_BASE + GITS_CWRITER, 0x20, 3)
    assert rig.bus.read(ITS_BASE + GITS_CTLR, 3) == 0
    assert bad_accesses(rig) == 2
    assert rig.read(GITS_CWRITER) == 0


def test_cbaser_and_baser_writes_while_enabled_are_unpredictable_and_ignored() -> None:
    rig = Rig()
    regs = (GITS_CBASER, GITS_BASER0, BASER1)
    before = [rig.read(r) for r in regs]
    for r in regs:
        rig.write(r, 0x4F00_0000 | VALID)
    rig.write(GITS_BASER0 + 4, 0, 4)
    assert [rig.read(r) for r in regs] == before
    assert unpredictable(rig) == 4
    rig.write(GITS_CTLR, 0, 4)                                  # disabled: writable again
    rig.write(GITS_CBASER, 0x4F00_0000 | VALID)
    assert rig.read(GITS_CBASER) == 0x4F00_0000 | VALID


def test_writing_cbaser_resets_creadr() -> None:
    rig = Rig()
    rig.run(sync(0), sync(1), sync(2))
    assert rig.creadr() == 0x60
    rig.write(GITS_CTLR, 0, 4)
    rig.write(GITS_CBASER, CMDQ | VALID | SH_INNER)
    assert rig.creadr() == 0


def test_cwriter_beyond_the_queue_is_unpredictable_and_ignored() -> None:
    rig = Rig(queue_pages=1)
    rig.write(GITS_CWRITER, 0xFE0)
    assert rig.read(GITS_CWRITER) == 0xFE0
    rig.write(GITS_CWRITER, 0x1000)
    assert rig.read(GITS_CWRITER) == 0xFE0
    assert unpredictable(rig) == 1


def _enable_and_read_creadr(rig: Rig) -> int:
    """Enable the ITS and read GITS_CREADR once, failing if that read never returns."""
    rig.write(GITS_CTLR, CTLR_ENABLED, 4)
    rig.guard(limit=10_000)
    try:
        return rig.creadr()
    except Runaway as exc:
        pytest.fail(f"reading GITS_CREADR never returns: {exc}")


def test_cwriter_written_before_the_queue_is_valid_cannot_make_the_its_run_forever() -> None:
    # CWRITER is accepted while CBASER.Valid is 0; once CBASER describes a 4 KiB queue it
    # lies beyond it.  Whatever the ITS then does, one CREADR read must return.
    rig = Rig(program=False)
    rig.write(GITS_CWRITER, 0x2000)
    rig.write(GITS_CBASER, CMDQ | VALID | SH_INNER)             # one 4 KiB page
    assert _enable_and_read_creadr(rig) & 0xF_FFE0 < 0x1000


def test_shrinking_the_queue_under_cwriter_cannot_make_the_its_run_forever() -> None:
    rig = Rig(program=False)
    rig.write(GITS_CBASER, CMDQ | VALID | SH_INNER | 1)         # two pages
    rig.write(GITS_CWRITER, 0x1800)
    rig.write(GITS_CBASER, CMDQ | VALID | SH_INNER | 0)         # one page: CWRITER beyond
    assert _enable_and_read_creadr(rig) & 0xF_FFE0 < 0x1000


def test_a_non_coherent_its_fixes_shareability_as_non_shareable() -> None:
    rig = Rig(program=False, rd_coherent=False)
    for reg, value in ((GITS_CBASER, CMDQ | VALID | INNER_RAWAWB | SH_INNER),
                       (GITS_BASER0, DEVTAB | VALID | INNER_RAWAWB | SH_INNER)):
        rig.write(reg, value)
        got = rig.read(reg)
        assert got & SH_MASK == 0
        assert got & INNER_RAWAWB == INNER_RAWAWB               # cacheability as written
    coherent = Rig(program=False)
    coherent.write(GITS_CBASER, CMDQ | VALID | SH_INNER)
    assert coherent.read(GITS_CBASER) & SH_MASK == SH_INNER


def test_a_non_coherent_its_sees_only_commands_cleaned_to_memory() -> None:
    rig = Rig(rd_coherent=False)
    cache = rig.plat.machine.cpu_memory
    assert isinstance(cache, CpuDataCache)
    cmds = [mapc(1, 1), mapd(8, itt(8), 4), mapti(8, 0, LPI, 1)]

    def queue(clean: bool) -> None:
        for cmd in cmds:
            at = CMDQ + rig.wptr
            for k, word in enumerate(cmd):
                cache.write_int(at + 8 * k, word, 8)
            if clean:
                cache.clean(at, 32)
            rig.wptr += 32
        rig.write(GITS_CWRITER, rig.wptr)
        assert rig.creadr() == rig.wptr

    queue(clean=False)                     # the ITS reads stale zeros: no such command
    rig.msi(0)
    assert rig.drops() == ["unmapped-device"]
    queue(clean=True)
    rig.msi(0)
    assert rig.ack(1) == LPI


@pytest.mark.parametrize(("page", "pages", "entries"), [
    (PAGE_4K, 1, 512), (PAGE_4K, 2, 1024), (PAGE_16K, 1, 2048), (PAGE_64K, 1, 8192)])
def test_device_table_size_follows_page_size_and_size(page: int, pages: int,
                                                      entries: int) -> None:
    rig = Rig(dev_page=page, dev_pages=pages)
    rig.run(mapd(entries - 1, itt(1), 2))
    rig.put(mapd(entries, itt(2), 2))
    assert rig.creadr() & CREADR_STALLED
    assert rig.errors() == [0x010801]                   # MAPD DEVICE_OOR


def test_deviceids_beyond_devbits_are_out_of_range_whatever_the_table_size() -> None:
    rig = Rig(dev_page=PAGE_64K, dev_pages=64)                # 4 MiB: 2**19 entries
    devbits = typer_devbits(rig.read(GITS_TYPER))
    assert devbits < 19
    rig.run(mapd((1 << devbits) - 1, itt(1), 2))
    rig.put(mapd(1 << devbits, itt(2), 2))
    assert rig.creadr() & CREADR_STALLED
    assert rig.errors() == [0x010801]


def test_64k_pages_take_address_bits_51_48_from_baser_bits_15_12() -> None:
    high = 1 << 48
    rig = Rig(program=False, ram=((0x4000_0000, 2 << 30), (high, 1 << 20)))
    rig.write(GITS_CBASER, CMDQ | VALID | SH_INNER)
    rig.write(GITS_BASER0, VALID | PAGE_64K | (0x1 << 12))     # table at 1 << 48
    rig.write(BASER1, COLTAB | VALID | PAGE_4K)
    assert rig.read(GITS_BASER0) & 0xF000 == 0x1000
    rig.write(GITS_CTLR, CTLR_ENABLED, 4)
    rig.run(mapc(2, 2), mapd(3, itt(3), 4), mapti(3, 5, LPI + 9, 2))
    assert rig.memory.read_int(high + 3 * 8, 8) != 0           # DeviceID 3's entry
    rig.plat.machine.its[0].device_id_of = device_ids({DEV: 3})
    rig.msi(5)
    assert rig.ack(2) == LPI + 9


def test_a_table_outside_ram_is_unpredictable_not_an_exception() -> None:
    rig = Rig(program=False)
    rig.write(GITS_CBASER, CMDQ | VALID)
    rig.write(GITS_BASER0, 0x1000_0000 | VALID)                # no RAM there
    rig.write(BASER1, COLTAB | VALID)
    rig.write(GITS_CTLR, CTLR_ENABLED, 4)
    rig.run(mapc(1, 1), mapd(8, itt(8), 4))             # the entry written is lost
    assert unpredictable(rig) >= 1
    rig.msi(0)
    assert rig.drops() == ["unmapped-device"]
    rig.put(mapti(8, 0, LPI, 1))
    assert rig.creadr() & CREADR_STALLED
    assert rig.errors() == [0x010a04]
    assert all_quiet(rig)


# == lazy execution, enable, the queue ========================================================

def test_commands_run_only_when_creadr_is_read() -> None:
    rig = Rig()
    rig.put(mapc(1, 1), mapd(8, itt(8), 4), mapti(8, 0, LPI, 1))
    rig.msi(0)
    assert rig.drops() == ["unmapped-device"]
    assert rig.read(GITS_CWRITER) == 0x60                      # CWRITER reads do not run them
    rig.msi(0)
    assert rig.drops() == ["unmapped-device"] * 2
    assert rig.creadr() == 0x60
    rig.msi(0)
    assert rig.ack(1) == LPI


def test_a_disabled_its_executes_nothing_until_enabled() -> None:
    rig = Rig(enable=False)
    rig.put(mapc(1, 1), mapd(8, itt(8), 4), mapti(8, 0, LPI, 1))
    assert rig.creadr() == 0
    rig.msi(0)
    assert rig.drops() == ["its-disabled"]
    rig.write(GITS_CTLR, CTLR_ENABLED, 4)
    assert rig.creadr() == 0x60
    rig.msi(0)
    assert rig.ack(1) == LPI


def test_an_invalid_command_queue_executes_nothing() -> None:
    rig = Rig(program=False)
    rig.write(GITS_CBASER, CMDQ | SH_INNER)                    # Valid = 0
    rig.write(GITS_BASER0, DEVTAB | VALID)
    rig.write(BASER1, COLTAB | VALID)
    rig.write(GITS_CTLR, CTLR_ENABLED, 4)
    rig.put(mapc(1, 1))
    assert rig.creadr() == 0
    assert not rig.of(EventKind.ITS_COMMAND)


def test_the_queue_wraps_around() -> None:
    rig = Rig(queue_pages=1)                                  # 128 commands
    rig.run(*(sync(0) for _ in range(100)))
    rig.run(*(sync(1) for _ in range(30)))
    assert rig.creadr() == (130 * 32) % 0x1000
    assert [e.reason for e in rig.of(EventKind.ITS_COMMAND)] == ["sync"] * 130


# == commands =================================================================================

def test_mapd_mapc_mapti_then_an_msi_is_acknowledged_on_the_collections_pe() -> None:
    rig = Rig()
    rig.run(mapc(3, 2), mapd(8, itt(8), 5), mapti(8, 17, LPI + 40, 3))
    rig.msi(17)
    assert rig.pending() == {2: [LPI + 40]}
    assert [rig.hppi(c) for c in (0, 1, 3)] == [arch.SPURIOUS] * 3
    (tr,) = rig.of(EventKind.ITS_TRANSLATED)
    assert (tr.addr, tr.value, tr.intid, tr.cpu, tr.master) == (8, 17, LPI + 40, 2, DEV)
    assert rig.ack(2) == LPI + 40
    assert all_quiet(rig)


def test_a_16_bit_translater_write_is_an_msi() -> None:
    rig = Rig()
    rig.setup()
    rig.msi(1, size=2)
    assert rig.ack(2) == LPI + 1


def test_mapi_maps_eventid_to_the_same_intid() -> None:
    rig = Rig()
    rig.run(mapc(0, 0), mapd(9, itt(9), 14), mapi(9, LPI + 5, 0))
    rig.msi(LPI + 5, master=DEV2)
    assert rig.ack(0) == LPI + 5


def test_devices_are_told_apart_by_their_deviceid() -> None:
    rig = Rig()
    rig.setup()
    rig.run(mapd(9, itt(9), 4), mapti(9, 0, LPI + 7, 3))
    rig.msi(0, master=DEV2)
    rig.msi(0, master=DEV)
    assert rig.pending() == {1: [LPI], 3: [LPI + 7]}


def test_mapd_itt_address_selects_the_itt() -> None:
    rig = Rig()
    rig.setup()
    other = itt(8) + 0x100                                    # 256-byte aligned, elsewhere
    rig.run(mapd(8, 0, 1, valid=False), mapd(8, other, 4))
    rig.msi(0)
    assert rig.drops() == ["unmapped-event"]                  # the new ITT is empty
    old = rig.memory.read(itt(8), 16 * 8)
    rig.run(mapti(8, 0, LPI + 3, 3))
    assert rig.memory.read(itt(8), 16 * 8) == old             # the old ITT is not touched
    assert rig.memory.read_int(other, 8) != 0                 # EventID 0's entry is at ITT_addr
    rig.msi(0)
    assert rig.pending() == {3: [LPI + 3]}


def test_mapd_with_valid_0_unmaps_the_device() -> None:
    rig = Rig()
    rig.setup()
    rig.run(mapd(8, 0, 1, valid=False))
    rig.msi(0)
    assert rig.drops() == ["unmapped-device"]
    assert all_quiet(rig)


def test_mapc_with_valid_0_unmaps_the_collection() -> None:
    rig = Rig()
    rig.setup()
    rig.run(mapc(1, 0, valid=False))
    rig.msi(0)
    assert rig.drops() == ["unmapped-collection"]
    rig.msi(1)
    assert rig.pending() == {2: [LPI + 1]}


def test_inv_makes_the_rd_reload_the_configuration_byte() -> None:
    rig = Rig()
    rig.setup()
    rig.run(mapti(8, 2, LPI + 2, 1))
    rig.config(LPI, priority=0xA0)
    rig.config(LPI + 2, priority=0x90)
    rig.msi(0)
    rig.msi(2)
    assert rig.hppi(1) == LPI + 2                             # 0x90 beats 0xA0
    rig.config(LPI, priority=0x80)
    assert rig.hppi(1) == LPI + 2                             # before INV: the cached 0xA0
    rig.run(inv(8, 0))
    assert rig.hppi(1) == LPI                                 # after INV: 0x80
    rig.config(LPI, priority=0x80, enabled=False)
    assert rig.hppi(1) == LPI
    rig.run(inv(8, 0))
    assert rig.hppi(1) == LPI + 2                             # disabled now, still pending
    assert rig.pending() == {1: [LPI, LPI + 2]}
    assert rig.ack(1) == LPI + 2
    rig.config(LPI, priority=0x80, enabled=True)
    rig.run(inv(8, 0))
    assert rig.ack(1) == LPI


def test_invall_reloads_every_configuration_byte_of_the_collections_rd() -> None:
    rig = Rig()
    rig.setup()
    rig.run(mapti(8, 2, LPI + 2, 1), mapti(8, 3, LPI + 3, 2))
    for ev in range(4):
        rig.msi(ev)
    for intid in (LPI, LPI + 2, LPI + 1, LPI + 3):
        rig.config(intid, enabled=False)
    assert (rig.hppi(1), rig.hppi(2)) == (LPI, LPI + 1)       # stale, enabled
    rig.run(invall(1))
    assert (rig.hppi(1), rig.hppi(2)) == (arch.SPURIOUS, LPI + 1)
    assert rig.pending() == {1: [LPI, LPI + 2], 2: [LPI + 1, LPI + 3]}
    rig.run(invall(2))
    assert rig.hppi(2) == arch.SPURIOUS


def test_int_makes_the_lpi_pending_at_the_collections_rd() -> None:
    rig = Rig()
    rig.setup()
    seen: list[Event] = []
    rig.plat.observe(seen.append, [EventKind.LPI_PENDING])
    rig.run(int_(8, 1))
    assert rig.pending() == {2: [LPI + 1]}
    assert [(e.cpu, e.intid, e.reason) for e in seen] == [(2, LPI + 1, "its")]
    assert rig.ack(2) == LPI + 1
    assert not rig.of(EventKind.MSI_DROPPED)


def test_clear_removes_the_pending_state() -> None:
    rig = Rig()
    rig.setup()
    rig.msi(0)
    rig.msi(1)
    rig.run(clear(8, 0))
    assert rig.pending() == {2: [LPI + 1]}
    assert rig.hppi(1) == arch.SPURIOUS
    assert rig.ack(1) == arch.SPURIOUS


def test_discard_removes_pending_state_and_mapping() -> None:
    rig = Rig()
    rig.setup()
    rig.msi(0)
    rig.run(discard(8, 0))
    assert all_quiet(rig)
    rig.msi(0)
    assert rig.drops() == ["unmapped-event"]
    assert all_quiet(rig)
    rig.msi(1)                                                # the other mapping stays
    assert rig.ack(2) == LPI + 1


def test_movi_moves_pending_state_and_later_msis() -> None:
    rig = Rig()
    rig.setup()
    rig.msi(0)
    rig.run(movi(8, 0, 3))
    assert rig.pending() == {3: [LPI]}
    assert rig.hppi(1) == arch.SPURIOUS
    assert rig.ack(3) == LPI
    rig.msi(0)
    assert rig.pending() == {3: [LPI]}
    assert rig.ack(3) == LPI
    rig.run(movi(8, 0, 1))                                    # not pending: the ITT only
    assert all_quiet(rig)
    rig.msi(0)
    assert rig.ack(1) == LPI


def test_movi_leaves_no_stale_configuration_at_the_new_target() -> None:
    # The model's documented choice: the destination RD reloads the LPI's configuration.
    rig = Rig()
    rig.setup()
    rig.run(movi(8, 0, 3))
    rig.msi(0)
    assert rig.ack(3) == LPI                                  # PE 3 caches "enabled"
    rig.run(movi(8, 0, 1))
    rig.config(LPI, enabled=False)
    rig.run(inv(8, 0))                                        # what a driver does: INV at PE 1
    rig.run(movi(8, 0, 3))                                    # back, no INV after it
    rig.msi(0)
    assert rig.pending() == {3: [LPI]}
    assert rig.hppi(3) == arch.SPURIOUS                       # disabled, not the old copy


def test_movall_moves_every_pending_lpi_but_not_the_collections() -> None:
    rig = Rig()
    rig.setup()
    rig.run(mapti(8, 2, LPI + 2, 1))
    rig.msi(0)
    rig.msi(2)
    rig.msi(1)                                                # on PE 2 already
    rig.run(movall(rig.rdbase(1), rig.rdbase(2)))
    assert rig.pending() == {2: [LPI, LPI + 1, LPI + 2]}
    assert [rig.ack(2) for _ in range(3)] == [LPI, LPI + 1, LPI + 2]
    rig.msi(0)                                                # collection 1 is still PE 1
    assert rig.pending() == {1: [LPI]}


def test_sync_completes_and_the_queue_moves_on() -> None:
    rig = Rig()
    rig.setup()
    rig.run(int_(8, 0), sync(rig.rdbase(1)), int_(8, 1))
    assert rig.pending() == {1: [LPI], 2: [LPI + 1]}
    assert [e.reason for e in rig.of(EventKind.ITS_COMMAND)][-3:] == ["int", "sync", "int"]
    assert not rig.errors()


def test_a_sync_naming_no_redistributor_is_unpredictable_not_an_error() -> None:
    """No error number exists for SYNC (Linux defines none): the model records it as
    UNPREDICTABLE and goes on, rather than stall on a made-up number."""
    rig = Rig()
    rig.setup()
    rig.run(sync(0x7777), int_(8, 0))
    assert not rig.errors()
    assert not rig.creadr() & CREADR_STALLED
    assert [e.reason for e in rig.of(EventKind.UNPREDICTABLE)] == ["its-sync-bad-target"]
    assert rig.pending() == {1: [LPI]}


def test_pta_1_targets_are_redistributor_addresses() -> None:
    rig = Rig(pta=True)
    assert rig.read(GITS_TYPER) & TYPER_PTA
    rd3 = rig.plat.gicr_base(3) >> 16
    rig.run(mapc(0, rd3), mapd(8, itt(8), 4), mapti(8, 0, LPI, 0),
            sync(rd3), int_(8, 0))
    assert rig.pending() == {3: [LPI]}
    rig.run(movall(rd3, rig.plat.gicr_base(1) >> 16))
    assert rig.pending() == {1: [LPI]}
    rig.put(mapc(1, 3))                                      # a PE number is no RD address
    assert rig.creadr() & CREADR_STALLED
    assert rig.errors() == [0x010902]


def test_pta_0_targets_are_pe_numbers() -> None:
    rig = Rig(pta=False)
    assert not rig.read(GITS_TYPER) & TYPER_PTA
    rig.run(mapc(0, 3), mapd(8, itt(8), 4), mapti(8, 0, LPI, 0), int_(8, 0))
    assert rig.pending() == {3: [LPI]}
    rig.put(mapc(1, rig.plat.gicr_base(1) >> 16))
    assert rig.creadr() & CREADR_STALLED
    assert rig.errors() == [0x010902]


def test_two_itses_are_independent() -> None:
    second = 0x0A00_0000
    plat = Platform.bare(cpus=2, its=(ITS_BASE, second))
    for its in plat.machine.its:
        its.device_id_of = device_ids({DEV: 8})
    plat.bus.write(second + GITS_CTLR, CTLR_ENABLED, 4)
    assert plat.bus.read(second + GITS_CTLR, 4) == CTLR_ENABLED
    assert plat.bus.read(ITS_BASE + GITS_CTLR, 4) == CTLR_QUIESCENT
    dropped: list[Event] = []
    plat.observe(dropped.append, [EventKind.MSI_DROPPED])
    plat.bus.write(ITS_BASE + TRANSLATION_FRAME + GITS_TRANSLATER, 0, 4, master=DEV)
    plat.bus.write(second + TRANSLATION_FRAME + GITS_TRANSLATER, 0, 4, master=DEV)
    assert [(e.source, e.reason) for e in dropped] == [("ITS0", "its-disabled"),
                                                       ("ITS1", "unmapped-device")]


# == command errors ===========================================================================

# Against Rig.setup(): device 8 mapped (16 EventIDs: 0 -> 8192 on ICID 1, 1 -> 8193 on
# ICID 2), device 9 unmapped, ICIDs 0-3 mapped to PEs 0-3, ICID 5 unmapped; device and
# collection tables of one 4 KiB page (512 entries each); LPIs up to 2**16 - 1.
ERRORS = [
    ("mapd-device-beyond-table", mapd(600, itt(9), 4), 0x010801),
    ("mapd-device-beyond-devbits", mapd(1 << 16, itt(9), 4), 0x010801),
    ("mapd-itt-size", mapd(9, itt(9), 17), 0x010802),
    ("mapc-pe", mapc(2, 4), 0x010902),
    ("mapc-icid", mapc(512, 0), 0x010903),
    ("mapti-unmapped-device", mapti(9, 0, LPI + 9, 1), 0x010a04),
    ("mapti-eventid", mapti(8, 16, LPI + 9, 1), 0x010a05),
    ("mapti-pintid-low", mapti(8, 2, LPI - 1, 1), 0x010a06),
    ("mapti-pintid-high", mapti(8, 2, 1 << 16, 1), 0x010a06),
    ("mapti-icid", mapti(8, 2, LPI + 9, 512), 0x010a03),
    ("int-unmapped-interrupt", int_(8, 5), 0x010307),
    ("int-unmapped-device", int_(9, 0), 0x010304),
    ("int-eventid", int_(8, 16), 0x010305),
    ("clear-unmapped-interrupt", clear(8, 5), 0x010507),
    ("inv-unmapped-interrupt", inv(8, 5), 0x010c07),
    ("invall-unmapped-collection", invall(5), 0x010d09),
    ("movi-unmapped-interrupt", movi(8, 5, 2), 0x010107),
    ("movi-unmapped-collection", movi(8, 0, 5), 0x010109),
    ("movi-icid", movi(8, 0, 512), 0x010103),
    ("movall-pe", movall(1, 4), 0x010e01),
    ("discard-unmapped-interrupt", discard(8, 5), 0x010f07),
]

# DeviceID beyond the device table (BASER0 holds 512): DEVICE_OOR, cause 0x01, for the
# commands that name a device (GIC-600AE TRM "ITS command errors"; QNX/L4Re headers).
DEVICE_OOR = [
    ("int", int_(600, 0), 0x010301),
    ("clear", clear(600, 0), 0x010501),
    ("inv", inv(600, 0), 0x010c01),
    ("movi", movi(600, 0, 1), 0x010101),
    ("discard", discard(600, 0), 0x010f01),
    ("mapti", mapti(600, 0, LPI + 9, 1), 0x010a01),
]


def assert_mappings_unchanged(rig: Rig) -> None:
    """What Rig.setup() mapped still translates as it did; nothing else does."""
    rig.msi(0)
    rig.msi(1)
    assert rig.pending() == {1: [LPI], 2: [LPI + 1]}
    assert [rig.ack(1), rig.ack(2)] == [LPI, LPI + 1]
    rig.msi(2)
    rig.msi(0, master=DEV2)
    assert rig.drops()[-2:] == ["unmapped-event", "unmapped-device"]
    assert all_quiet(rig)


@pytest.mark.parametrize(("cmd", "code"), [c[1:] for c in ERRORS + DEVICE_OOR],
                         ids=[c[0] for c in ERRORS] + [f"device-oor-{c[0]}" for c in DEVICE_OOR])
def test_a_command_error_has_no_effect_and_stalls_the_queue(cmd: tuple[int, ...],
                                                            code: int) -> None:
    rig = Rig()
    rig.setup()
    at = rig.put(cmd, int_(8, 0))
    creadr = rig.creadr()
    assert rig.errors() == [code]
    assert creadr == at | CREADR_STALLED                       # on the failed command
    assert rig.creadr() == creadr                               # and stays there
    assert all_quiet(rig)                                       # the INT behind it never ran
    assert_mappings_unchanged(rig)


def test_mapi_of_an_eventid_below_8192_is_a_pintid_error() -> None:
    # MAPI's pINTID is its EventID.  Linux names no MAPI error; the cause is PHYSICALID_OOR
    # (0x06) whether the command byte reads MAPI's 0x0b or MAPTI's 0x0a.
    rig = Rig()
    rig.setup()
    at = rig.put(mapi(8, 2, 1), int_(8, 0))
    assert rig.creadr() == at | CREADR_STALLED
    (code,) = rig.errors()
    assert code >> 16 == 0x01 and (code >> 8) & 0xFF in (0x0A, 0x0B) and code & 0xFF == 0x06
    assert all_quiet(rig)
    assert_mappings_unchanged(rig)


def test_retry_after_fixing_the_command_proceeds() -> None:
    rig = Rig()
    rig.setup()
    at = rig.put(mapti(8, 2, LPI - 1, 3), int_(8, 2))
    assert rig.creadr() == at | CREADR_STALLED
    rig.write(GITS_CWRITER, rig.wptr)                         # no Retry: still stalled
    assert rig.creadr() == at | CREADR_STALLED
    rig.place(mapti(8, 2, LPI + 20, 3), at=at)                # software corrects it
    rig.write(GITS_CWRITER, rig.wptr | CWRITER_RETRY)
    assert rig.creadr() == rig.wptr
    assert rig.errors() == [0x010a06]
    assert rig.pending() == {3: [LPI + 20]}                   # the INT behind it ran


def test_retry_after_growing_the_collection_table_proceeds() -> None:
    rig = Rig(col_pages=1)
    rig.setup()
    at = rig.put(mapc(600, 3), mapti(8, 2, LPI + 2, 600), int_(8, 2))
    assert rig.creadr() == at | CREADR_STALLED
    assert rig.errors() == [0x010903]
    rig.write(GITS_CTLR, 0, 4)
    rig.write(BASER1, COLTAB | VALID | SH_INNER | PAGE_4K | 1)   # two pages: 1024 ICIDs
    rig.write(GITS_CTLR, CTLR_ENABLED, 4)
    rig.write(GITS_CWRITER, rig.wptr | CWRITER_RETRY)
    assert rig.creadr() == rig.wptr
    assert rig.pending() == {3: [LPI + 2]}


def test_rewriting_cbaser_clears_a_stall() -> None:
    rig = Rig()
    rig.setup()
    rig.put(clear(8, 5))
    assert rig.creadr() & CREADR_STALLED
    rig.write(GITS_CTLR, 0, 4)
    rig.write(GITS_CBASER, CMDQ | VALID | SH_INNER)
    rig.write(GITS_CWRITER, 0)
    rig.write(GITS_CTLR, CTLR_ENABLED, 4)
    rig.wptr = 0
    assert rig.creadr() == 0
    rig.run(int_(8, 0))
    assert rig.pending() == {1: [LPI]}


@pytest.mark.parametrize("number", [0x00, 0x02, 0x06, 0x07, 0x10, 0x21, 0x2A, 0xFF])
def test_an_unknown_command_is_unpredictable_and_skipped(number: int) -> None:
    rig = Rig()
    rig.setup()
    before = unpredictable(rig)
    rig.run((number | 8 << 32, 0, 1, 0), int_(8, 0))
    assert unpredictable(rig) == before + 1
    assert not rig.errors()
    assert rig.pending() == {1: [LPI]}


# == translation errors =======================================================================

@pytest.mark.parametrize(("reason", "prepare", "event", "master", "device"), [
    ("its-disabled", "disable", 0, DEV, -1),
    ("no-device-id", "", 0, STRANGER, -1),
    ("no-device-id", "", 0, None, -1),
    ("unmapped-device", "", 0, DEV2, 9),
    ("unmapped-device", "far-device", 0, STRANGER, 600),
    ("event-out-of-range", "", 16, DEV, 8),
    ("event-out-of-range", "", 0xFFFF_FFFF, DEV, 8),
    ("unmapped-event", "", 3, DEV, 8),
    ("unmapped-collection", "icid5", 4, DEV, 8),
])
def test_an_msi_that_cannot_be_translated_is_dropped(reason: str, prepare: str, event: int,
                                                     master: str | None, device: int) -> None:
    rig = Rig()
    rig.setup()
    if prepare == "disable":
        rig.write(GITS_CTLR, 0, 4)
    elif prepare == "far-device":
        rig.plat.machine.its[0].device_id_of = device_ids({STRANGER: 600})
    elif prepare == "icid5":
        rig.run(mapti(8, 4, LPI + 4, 5))
    rig.msi(event, master=master)
    (drop,) = rig.of(EventKind.MSI_DROPPED)
    assert drop.reason == reason
    assert drop.value == event
    if device >= 0:
        assert drop.addr == device
    assert drop.master == master
    assert not rig.of(EventKind.ITS_TRANSLATED)
    assert all_quiet(rig)


def test_an_msi_translated_to_an_rd_without_lpis_is_ignored_there() -> None:
    rig = Rig(cpus=2, lpi_cpus=[0])
    ignored: list[Event] = []
    rig.plat.observe(ignored.append, [EventKind.IGNORED])
    rig.run(mapc(1, 1), mapd(8, itt(8), 4), mapti(8, 0, LPI, 1))
    rig.msi(0)
    assert [(e.cpu, e.intid) for e in rig.of(EventKind.ITS_TRANSLATED)] == [(1, LPI)]
    assert [(e.cpu, e.intid, e.reason) for e in ignored] == [(1, LPI, "lpis-disabled")]
    assert all_quiet(rig)


def test_mapti_of_a_mapped_event_is_unpredictable_and_ignored() -> None:
    """A driver that maps an EventID twice without DISCARD is caught, and the first
    mapping stands (Linux moves a mapped event with MOVI, never by remapping)."""
    rig = Rig()
    rig.setup()
    rig.run(mapti(8, 0, LPI + 5, 2))               # EventID 0 of DeviceID 8 is mapped already
    assert [e.reason for e in rig.of(EventKind.UNPREDICTABLE)] == ["its-mapti-mapped-event"]
    assert not rig.errors()
    rig.msi(0)
    assert rig.pending() == {1: [LPI]}
