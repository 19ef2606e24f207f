"""The devicetree side of the firmware: the shipped boards, the loader's problems (named by
node and property), the hardware built to match, and R7/R8 as a devicetree says them."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.firmware.dt_variants import board, problems, variant

from directlpi import Platform
from directlpi.firmware.acpi import FirmwareError
from directlpi.firmware.boards import DEFAULT_DTB, board_files, default_tree
from directlpi.firmware.devicetree import DtBoard, DtError, fdt_bytes, load_board, read_board
from directlpi.firmware.fdt import FdtNode, build_fdt, compile_dts, parse_fdt
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.desc import IRQ_HANDLED
from directlpi.kernel.pci import PCI_IRQ_MSI, PCI_IRQ_MSIX

GIC = "/interrupt-controller@8000000"
DLPI = f"{GIC}/direct-lpi"
PCIE = "/pcie@3f000000"
GICR_TYPER = 0x08
TYPER_DIRECT_LPI = 1 << 3


# -- the shipped boards ------------------------------------------------------------------------

def test_eight_example_boards_are_shipped() -> None:
    assert {p.stem for p in board_files()} == {
        "default", "gicr-256cpus", "mbi-only", "mbi-and-direct-lpi", "rds-without-directlpi",
        "its", "gicv2m", "hyperv-spi"}


@pytest.mark.parametrize("path", board_files(), ids=lambda p: p.stem)
def test_every_shipped_board_loads_builds_and_boots(path: Path) -> None:
    dt = load_board(path)
    plat = Platform.from_board(dt)
    assert plat.num_cpus == len(dt.board.cpus)
    kern = plat.boot()
    assert sorted(kern.irq.online) == list(range(plat.num_cpus))


def test_the_shipped_default_dtb_is_what_dtc_makes_of_default_dts() -> None:
    assert parse_fdt(compile_dts(board("default"))) == parse_fdt(DEFAULT_DTB.read_bytes())


def test_the_default_platform_is_the_shipped_default_board() -> None:
    ours, theirs = Platform.default().board, Platform.from_devicetree(board("default")).board
    assert ours.name == "directlpi default board (8 CPUs)"
    assert (ours.cpus, ours.memory, ours.gic) == (theirs.cpus, theirs.memory, theirs.gic)
    assert ours.gic.direct_lpi and ours.gic.msi_controller and ours.gic.mbi_ranges == ((256, 128),)
    (host,) = ours.pci_hosts
    assert host.msi_parent is ours.gic.direct_lpi_fwnode


def test_the_default_board_grows_a_second_gicr_region_past_123_cpus() -> None:
    small, big = Platform.default(cpus=4), Platform.default(cpus=130)
    assert len(small.board.gic.redist_regions) == 1 and small.board.name.endswith("(4 CPUs)")
    assert len(big.board.gic.redist_regions) == 2
    assert big.gicr_base(122) < 1 << 32 <= big.gicr_base(123) == 0x40_0000_0000
    kern = big.boot()
    assert len(kern.irq.online) == 130


def test_the_256_cpu_board_puts_133_rds_above_4_gib() -> None:
    plat = Platform.from_devicetree(board("gicr-256cpus"))
    assert plat.num_cpus == 256 and plat.board.cpus[200] == (12 << 8) | 8
    above = [c for c in range(256) if plat.gicr_base(c) >= 1 << 32]
    assert above == list(range(123, 256))
    high = 0x40_0000_0000
    assert plat.gicr_base(123) == high and plat.gicr_base(255) == high + 132 * 0x20000
    kern = plat.boot()
    assert kern.direct_lpi is not None
    fn = plat.add_pci_device("0000:00:03.0", msi_vectors=1, msi_64bit=False)
    kern.pci.scan()
    kern.pci_alloc_irq_vectors(fn, 1, 1, PCI_IRQ_MSI)
    virq = kern.pci_irq_vector(fn, 0)
    kern.request_irq(virq, lambda irq, dev: IRQ_HANDLED, name="32-bit")
    with pytest.raises(KernelError) as exc:                 # R11 on a described board
        kern.irq_set_affinity(virq, {200})
    assert exc.value.errno == errno.ENOSPC and "32-bit MSI addressing" in str(exc.value)


def _all_rds_report_direct_lpi(plat: Platform) -> bool:
    return all(plat.bus.read(plat.gicr_base(c) + GICR_TYPER, 8) & TYPER_DIRECT_LPI
               for c in range(plat.num_cpus))


def test_R7_mbi_only_board_no_direct_lpi_though_every_rd_reports_it() -> None:
    plat = Platform.from_devicetree(board("mbi-only"))
    assert _all_rds_report_direct_lpi(plat)
    fn = plat.add_pci_device("0000:00:01.0", msix_vectors=2)
    kern = plat.boot()
    assert kern.direct_lpi is None and kern.msi_provider == "mbi"
    assert kern.log.grep("Direct LPI not described by firmware")
    assert kern.pci_alloc_irq_vectors(fn, 1, 2, PCI_IRQ_MSIX) == 2     # by MBI instead
    msg = kern.get_cached_msi_msg(kern.pci_irq_vector(fn, 0))
    assert msg.address == plat.gicd_base + 0x40 and 256 <= msg.data < 384


def test_a_bridge_chooses_direct_lpi_or_mbi_by_requester_id() -> None:
    plat = Platform.from_devicetree(board("mbi-and-direct-lpi"))
    on_bus0 = plat.add_pci_device("0000:00:01.0", msix_vectors=1)
    on_bus1 = plat.add_pci_device("0000:01:00.0", msix_vectors=1)
    kern = plat.boot()
    assert kern.pci_alloc_irq_vectors(on_bus0, 1, 1, PCI_IRQ_MSIX) == 1
    runs: list[int] = []
    kern.request_irq(kern.pci_irq_vector(on_bus0, 0),
                     lambda irq, dev: runs.append(irq) or IRQ_HANDLED, name="bus0")
    on_bus0.raise_msi(0)
    plat.run_until_idle(verify=True)
    assert runs == [kern.pci_irq_vector(on_bus0, 0)]
    assert kern.get_cached_msi_msg(kern.pci_irq_vector(on_bus0, 0)).address == \
        plat.gicr_base(0) + 0x40                           # RID 0x008 -> Direct LPI
    kern.pci_alloc_irq_vectors(on_bus1, 1, 1, PCI_IRQ_MSIX)  # RID 0x100 -> the GIC node: MBI
    virq = kern.pci_irq_vector(on_bus1, 0)
    assert kern.get_cached_msi_msg(virq).address == plat.gicd_base + 0x40
    kern.request_irq(virq, lambda irq, dev: runs.append(irq) or IRQ_HANDLED, name="bus1")
    on_bus1.raise_msi(0)
    plat.run_until_idle(verify=True)
    assert runs[-1] == virq


def test_R8_described_direct_lpi_refused_when_the_rds_lack_it() -> None:
    plat = Platform.from_devicetree(board("rds-without-directlpi"))
    assert not any(plat.bus.read(plat.gicr_base(c) + GICR_TYPER, 8) & TYPER_DIRECT_LPI
                   for c in range(plat.num_cpus))
    kern = plat.boot()
    assert plat.board.gic.direct_lpi and kern.direct_lpi is None
    (line,) = kern.log.grep("not every redistributor reports GICR_TYPER.DirectLPI")
    assert "not used as an MSI provider" in line


def test_options_override_the_silicon_not_the_description() -> None:
    plat = Platform.from_devicetree(board("default"), direct_lpi=[True] * 7 + [False],
                                    lpi_id_bits=20)
    assert plat.board.gic.direct_lpi
    kern = plat.boot()
    assert kern.direct_lpi is None and kern.log.grep("not every redistributor")


def test_rds_elsewhere_than_the_gic_node_says_stop_the_kernel(tmp_path: Path) -> None:
    moved = variant(tmp_path, "rds-without-directlpi", (
        "directlpi,direct-lpi = <0>;", "directlpi,gicr-regions = <0x0 0x080c0000 123>;"))
    plat = Platform.from_devicetree(moved)
    assert plat.gicr_base(0) == 0x080C_0000 and plat.board.gic.redist_regions[0][0] == 0x080A_0000
    with pytest.raises(KernelError, match="CPU0: mpidr 0 has no re-distributor"):
        plat.boot()


# -- problems, named by node and property --------------------------------------------------------

CASES = {
    "cpu reg wider than /cpus says": (
        "default", [("\t\t#address-cells = <1>;\n\t\t#size-cells = <0>;\n\t\tcpu@0",
                     "\t\t#address-cells = <2>;\n\t\t#size-cells = <0>;\n\t\tcpu@0")],
        "/cpus/cpu@0: reg: 1 cells, but #address-cells of /cpus is 2"),
    "two CPUs with one MPIDR": (
        "default", [("reg = <0x7>;", "reg = <0x6>;")],
        "/cpus/cpu@7: reg: MPIDR 0x6 is also /cpus/cpu@6's"),
    "not an MPIDR": (
        "default", [("reg = <0x7>;", "reg = <0x1000007>;")],
        "/cpus/cpu@7: reg: 0x1000007 is not an MPIDR affinity"),
    "RAM over the distributor": (
        "default", [("reg = <0x0 0x40000000 0x0 0x80000000>;",
                     "reg = <0x0 0x07ff0000 0x0 0x80000000>;")],
        f"{GIC}: reg: GICD @0x8000000+0x10000 overlaps /memory@40000000 RAM "
        "@0x7ff0000+0x80000000"),
    "a GIC without reg": (
        "default", [("\t\treg = <0x0 0x08000000 0x0 0x10000>,\t\t/* GICD */\n"
                     "\t\t      <0x0 0x080a0000 0x0 0xf60000>;\t\t/* GICR region: 123 RDs */\n",
                     "")],
        f"{GIC}: reg: missing"),
    "RAM without reg": (
        "default", [("reg = <0x0 0x40000000 0x0 0x80000000>;\t\t/* 2 GiB */", "")],
        "/memory@40000000: reg: missing"),
    "a GICR region missing from reg": (
        "default", [("ranges;\n\t\treg", "ranges;\n\t\t#redistributor-regions = <2>;\n\t\treg")],
        f"{GIC}: reg: 2 entries, but the GICD and #redistributor-regions = 2 GICR region(s) "
        "need 3"),
    "a GICR region of half a redistributor": (
        "default", [("<0x0 0x080a0000 0x0 0xf60000>", "<0x0 0x080a0000 0x0 0xf50000>")],
        f"{GIC}: reg: GICR region 0 @0x80a0000 size 0xf50000: not a 64 KiB-aligned whole "
        "number of redistributors (0x20000 each)"),
    "GICR regions too small for the CPUs": (
        "default", [("<0x0 0x080a0000 0x0 0xf60000>", "<0x0 0x080a0000 0x0 0x80000>")],
        f"{GIC}: reg: the GICR regions hold 4 redistributor(s) for 8 CPUs"),
    "a stride that is not whole frames": (
        "default", [("ranges;\n", "ranges;\n\t\tredistributor-stride = /bits/ 64 <0x28000>;\n")],
        f"{GIC}: redistributor-stride: 0x28000: must be a multiple of 64 KiB"),
    "a 32-bit stride": (
        "default", [("ranges;\n", "ranges;\n\t\tredistributor-stride = <0x20000>;\n")],
        f"{GIC}: redistributor-stride: 1 cells, expected a 64-bit value (2)"),
    "msi-controller without mbi-ranges": (
        "default", [("mbi-ranges = <256 128>;", "")],
        f"{GIC}: msi-controller: on the GIC node it means MBI and needs mbi-ranges"),
    "MBIs beyond the SPIs": (
        "default", [("mbi-ranges = <256 128>;", "mbi-ranges = <1000 100>;")],
        f"{GIC}: mbi-ranges: <1000 100>: SPIs 1000..1099 are not within the implemented SPIs "
        "32..1019"),
    "an MBI alias frame": (
        "default", [("mbi-ranges = <256 128>;",
                     "mbi-ranges = <256 128>;\n\t\tmbi-alias = <0x0 0x08100000>;")],
        f"{GIC}: mbi-alias: not modelled"),
    "#msi-cells on the GIC node": (
        "default", [("#interrupt-cells = <3>;", "#interrupt-cells = <3>;\n\t\t#msi-cells = <1>;")],
        f"{GIC}: #msi-cells: not allowed on the GIC node"),
    "a DeviceID cell on Direct LPI": (
        "default", [("#msi-cells = <0>;", "#msi-cells = <1>;")],
        f"{DLPI}: #msi-cells: 1: must be 0 (a Direct LPI MSI carries only the INTID; there is "
        "no DeviceID)"),
    "reg on the Direct LPI node": (
        "default", [("#msi-cells = <0>;",
                     "#msi-cells = <0>;\n\t\t\treg = <0x0 0x080a0000 0x0 0x20000>;")],
        f"{DLPI}: reg: not allowed: the MSI doorbells are the GIC's redistributors"),
    "an ITS of the wrong size": (
        "default", [("\t\tgic_dlpi: direct-lpi {",
                     "\t\tits@8080000 { compatible = \"arm,gic-v3-its\"; msi-controller; "
                     "#msi-cells = <1>; reg = <0x0 0x08080000 0x0 0x10000>; };\n"
                     "\t\tgic_dlpi: direct-lpi {")],
        f"{GIC}/its@8080000: reg: ITS @0x8080000 size 0x10000: an ITS is a 64 KiB-aligned "
        "0x20000-byte region"),
    "msi-parent and msi-map": (
        "default", [("msi-parent = <&gic_dlpi>;",
                     "msi-parent = <&gic_dlpi>;\n\t\tmsi-map = <0x0 &gic_dlpi 0x0 0x100>;")],
        f"{PCIE}: msi-map: given together with msi-parent"),
    "an msi-map with a DeviceID base": (
        "mbi-and-direct-lpi", [("<0x0 &gic_dlpi 0x0 0x100>", "<0x0 &gic_dlpi 0x20 0x100>")],
        f"{PCIE}: msi-map: entry 0: msi-base 0x20: both MSI controllers of the GIC take no "
        "msi-specifier (no DeviceID): write 0"),
    "overlapping msi-map entries": (
        "mbi-and-direct-lpi", [("<0x100 &gic 0x0 0xf00>", "<0x80 &gic 0x0 0xf00>")],
        f"{PCIE}: msi-map: entry 1: RIDs 0x80+0xf00 overlap RIDs 0x0+0x100"),
    "msi-parent to a GIC without MBIs": (
        "gicr-256cpus", [("msi-parent = <&gic_dlpi>;", "msi-parent = <&gic>;")],
        f"{PCIE}: msi-parent: names {GIC}, which offers no MBIs"),
    "msi-parent to something else": (
        "default", [("memory@40000000 {", "mem: memory@40000000 {"),
                    ("msi-parent = <&gic_dlpi>;", "msi-parent = <&mem>;")],
        f"{PCIE}: msi-parent: names /memory@40000000, which is not an MSI controller"),
    "msi-parent to the refused Direct LPI node": (
        "default", [("#msi-cells = <0>;", "")],
        f"{PCIE}: msi-parent: names {DLPI}, a Direct LPI node that cannot be used"),
    "ECAM smaller than bus-range": (
        "default", [("bus-range = <0x0 0xf>;", "bus-range = <0x0 0x1f>;")],
        f"{PCIE}: bus-range: buses 0..31 need 0x2000000 bytes of ECAM, reg gives 0x1000000"),
    "a translated memory window": (
        "default", [("<0x02000000 0x0 0x10000000 0x0 0x10000000",
                     "<0x02000000 0x0 0x0 0x0 0x10000000")],
        f"{PCIE}: ranges: memory window PCI 0x0 -> CPU 0x10000000: the model maps PCI memory 1:1"),
    "ranges of the wrong width": (
        "default", [("0x0 0x2eff0000>;", "0x2eff0000>;")],
        f"{PCIE}: ranges: 6 cells, not a multiple of 7"),
    "a bad hardware-model flag count": (
        "rds-without-directlpi", [("directlpi,direct-lpi = <0>;", "directlpi,direct-lpi = <0 1>;")],
        "/hardware-model: directlpi,direct-lpi: 2 cells: one 0/1 flag for every RD, or one per "
        "CPU (8)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_problem_is_named_by_node_and_property(tmp_path: Path, case: str) -> None:
    name, edits, expected = CASES[case]
    found = problems(variant(tmp_path, name, *edits))
    assert any(p.endswith(expected) or expected in p for p in found), found
    assert all(p.startswith(f"{tmp_path}/") for p in found)


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    found = problems(variant(tmp_path, "default",
                             ("reg = <0x7>;", "reg = <0x6>;"),
                             ("mbi-ranges = <256 128>;", "mbi-ranges = <1000 100>;"),
                             ("bus-range = <0x0 0xf>;", "bus-range = <0x0 0x1f>;")))
    assert [p.split(": ", 2)[1] for p in found] == ["/cpus/cpu@7", GIC, PCIE]
    assert str(DtError(found)) == f"3 problems: {'; '.join(found)}"


def test_unreadable_inputs_are_firmware_errors(tmp_path: Path) -> None:
    with pytest.raises(FirmwareError, match="No such file or directory"):
        load_board(tmp_path / "missing.dtb")
    (tmp_path / "broken.dts").write_text("/dts-v1/;\n/ { oops\n")
    with pytest.raises(FirmwareError, match=r"broken\.dts"):
        load_board(tmp_path / "broken.dts")
    with pytest.raises(FirmwareError, match="magic"):
        load_board(b"\x00" * 64)
    dtb = DEFAULT_DTB.read_bytes()
    with pytest.raises(FirmwareError, match="truncated"):
        load_board(dtb[:len(dtb) // 2])


def test_a_board_that_cannot_be_built_is_a_firmware_error(tmp_path: Path) -> None:
    with pytest.raises(FirmwareError, match="the hardware it describes cannot be built"):
        Platform.from_devicetree(board("default"), lpi_id_bits=99)


# -- mutation: never anything but a FirmwareError ------------------------------------------------

_BOTH = fdt_bytes(board("mbi-and-direct-lpi"))


@settings(max_examples=300)
@given(st.data())
def test_mutated_dtbs_give_firmware_errors_or_a_board(data: st.DataObject) -> None:
    blob = bytearray(_BOTH)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(blob))))
    raw = bytes(blob if cut is None else blob[:cut])
    try:
        dt = load_board(raw)
    except FirmwareError as e:
        assert str(e)
        return
    _build_or_firmware_error(dt)


def _props(root: FdtNode) -> list[tuple[FdtNode, str]]:
    return [(n, p) for n in root.walk() for p in sorted(n.props)]


def _build_or_firmware_error(dt: DtBoard) -> None:
    try:
        Platform.from_board(dt)
    except FirmwareError as e:
        assert "cannot be built" in str(e)


@settings(max_examples=400)
@given(st.data())
def test_mutated_properties_give_named_problems_or_a_board(data: st.DataObject) -> None:
    root = parse_fdt(_BOTH)
    targets = _props(root)
    for _ in range(data.draw(st.integers(1, 3))):
        node, prop = data.draw(st.sampled_from(targets))
        action = data.draw(st.sampled_from(["delete", "cells", "bytes", "truncate"]))
        if action == "delete":
            node.props.pop(prop, None)
        elif action == "cells":
            n = data.draw(st.integers(0, 8))
            cells = data.draw(st.lists(st.sampled_from(
                [0, 1, 2, 3, 0x10000, 0x20000, 0x8000000, 0xFFFFFFFF]), min_size=n, max_size=n))
            node.props[prop] = struct.pack(f">{n}I", *cells)
        elif action == "bytes":
            node.props[prop] = data.draw(st.binary(max_size=24))
        else:
            node.props[prop] = node.props.get(prop, b"")[:data.draw(st.integers(0, 7))]
    try:
        dt = read_board(root)
    except DtError as e:
        assert e.problems and all(p.startswith("/") for p in e.problems)
        return
    _build_or_firmware_error(dt)


def test_default_tree_refuses_a_bad_cpu_count() -> None:
    from directlpi.errors import ConfigError
    with pytest.raises(ConfigError, match="cpus: 0 is not a PE count"):
        default_tree(0)


def test_build_fdt_is_the_inverse_of_parse_fdt() -> None:
    tree = parse_fdt(_BOTH)
    assert parse_fdt(build_fdt(tree)) == tree
    assert build_fdt(parse_fdt(DEFAULT_DTB.read_bytes())) == DEFAULT_DTB.read_bytes()


@settings(max_examples=60)
@given(st.data())
def test_check_never_fails_on_a_mutated_board(tmp_path_factory: pytest.TempPathFactory,
                                              data: st.DataObject) -> None:
    """Through the whole ``directlpi check`` path -- loader, dt-schema, the boot on the
    described hardware -- a mutated tree gives exit 0 or 1 with lines that name the
    file, never an internal error."""
    from directlpi.cli import EXIT_FAILED, EXIT_OK, main

    root = parse_fdt(_BOTH)
    for _ in range(data.draw(st.integers(1, 2))):
        node, prop = data.draw(st.sampled_from(_props(root)))
        n = data.draw(st.integers(0, 6))
        node.props[prop] = struct.pack(f">{n}I", *data.draw(st.lists(
            st.sampled_from([0, 1, 3, 0x100, 0x20000, 0x8000000, 0xFFFFFFFF]),
            min_size=n, max_size=n)))
    path = tmp_path_factory.mktemp("check") / "board.dtb"
    path.write_bytes(build_fdt(root))
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(["check", str(path)])
    assert rc in (EXIT_OK, EXIT_FAILED), out.getvalue()
    lines = out.getvalue().splitlines()
    assert lines and all(ln.startswith(str(path)) or ln.startswith("directlpi check:")
                         for ln in lines), lines


def test_a_redistributor_stride_is_built_and_walked(tmp_path: Path) -> None:
    strided = variant(tmp_path, "default",
                      ("<0x0 0x080a0000 0x0 0xf60000>", "<0x0 0x080a0000 0x0 0x200000>"),
                      ("ranges;\n", "ranges;\n\t\tredistributor-stride = /bits/ 64 <0x40000>;\n"))
    plat = Platform.from_devicetree(strided)
    assert plat.board.gic.redist_stride == 0x40000
    assert [plat.gicr_base(c) for c in (0, 1, 7)] == [0x080A_0000, 0x080E_0000, 0x0826_0000]
    kern = plat.boot()
    assert sorted(kern.irq.online) == list(range(8)) and kern.direct_lpi is not None
