"""The DTB reader: what dtc compiles reads back node by node, and a malformed blob
gives a FirmwareError naming the byte offset -- never another exception."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from directlpi.firmware.acpi import FirmwareError
from directlpi.firmware.fdt import parse_fdt
from directlpi.firmware.files import load_fdt

DTS = """/dts-v1/;
/ {
    #address-cells = <2>;
    #size-cells = <2>;
    compatible = "linux,dummy-virt";
    cpus {
        #address-cells = <1>;
        #size-cells = <0>;
        cpu@0 { device_type = "cpu"; reg = <0x0>; };
        cpu@1 { device_type = "cpu"; reg = <0x1>; };
    };
    intc: interrupt-controller@8000000 {
        compatible = "arm,gic-v3";
        reg = <0x0 0x08000000 0x0 0x10000>, <0x0 0x080a0000 0x0 0x40000>;
        interrupt-controller;
        #interrupt-cells = <3>;
        msi-controller;
        mbi-ranges = <256 128>;
        redistributor-stride = /bits/ 64 <0x20000>;
    };
};
"""


def _dtb(tmp_path: Path, text: str = DTS) -> bytes:
    (tmp_path / "b.dts").write_text(text)
    return subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", "-",
                           str(tmp_path / "b.dts")], capture_output=True, check=True).stdout


def test_a_compiled_tree_reads_back(tmp_path: Path) -> None:
    root = parse_fdt(_dtb(tmp_path))
    assert root.path == "/" and root.props["#address-cells"] == b"\0\0\0\2"
    cpus = root.child("cpus")
    assert cpus is not None and [c.name for c in cpus.children] == ["cpu@0", "cpu@1"]
    gic = root.child("interrupt-controller@8000000")
    assert gic is not None and gic.path == "/interrupt-controller@8000000"
    assert gic.props["compatible"] == b"arm,gic-v3\0"
    assert gic.props["msi-controller"] == b""
    assert struct.unpack(">4Q", gic.props["reg"]) == (0x0800_0000, 0x10000, 0x080A_0000,
                                                      0x40000)
    assert gic.props["redistributor-stride"] == (0x20000).to_bytes(8, "big")
    assert {n.path for n in root.walk()} >= {"/cpus/cpu@1", "/interrupt-controller@8000000"}


def test_dts_and_dtb_files_both_load(tmp_path: Path) -> None:
    (tmp_path / "b.dtb").write_bytes(_dtb(tmp_path))
    assert load_fdt(tmp_path / "b.dts") == load_fdt(tmp_path / "b.dtb")


def test_a_dts_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.dts").write_text("/dts-v1/;\n/ {\n  reg = <1 2;\n};\n")
    with pytest.raises(FirmwareError, match=r"bad\.dts.*:3"):
        load_fdt(tmp_path / "bad.dts")


@pytest.mark.parametrize(("cut", "message"), [
    (20, "shorter than the 40-byte header"),
    (200, "totalsize"),
])
def test_a_truncated_blob_is_refused(tmp_path: Path, cut: int, message: str) -> None:
    with pytest.raises(FirmwareError, match=message):
        parse_fdt(_dtb(tmp_path)[:cut])


def test_bad_magic_is_refused(tmp_path: Path) -> None:
    blob = bytearray(_dtb(tmp_path))
    blob[0] ^= 0xFF
    with pytest.raises(FirmwareError, match="offset 0x0 magic"):
        parse_fdt(bytes(blob))


@pytest.fixture(scope="module")
def valid_blob(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _dtb(tmp_path_factory.mktemp("fdt"))


@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_mutated_blobs_give_a_firmware_error_or_a_tree(valid_blob: bytes,
                                                       data: st.DataObject) -> None:
    blob = bytearray(valid_blob)
    for _ in range(data.draw(st.integers(1, 6))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    blob = blob[:data.draw(st.integers(0, len(blob)))]
    try:
        root = parse_fdt(bytes(blob))
    except FirmwareError as e:
        assert str(e).startswith("DTB: ")
        return
    assert root.path == "/"
