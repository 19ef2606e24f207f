"""What a new user's board file meets: sources preprocessed with cpp as the kernel build
does (the shipped dt-bindings headers on the include path), one content classifier for
every command, and every independent problem of a board reported at once."""

from __future__ import annotations

import contextlib
import io
import shutil
import struct
from pathlib import Path

import pytest

from directlpi import Platform
from directlpi.firmware import fdt
from directlpi.firmware.acpi import FirmwareError, build_madt
from directlpi.firmware.boards import BOARDS_DIR
from directlpi.firmware.check import check_files
from directlpi.firmware.devicetree import DtError, fdt_bytes, load_board
from directlpi.firmware.fdt import DT_INCLUDE_DIR, needs_cpp, parse_fdt
from directlpi.firmware.files import FileKind, classify

GIC = "/interrupt-controller@8000000"
DEFAULT = (BOARDS_DIR / "default.dts").read_text()
HEADERS = ("#include <dt-bindings/interrupt-controller/arm-gic.h>\n"
           "#include <dt-bindings/interrupt-controller/irq.h>\n")
TIMER = """
	timer {
		compatible = "arm,armv8-timer";
		interrupts = <GIC_PPI 13 (GIC_CPU_MASK_SIMPLE(8) | IRQ_TYPE_LEVEL_LOW)>,
			<GIC_SPI 7 IRQ_TYPE_EDGE_BOTH>;
	};
"""


def kernel_style(text: str = DEFAULT, head: str = HEADERS, body: str = TIMER) -> str:
    """The default board written as a kernel board is: SPDX line, headers, macros."""
    assert text.startswith("/dts-v1/;\n")
    text = text.replace("mbi-ranges = <256 128>;", "mbi-ranges = <MBI_FIRST MBI_COUNT>;")
    text = text[:text.rindex("};")] + body + "};\n"
    return ("// SPDX-License-Identifier: MIT\n/dts-v1/;\n\n" + head
            + "#define MBI_FIRST 256\n#define MBI_COUNT 128\n" + text.removeprefix("/dts-v1/;\n"))


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


# -- 1. the C preprocessor and the shipped dt-bindings headers ----------------------------------

def test_cpp_is_installed() -> None:
    """./bootstrap installs it (Debian cpp): the tests below need it, and are not skipped."""
    assert shutil.which("cpp") is not None


def test_a_kernel_style_dts_with_the_shipped_headers_loads_and_boots(tmp_path: Path) -> None:
    path = write(tmp_path, "board.dts", kernel_style())
    root = parse_fdt(fdt_bytes(path))
    timer = root.child("timer")
    assert timer is not None
    assert struct.unpack(">6I", timer.props["interrupts"]) == (1, 13, 0xFF08, 0, 7, 3)
    plat = Platform.from_devicetree(path)
    assert plat.board.gic.mbi_ranges == ((256, 128),)
    kern = plat.boot()
    assert sorted(kern.irq.online) == list(range(8))
    assert kern.msi_provider == "direct-lpi+mbi"        # as the default board


def test_the_shipped_headers_are_in_the_package() -> None:
    base = DT_INCLUDE_DIR / "dt-bindings" / "interrupt-controller"
    assert DT_INCLUDE_DIR.is_relative_to(Path(fdt.__file__).resolve().parents[1])
    gic, irq = (base / "arm-gic.h").read_text(), (base / "irq.h").read_text()
    for name, value in (("GIC_SPI", "0"), ("GIC_PPI", "1")):
        assert f"#define {name}\t\t{value}" in gic
    assert "GIC_CPU_MASK_SIMPLE" in gic
    assert "#include <dt-bindings/interrupt-controller/irq.h>" in gic
    assert "IRQ_TYPE_LEVEL_HIGH\t4" in irq and "IRQ_TYPE_LEVEL_LOW\t8" in irq


def test_the_include_path_is_the_source_dir_the_callers_dirs_then_the_shipped_one(
        tmp_path: Path) -> None:
    (tmp_path / "inc").mkdir()
    write(tmp_path, "local.h", "#define MBI_COUNT_LOCAL 128\n")
    write(tmp_path / "inc", "map.h", "#define GICD_BASE 0x08000000\n")
    head = HEADERS + "#include <local.h>\n#include <map.h>\n"
    text = kernel_style(head=head).replace("reg = <0x0 0x08000000 0x0 0x10000>",
                                           "reg = <0x0 GICD_BASE 0x0 0x10000>")
    path = write(tmp_path, "board.dts", text)
    assert load_board(path, include_dirs=[tmp_path / "inc"]).board.gic.dist_base == 0x800_0000
    with pytest.raises(FirmwareError) as exc:      # without the caller's dir: map.h is missing
        load_board(path)
    assert str(exc.value).startswith(f"{path}:{line_of(text, '<map.h>')}: map.h: No such file")
    # a caller's dir comes before the shipped headers: it can override them
    override = tmp_path / "inc" / "dt-bindings" / "interrupt-controller"
    override.mkdir(parents=True)
    write(override, "arm-gic.h", "#define GIC_SPI 0\n#define GIC_PPI 5\n"
          "#define GIC_CPU_MASK_SIMPLE(n) 0\n#include <dt-bindings/interrupt-controller/irq.h>\n")
    timer = parse_fdt(fdt_bytes(path, [tmp_path / "inc"])).child("timer")
    assert timer is not None and struct.unpack(">I", timer.props["interrupts"][:4]) == (5,)


def test_a_missing_header_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    text = kernel_style(head=HEADERS + "#include <dt-bindings/clock/nope.h>\n")
    path = write(tmp_path, "board.dts", text)
    with pytest.raises(FirmwareError) as exc:
        load_board(path)
    msg = str(exc.value)
    assert "\n" not in msg and not isinstance(exc.value, DtError)
    assert msg.startswith(f"{path}:{line_of(text, 'nope.h')}: dt-bindings/clock/nope.h: "
                          "No such file or directory (include path: ")
    assert str(DT_INCLUDE_DIR) in msg
    assert msg.count(str(path)) == 1
    assert check_files([path]).problems == [msg]          # the same line from `check`


def test_dtc_errors_after_cpp_point_at_the_users_line(tmp_path: Path) -> None:
    text = kernel_style().replace("bus-range = <0x0 0xf>;", "bus-range = <0x0 GIC_SPI;")
    path = write(tmp_path, "board.dts", text)
    with pytest.raises(FirmwareError) as exc:
        load_board(path)
    assert str(exc.value).startswith(f"{path}:{line_of(text, 'bus-range')}.")
    assert str(exc.value).endswith(": syntax error")
    assert str(exc.value).count(str(path)) == 1
    assert check_files([path]).problems == [str(exc.value)]


def test_a_plain_dts_syntax_error_names_the_file_once(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.dts", "/dts-v1/;\n/ {\n  reg = <1 2;\n};\n")
    with pytest.raises(FirmwareError) as exc:
        load_board(path)
    assert str(exc.value).startswith(f"{path}:3.") and str(exc.value).count("bad.dts") == 1
    assert check_files([path]).problems == [str(exc.value)]


def test_without_cpp_a_source_that_needs_it_says_so_and_others_still_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    which = shutil.which
    monkeypatch.setattr(fdt.shutil, "which", lambda name: None if name == "cpp" else which(name))
    path = write(tmp_path, "board.dts", kernel_style())
    with pytest.raises(FirmwareError) as exc:
        load_board(path)
    assert str(exc.value) == (f"{path}: uses the C preprocessor (#include or #define), but cpp "
                              "is not installed: run ./bootstrap (Debian cpp)")
    assert len(load_board(BOARDS_DIR / "default.dts").board.cpus) == 8   # no directive: no cpp


@pytest.mark.parametrize(("text", "expected"), [
    ("#include <x.h>\n", True),
    ("  #  define A 1\n", True),
    ("#ifdef A\n#endif\n", True),
    ("\t#address-cells = <2>;\n#size-cells = <2>;\n#interrupt-cells = <3>;\n", False),
    ("#msi-cells = <0>;\n#if-not-a-directive = <1>;\n", False),
    ("/* #include in a comment, mid-line */\n", False),
])
def test_needs_cpp_tells_directives_from_hash_properties(text: str, expected: bool) -> None:
    assert needs_cpp(text.encode()) is expected


def test_every_shipped_board_is_plain_dts() -> None:
    """They load without cpp (and quickly): none has a directive."""
    assert not any(needs_cpp(p.read_bytes()) for p in BOARDS_DIR.glob("*.dts"))


# -- 2. one classifier for every command --------------------------------------------------------

@pytest.mark.parametrize(("data", "kind"), [
    (b"\xd0\x0d\xfe\xed" + bytes(60), FileKind.DTB),
    (b"APIC" + bytes(40), FileKind.MADT),
    (b"IORT" + bytes(40), FileKind.IORT),
    (b"/dts-v1/;\n/ { };\n", FileKind.DTS),
    (b"\xef\xbb\xbf// SPDX\n/*\n * board\n */\n#include <a.h>\n\n/dts-v1/;\n", FileKind.DTS),
    (b"#define X \\\n  1\n/dts-v1/;\n", FileKind.DTS),
    (b"// a board whose /dts-v1/ is in its .dtsi\n#include \"soc.dtsi\"\n/ { };\n", FileKind.DTS),
    (b"/ { };\n", None),                    # no /dts-v1/ and nothing included
    (b"/* never closed /dts-v1/;", None),
    (b"hello world\n", None),
    (b"", None),
    (b"\x1f\x8b\x08\x00", None),
])
def test_classify_by_content(data: bytes, kind: FileKind | None) -> None:
    assert classify(data) is kind


@pytest.mark.parametrize("content", [b"\x4c\xad\x08\x3d" + bytes(range(96)), b"hello\n", b""],
                         ids=["binary", "text", "empty"])
def test_garbage_gets_the_same_line_from_the_loader_and_from_check(
        tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, "garbage.dtb", content)
    with pytest.raises(FirmwareError) as exc:
        load_board(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: not a MADT (APIC), IORT, MCFG or devicetree (DTS or DTB)")
    assert check_files([path]).problems == [msg]
    with pytest.raises(FirmwareError) as again:
        Platform.from_devicetree(path)
    assert str(again.value) == msg


def test_garbage_gets_the_same_line_from_run_platform_and_check(tmp_path: Path) -> None:
    from directlpi.cli import main

    path = write(tmp_path, "garbage.dtb", bytes(range(7, 107)))
    outs = []
    for argv in (["run", "--platform", str(path)], ["check", str(path)]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            assert main(argv) != 0
        outs.append(out.getvalue().strip())
    run, check = outs
    assert check.startswith(f"{path}: not a MADT (APIC), IORT, MCFG or devicetree (DTS or DTB)")
    assert "\n" not in run and check in run       # run adds "directlpi: error: " and [EINVAL]


def test_acpi_tables_given_as_a_board_are_named_for_what_they_are(tmp_path: Path) -> None:
    path = write(tmp_path, "apic.dat", build_madt(Platform.default(cpus=2).board))
    with pytest.raises(FirmwareError, match=r"apic\.dat: an ACPI MADT \(APIC\), not a "
                       r"devicetree \(DTS or DTB\)$"):
        load_board(path)


def test_a_dtb_whatever_its_name_is_read_as_a_dtb(tmp_path: Path) -> None:
    path = write(tmp_path, "board.dts", (BOARDS_DIR / "default.dtb").read_bytes())
    assert len(load_board(path).board.cpus) == 8
    assert check_files([path]).problems == []


# -- 3. every independent problem ---------------------------------------------------------------

def _two_problems(tmp_path: Path) -> Path:
    text = DEFAULT.replace("reg = <0x7>;", "reg = <0x6>;").replace(
        "reg = <0x0 0x40000000 0x0 0x80000000>;", "reg = <0x0 0x07ff0000 0x0 0x20000>;")
    return write(tmp_path, "two.dts", text)


TWO = ["/cpus/cpu@7: reg: MPIDR 0x6 is also /cpus/cpu@6's",
       f"{GIC}: reg: GICD @0x8000000+0x10000 overlaps /memory@40000000 RAM @0x7ff0000+0x20000"]


def test_a_duplicate_mpidr_and_ram_over_the_gicd_are_both_reported(tmp_path: Path) -> None:
    path = _two_problems(tmp_path)
    with pytest.raises(DtError) as exc:
        load_board(path)
    assert exc.value.problems == [f"{path}: {p}" for p in TWO]
    assert str(exc.value) == f"{path}: 2 problems: {TWO[0]}; {TWO[1]}"
    assert "\n" not in str(exc.value)
    assert check_files([path]).problems[:2] == [f"{path}: {p}" for p in TWO]


def problems_of(tmp_path: Path, text: str) -> list[str]:
    """The problems (without the file name) loading this board source reports."""
    with pytest.raises(DtError) as exc:
        load_board(write(tmp_path, "b.dts", text))
    return [p.split(": ", 1)[1] for p in exc.value.problems]


def test_the_rd_count_is_checked_alongside_other_problems(tmp_path: Path) -> None:
    text = DEFAULT.replace("reg = <0x7>;", "reg = <0x1000007>;").replace(
        "<0x0 0x080a0000 0x0 0xf60000>", "<0x0 0x080a0000 0x0 0x40000>")
    found = problems_of(tmp_path, text)
    assert found[0].startswith("/cpus/cpu@7: reg: 0x1000007 is not an MPIDR affinity")
    assert found[1] == f"{GIC}: reg: the GICR regions hold 2 redistributor(s) for 7 CPUs"


def test_independent_host_bridge_problems_are_all_reported(tmp_path: Path) -> None:
    text = DEFAULT.replace("bus-range = <0x0 0xf>;", "bus-range = <0x0 0x1f>;").replace(
        "<0x02000000 0x0 0x10000000 0x0 0x10000000", "<0x02000000 0x0 0x0 0x0 0x10000000")
    found = problems_of(tmp_path, text)
    assert found == [
        "/pcie@3f000000: bus-range: buses 0..31 need 0x2000000 bytes of ECAM, reg gives "
        "0x1000000",
        "/pcie@3f000000: ranges: memory window PCI 0x0 -> CPU 0x10000000: the model maps PCI "
        "memory 1:1"]
