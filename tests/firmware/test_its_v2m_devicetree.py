"""The devicetree side of ITSes and GICv2m frames: the shipped ``its.dts`` and
``gicv2m.dts`` read into the right descriptions and silicon, each malformed ITS, frame
or MSI route is one problem naming node and property, the schemas agree, and the
hardware built from the tree has the blocks (register values read over the bus)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.firmware.dt_variants import ITS_NODE, board, its_at, problems, variant

from directlpi import Platform
from directlpi.cli import main
from directlpi.firmware.devicetree import fdt_bytes, load_board
from directlpi.firmware.schema import schema_problems
from directlpi.hw.its import DEVICE_ID_BITS
from directlpi.kernel.fwdesc import ItsDescription, V2mFrameDescription

GIC = "/interrupt-controller@8000000"
ITS = f"{GIC}/msi-controller@8080000"
V2M = f"{GIC}/v2m@8020000"
PCIE = "/pcie@3f000000"
MODEL = "/hardware-model"
# Literal offsets and fields (Arm IHI 0069; GICv2m as SBSA and Linux's irq-gic-v2m.c).
GICD_TYPER, GICD_TYPER_LPIS = 0x0004, 1 << 17
GITS_TYPER, GITS_TYPER_PTA = 0x0008, 1 << 19
GICR_TYPER, GICR_TYPER_DIRECT_LPI = 0x0008, 1 << 3
MSI_TYPER = 0x008


V2M_NODE = """		v2m: v2m@8020000 {
			compatible = "arm,gic-v2m-frame";
			msi-controller;
			reg = <0x0 0x08020000 0x0 0x1000>;
		};"""


def _v2m_at(base: int, extra: str = "") -> str:
    return (f"\t\tv2m@{base:x} {{ compatible = \"arm,gic-v2m-frame\"; msi-controller; "
            f"reg = <0x0 {base:#x} 0x0 0x1000>; {extra}}};")


# -- the shipped boards ------------------------------------------------------------------------

def test_the_its_board_describes_one_its_and_routes_every_rid_to_it() -> None:
    dt = load_board(board("its"))
    gic = dt.board.gic
    assert gic.its == (ItsDescription(0x0808_0000, translation_id=0),)
    assert gic.its[0].fwnode.name == ITS
    assert not gic.direct_lpi and not gic.msi_controller and gic.v2m_frames == ()
    assert dt.hardware["its"] == (0x0808_0000,) and dt.hardware["direct_lpi"] is False
    assert "v2m_frames" not in dt.hardware and "lpis" not in dt.hardware
    assert dt.pci is not None and dt.pci.msi_parent is None
    (route,) = dt.pci.msi_map
    assert (route.rid_base, route.count, route.msi_base) == (0, 0x10000, 0)
    assert route.parent is gic.its[0].fwnode and gic.its_by_fwnode(route.parent) is gic.its[0]
    assert dt.pci.msi_route_for(0x0108) == (gic.its[0].fwnode, 0x0108)   # DeviceID = RID
    assert "MSI providers described: ITS (1)" in dt.notes


def test_the_gicv2m_board_describes_one_frame_without_lpis() -> None:
    dt = load_board(board("gicv2m"))
    gic = dt.board.gic
    assert gic.v2m_frames == (V2mFrameDescription(0x0802_0000, None, None, frame_id=0),)
    assert gic.v2m_frames[0].fwnode.name == V2M and gic.its == ()
    assert not gic.direct_lpi and not gic.msi_controller
    assert dt.hardware["v2m_frames"] == ((0x0802_0000, 80, 64),)     # QEMU virt's SPIs 80..143
    assert dt.hardware["lpis"] is False and "its" not in dt.hardware
    assert dt.pci is not None and dt.pci.msi_parent is gic.v2m_frames[0].fwnode
    assert dt.pci.msi_route_for(0x10) == (gic.v2m_frames[0].fwnode, 0x10)


def test_the_boards_build_the_blocks_they_describe() -> None:
    its = Platform.from_devicetree(board("its"))
    (block,) = its.machine.its
    assert block.base == 0x0808_0000 and its.machine.v2m == []
    assert not its.bus.read(0x0808_0000 + GITS_TYPER, 8) & GITS_TYPER_PTA
    assert not its.bus.read(its.gicr_base(0) + GICR_TYPER, 8) & GICR_TYPER_DIRECT_LPI
    assert its.bus.read(its.gicd_base + GICD_TYPER, 4) & GICD_TYPER_LPIS
    v2m = Platform.from_devicetree(board("gicv2m"))
    assert v2m.machine.its == [] and len(v2m.machine.v2m) == 1
    typer = v2m.bus.read(0x0802_0000 + MSI_TYPER, 4)
    assert (typer >> 16 & 0x3FF, typer & 0x3FF) == (80, 64)
    assert not v2m.bus.read(v2m.gicd_base + GICD_TYPER, 4) & GICD_TYPER_LPIS


def test_its_pta_of_the_hardware_model_reaches_gits_typer(tmp_path: Path) -> None:
    path = variant(tmp_path, "its", ("directlpi,direct-lpi = <0>;",
                                     "directlpi,direct-lpi = <0>;\n\t\tdirectlpi,its-pta = <1>;"))
    assert load_board(path).hardware["its_pta"] is True
    plat = Platform.from_devicetree(path)
    assert plat.bus.read(0x0808_0000 + GITS_TYPER, 8) & GITS_TYPER_PTA


def test_the_msi_typer_override_is_the_frames_spis(tmp_path: Path) -> None:
    path = variant(tmp_path, "gicv2m", ("reg = <0x0 0x08020000 0x0 0x1000>;",
                                        "reg = <0x0 0x08020000 0x0 0x1000>;\n"
                                        "\t\t\tarm,msi-base-spi = <100>;\n"
                                        "\t\t\tarm,msi-num-spis = <32>;"))
    dt = load_board(path)
    assert dt.board.gic.v2m_frames == (V2mFrameDescription(0x0802_0000, 100, 32),)
    assert dt.hardware["v2m_frames"] == ((0x0802_0000, 100, 32),)
    typer = Platform.from_board(dt).bus.read(0x0802_0000 + MSI_TYPER, 4)
    assert (typer >> 16 & 0x3FF, typer & 0x3FF) == (100, 32)


def test_frames_without_an_override_get_64_spis_each_from_80(tmp_path: Path) -> None:
    path = variant(tmp_path, "gicv2m", (V2M_NODE, V2M_NODE + "\n" + _v2m_at(0x0803_0000)))
    dt = load_board(path)
    assert dt.hardware["v2m_frames"] == ((0x0802_0000, 80, 64), (0x0803_0000, 144, 64))
    assert [f.frame_id for f in dt.board.gic.v2m_frames] == [0, 1]
    assert dt.pci is not None and dt.pci.msi_parent is dt.board.gic.v2m_frames[0].fwnode
    assert [(f.spi_base, f.spi_count) for f in Platform.from_board(dt).machine.v2m] == [
        (80, 64), (144, 64)]


def test_two_itses_with_an_msi_map_that_offsets_device_ids(tmp_path: Path) -> None:
    path = variant(tmp_path, "its",
                   (ITS_NODE, ITS_NODE + "\n\t\tits1: " + its_at(0x0C00_0000).lstrip()),
                   ("msi-map = <0x0 &its 0x0 0x10000>;",
                    "msi-map = <0x0 &its 0x0 0x100>, <0x100 &its1 0x1000 0xff00>;"))
    dt = load_board(path)
    first, second = dt.board.gic.its
    assert (first.base, first.translation_id) == (0x0808_0000, 0)
    assert (second.base, second.translation_id) == (0x0C00_0000, 1)
    assert dt.hardware["its"] == (0x0808_0000, 0x0C00_0000)
    assert dt.pci is not None
    assert dt.pci.msi_route_for(0x0042) == (first.fwnode, 0x0042)
    assert dt.pci.msi_route_for(0x0142) == (second.fwnode, 0x1042)
    assert [i.base for i in Platform.from_board(dt).machine.its] == [0x0808_0000, 0x0C00_0000]


def test_msi_parent_to_an_its_takes_a_zero_specifier_and_device_id_is_the_rid(
        tmp_path: Path) -> None:
    path = variant(tmp_path, "its", ("msi-map = <0x0 &its 0x0 0x10000>;",
                                     "msi-parent = <&its 0>;"))
    dt = load_board(path)
    assert dt.pci is not None and dt.pci.msi_parent is dt.board.gic.its[0].fwnode
    assert dt.pci.msi_route_for(0x0801) == (dt.board.gic.its[0].fwnode, 0x0801)


# -- one problem per mistake, named by node and property ---------------------------------------

_MANY_ITSES = "\n".join(its_at(0x0C00_0000 + k * 0x20000) for k in range(16))
CASES: dict[str, tuple[str, list[tuple[str, str]], str]] = {
    "an ITS with #msi-cells = <0>": (
        "its", [("#msi-cells = <1>;", "#msi-cells = <0>;")],
        f"{ITS}: #msi-cells: 0: must be 1 (the msi-specifier is the DeviceID)"),
    "an ITS without #msi-cells": (
        "its", [("#msi-cells = <1>;", "")], f"{ITS}: #msi-cells: missing"),
    "an ITS without msi-controller": (
        "its", [("\t\t\tmsi-controller;\n\t\t\t#msi-cells = <1>;", "\t\t\t#msi-cells = <1>;")],
        f"{ITS}: msi-controller: missing: an ITS is an MSI controller"),
    "an ITS reg of the wrong size": (
        "its", [("<0x0 0x08080000 0x0 0x20000>", "<0x0 0x08080000 0x0 0x40000>")],
        f"{ITS}: reg: ITS @0x8080000 size 0x40000: an ITS is a 64 KiB-aligned 0x20000-byte "
        "region"),
    "an ITS reg not 64 KiB-aligned": (
        "its", [("<0x0 0x08080000 0x0 0x20000>", "<0x0 0x08088000 0x0 0x20000>")],
        f"{ITS}: reg: ITS @0x8088000 size 0x20000: an ITS is a 64 KiB-aligned"),
    "an ITS with two reg entries": (
        "its", [("<0x0 0x08080000 0x0 0x20000>",
                 "<0x0 0x08080000 0x0 0x10000>, <0x0 0x08090000 0x0 0x10000>")],
        f"{ITS}: reg: 2 entries: an ITS takes one region"),
    "an ITS on a GIC without LPIs": (
        "its", [("directlpi,direct-lpi = <0>;", "directlpi,lpis = <0>;")],
        f"{MODEL}: directlpi,lpis: 0 (GICD_TYPER.LPIS = 0), but {ITS} is an ITS: an ITS "
        "translates MSIs into LPIs"),
    "a 17th ITS": (
        "its", [(ITS_NODE, ITS_NODE + "\n" + _MANY_ITSES)],
        f"{GIC}/msi-controller@c1e0000: compatible: ITS number 17: the model builds at most 16"),
    "an ITS overlapping the GICR region": (
        "its", [("<0x0 0x08080000 0x0 0x20000>", "<0x0 0x08090000 0x0 0x20000>")],
        f"{GIC}: reg: GICR region 0 @0x80a0000+0xf60000 overlaps {ITS} ITS @0x8090000+0x20000"),
    "a GIC node without ranges": (
        "its", [("\t\tranges;\n", "")],
        f"{GIC}: ranges: missing: the reg of {ITS} cannot be translated"),
    "a GIC node with a translating ranges": (
        "its", [("\t\tranges;\n", "\t\tranges = <0x0 0x0 0x0 0x0 0x0 0x10000000>;\n")],
        f"{GIC}: ranges: not empty: the model reads the reg of the GIC's ITS and GICv2m "
        "children as CPU addresses"),
    "a bad its-pta flag": (
        "its", [("directlpi,direct-lpi = <0>;", "directlpi,its-pta = <2>;")],
        f"{MODEL}: directlpi,its-pta: 2: a 0/1 flag"),
    "msi-parent to an ITS without the specifier": (
        "its", [("msi-map = <0x0 &its 0x0 0x10000>;", "msi-parent = <&its>;")],
        f"{PCIE}: msi-parent: 1 cell(s): {ITS} is an ITS (#msi-cells = <1>): write <&its 0>"),
    "msi-parent to an ITS with a non-zero specifier": (
        "its", [("msi-map = <0x0 &its 0x0 0x10000>;", "msi-parent = <&its 5>;")],
        f"{PCIE}: msi-parent: msi-specifier 0x5: Linux ignores it for PCI"),
    "msi-map to an ITS beyond its DeviceIDs": (
        "its", [("msi-map = <0x0 &its 0x0 0x10000>;",
                 f"msi-map = <0x0 &its {(1 << DEVICE_ID_BITS) - 0x8000:#x} 0x10000>;")],
        f"{PCIE}: msi-map: entry 0: msi-base {(1 << DEVICE_ID_BITS) - 0x8000:#x}: DeviceIDs "
        f"{(1 << DEVICE_ID_BITS) - 0x8000:#x}+0x10000 do not fit the {DEVICE_ID_BITS}-bit "
        "DeviceIDs of the model's ITS"),
    "msi-map entries sharing DeviceIDs": (
        "its", [("msi-map = <0x0 &its 0x0 0x10000>;",
                 "msi-map = <0x0 &its 0x0 0x100>, <0x100 &its 0x80 0x100>;")],
        f"{PCIE}: msi-map: entry 1: DeviceIDs 0x80+0x100 on {ITS} overlap those of RIDs "
        "0x0+0x100"),
    "a GICv2m frame not 64 KiB-aligned": (
        "gicv2m", [("<0x0 0x08020000 0x0 0x1000>", "<0x0 0x08021000 0x0 0x1000>")],
        f"{V2M}: reg: GICv2m frame @0x8021000 size 0x1000: the frame is at least 4 KiB, and "
        "64 KiB-aligned because the model maps each frame as a 64 KiB region"),
    "a GICv2m frame smaller than 4 KiB": (
        "gicv2m", [("<0x0 0x08020000 0x0 0x1000>", "<0x0 0x08020000 0x0 0x800>")],
        f"{V2M}: reg: GICv2m frame @0x8020000 size 0x800: the frame is at least 4 KiB"),
    "a GICv2m frame without msi-controller": (
        "gicv2m", [("\t\t\tmsi-controller;\n\t\t\treg = <0x0 0x08020000",
                    "\t\t\treg = <0x0 0x08020000")],
        f"{V2M}: msi-controller: missing: a GICv2m frame is an MSI controller"),
    "a GICv2m frame with #msi-cells": (
        "gicv2m", [("reg = <0x0 0x08020000 0x0 0x1000>;",
                    "reg = <0x0 0x08020000 0x0 0x1000>;\n\t\t\t#msi-cells = <0>;")],
        f"{V2M}: #msi-cells: not part of the arm,gic-v2m-frame binding"),
    "overlapping GICv2m frames": (
        "gicv2m", [(V2M_NODE, V2M_NODE + "\n" + _v2m_at(0x0803_0000).replace(
            "0x8030000 0x0 0x1000", "0x8020000 0x0 0x1000"))],
        f"{GIC}/v2m@8030000: reg: GICv2m frame (64 KiB as the model maps it) @0x8020000+0x10000 "
        f"overlaps {V2M} GICv2m frame (64 KiB as the model maps it) @0x8020000+0x10000"),
    "an SPI override outside the SPIs": (
        "gicv2m", [("reg = <0x0 0x08020000 0x0 0x1000>;",
                    "reg = <0x0 0x08020000 0x0 0x1000>;\n"
                    "\t\t\tarm,msi-base-spi = <1000>;\n\t\t\tarm,msi-num-spis = <64>;")],
        f"{V2M}: arm,msi-base-spi: SPIs 1000..1063 (arm,msi-base-spi 1000, arm,msi-num-spis "
        "64) are not within the implemented SPIs 32..1019"),
    "half an SPI override": (
        "gicv2m", [("reg = <0x0 0x08020000 0x0 0x1000>;",
                    "reg = <0x0 0x08020000 0x0 0x1000>;\n\t\t\tarm,msi-num-spis = <64>;")],
        f"{V2M}: arm,msi-num-spis: given without arm,msi-base-spi: Linux overrides MSI_TYPER "
        "only with both"),
    "default frame SPIs beyond directlpi,spis": (
        "gicv2m", [("directlpi,lpis = <0>;", "directlpi,lpis = <0>;\n\t\tdirectlpi,spis = <64>;")],
        f"{V2M}: arm,msi-base-spi: absent, and the SPIs the model gives frame 0 when firmware "
        "does not say (80..143: QEMU virt's 80 + 64 per frame) are not within the implemented "
        "SPIs 32..95"),
    "frame SPIs overlapping the MBI range": (
        "gicv2m", [("\t\t/* The GICv2m MSI frame",
                    "\t\tmsi-controller;\n\t\tmbi-ranges = <96 32>;\n\t\t/* The GICv2m MSI frame")],
        f"{V2M}: arm,msi-base-spi: absent, and the SPIs the model gives frame 0 SPIs 80..143 "
        "overlap mbi-ranges's 96..127"),
    "msi-parent to the second GICv2m frame": (
        "gicv2m", [(V2M_NODE, V2M_NODE + "\n\t\tv2m1: " + _v2m_at(0x0803_0000).lstrip()),
                   ("msi-parent = <&v2m>;", "msi-parent = <&v2m1>;")],
        f"{PCIE}: msi-parent: names {GIC}/v2m@8030000, a GICv2m frame other than the first: "
        f"Linux registers one MSI domain for all the frames, under the first frame's node ({V2M})"),
    "msi-map to a GICv2m frame with an msi-base": (
        "gicv2m", [("msi-parent = <&v2m>;", "msi-map = <0x0 &v2m 0x10 0x10000>;")],
        f"{PCIE}: msi-map: entry 0: msi-base 0x10: a GICv2m frame takes no msi-specifier (no "
        "DeviceID): write 0"),
    "msi-map to a disabled ITS": (
        "its", [("#msi-cells = <1>;\t\t\t/* the DeviceID */",
                 "#msi-cells = <1>;\n\t\t\tstatus = \"disabled\";")],
        f"{PCIE}: msi-map: names {ITS}, an MSI controller of the GIC that is disabled (status)"),
}
CASCADE = re.compile(r"(msi-map|msi-parent): names .*, an MSI controller of the GIC that cannot "
                     r"be used \(its own problems are listed\)$")


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_mistake_is_one_problem_named_by_node_and_property(tmp_path: Path,
                                                                case: str) -> None:
    name, edits, expected = CASES[case]
    found = problems(variant(tmp_path, name, *edits))
    ours = [p for p in found if expected in p]
    assert len(ours) == 1, found
    others = [p for p in found if p not in ours]          # only the host bridge's echo of it
    assert all(CASCADE.search(p) for p in others), found
    where = ours[0].removeprefix(f"{tmp_path}/{name}-variant.dts: ")
    assert re.match(r"/[^:]*: [#\w,-]+: ", where), where       # <node>: <property>: <what>


def test_mistakes_in_several_blocks_are_all_reported(tmp_path: Path) -> None:
    found = problems(variant(tmp_path, "its", ("#msi-cells = <1>;", "#msi-cells = <2>;"),
                             ("directlpi,direct-lpi = <0>;", "directlpi,its-pta = <7>;")))
    assert [p.split(": ", 3)[1:3] for p in found] == [
        [MODEL, "directlpi,its-pta"], [ITS, "#msi-cells"], [PCIE, "msi-map"]]


# -- the schemas ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["its", "gicv2m"])
def test_the_schemas_accept_the_boards(name: str) -> None:
    assert schema_problems(fdt_bytes(board(name))) == []


@pytest.mark.parametrize(("name", "edits", "expected"), [
    ("its", [("#msi-cells = <1>;", "#msi-cells = <0>;")],
     f"{GIC}: msi-controller@8080000:#msi-cells: 1 was expected (schema arm,gic-v3.yaml)"),
    ("its", [("\t\t\treg = <0x0 0x08080000 0x0 0x20000>;\n", "")],
     f"{GIC}: msi-controller@8080000: 'reg' is a required property (schema arm,gic-v3.yaml)"),
    ("its", [("its: msi-controller@8080000", "its: gic-its@8080000")],
     "False schema does not allow {'compatible': ['arm,gic-v3-its']"),   # as the kernel's
    ("gicv2m", [("reg = <0x0 0x08020000 0x0 0x1000>;",
                 "reg = <0x0 0x08020000 0x0 0x1000>;\n\t\t\tarm,msi-base-spi = <80>;")],
     "'arm,msi-num-spis' is a dependency of 'arm,msi-base-spi'"),
    ("gicv2m", [("directlpi,lpis = <0>;", "directlpi,lpis = <2>;")],
     f"{MODEL}: directlpi,lpis:"),
], ids=["its-msi-cells", "its-no-reg", "its-node-name", "v2m-half-override", "lpis-flag"])
def test_the_schemas_reject_a_broken_its_or_frame(tmp_path: Path, name: str,
                                                  edits: list[tuple[str, str]],
                                                  expected: str) -> None:
    found = schema_problems(fdt_bytes(variant(tmp_path, name, *edits)))
    assert any(expected in p for p in found), found


# -- directlpi check --------------------------------------------------------------------------

def test_check_accepts_both_boards_and_says_what_they_describe(
        capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(board("its")), str(board("gicv2m"))]
    assert main(["check", *files]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"{files[0]}: MSI providers described: ITS (1)" in out
    assert (f"{files[0]}: PCI host bridge: MSIs by msi-map: RIDs 0x0+0x10000 -> ITS {ITS} "
            "(DeviceIDs 0x0+0x10000)") in out
    assert f"{files[1]}: MSI providers described: GICv2m (1 frame(s))" in out
    assert f"{files[1]}: PCI host bridge: MSIs by msi-parent: RIDs 0x0+0x10000 -> GICv2m" in out
    assert out[-1] == "directlpi check: 2 file(s) valid"
