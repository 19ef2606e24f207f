"""The dt-schema bindings (``directlpi/bindings``): valid against dtschema's meta-schemas
(``dt-doc-validate``), their examples valid against themselves, every shipped board valid
(``dt-validate``, read through its JSON output since it exits 0 on errors), and the
validator really applies them (broken boards are caught)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from directlpi.firmware.boards import board_files
from directlpi.firmware.devicetree import fdt_bytes
from directlpi.firmware.schema import BINDINGS_DIR, binding_files, schema_problems

BIN = Path(sys.executable).parent


def _run(*args: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(a) for a in args], input=stdin, capture_output=True, check=False)


def test_the_bindings_are_the_ones_documented() -> None:
    assert {p.relative_to(BINDINGS_DIR).as_posix() for p in binding_files()} == {
        "interrupt-controller/arm,gic-v3.yaml",
        "interrupt-controller/arm,gic-v3-direct-lpi.yaml",
        "pci/pci-host-ecam-generic.yaml",
        "misc/directlpi,hardware-model.yaml",
        "arm/cpus.yaml",
        "arm/directlpi,virt.yaml",
        "bus/microsoft,vmbus.yaml"}


@pytest.mark.parametrize("binding", binding_files(), ids=lambda p: p.name)
def test_dt_doc_validate_accepts_each_binding(binding: Path) -> None:
    out = _run(BIN / "dt-doc-validate", "-u", BINDINGS_DIR, binding)
    assert out.returncode == 0 and not out.stdout and not out.stderr, out.stderr.decode()


def test_dt_doc_validate_rejects_a_broken_binding(tmp_path: Path) -> None:
    text = (BINDINGS_DIR / "interrupt-controller/arm,gic-v3-direct-lpi.yaml").read_text()
    broken = tmp_path / "interrupt-controller" / "arm,gic-v3-direct-lpi.yaml"
    broken.parent.mkdir()
    broken.write_text(text.replace("const: 0", "maxItem: 0"))
    out = _run(BIN / "dt-doc-validate", "-u", tmp_path, broken)
    assert out.returncode != 0 and b"maxItem" in out.stderr


@pytest.mark.parametrize("binding", binding_files(), ids=lambda p: p.name)
def test_each_binding_example_is_valid(binding: Path, tmp_path: Path) -> None:
    example = _run(BIN / "dt-extract-example", binding)
    assert example.returncode == 0
    dtb = _run("dtc", "-q", "-I", "dts", "-O", "dtb", "-o", "-", "-", stdin=example.stdout)
    assert dtb.returncode == 0, dtb.stderr.decode()
    assert schema_problems(dtb.stdout) == []


@pytest.mark.parametrize("board", board_files(), ids=lambda p: p.stem)
def test_dt_validate_finds_nothing_in_a_shipped_board(board: Path, tmp_path: Path) -> None:
    dtb = tmp_path / "board.dtb"
    dtb.write_bytes(fdt_bytes(board))
    report = tmp_path / "report.json"
    out = _run(BIN / "dt-validate", "-m", "-s", BINDINGS_DIR, "--json-output", report, dtb)
    assert out.returncode == 0 and not out.stderr, out.stderr.decode()
    assert json.loads(report.read_text()) == []       # -m: every compatible has a binding
    assert schema_problems(dtb.read_bytes()) == []


def test_the_schemas_catch_what_the_binding_forbids(tmp_path: Path) -> None:
    text = (board_files()[0].parent / "default.dts").read_text()
    text = text.replace("#msi-cells = <0>;", "#msi-cells = <1>;")
    text = text.replace("mbi-ranges = <256 128>;", "")
    (tmp_path / "bad.dts").write_text(text)
    dtb = tmp_path / "bad.dtb"
    dtb.write_bytes(fdt_bytes(tmp_path / "bad.dts"))
    found = schema_problems(dtb.read_bytes())
    assert "/interrupt-controller@8000000/direct-lpi: #msi-cells: 0 was expected " \
           "(schema arm,gic-v3-direct-lpi.yaml)" in found
    assert any("'mbi-ranges' is a dependency of 'msi-controller'" in p for p in found)
    report = tmp_path / "report.json"                  # the CLI agrees, in its JSON only
    out = _run(BIN / "dt-validate", "-s", BINDINGS_DIR, "--json-output", report, dtb)
    assert out.returncode == 0                         # (dt-validate's exit status says nothing)
    assert {d["message"] for d in json.loads(report.read_text())} >= {
        "0 was expected", "'mbi-ranges' is a dependency of 'msi-controller'"}


# -- the kernel's own arm,gic-v3.yaml, with the proposal applied on the fly ---------------------

def _kernel_bindings() -> Path:
    from directlpi.firmware.schema import SchemaUnavailable, kernel_bindings_dir

    try:
        return kernel_bindings_dir()
    except SchemaUnavailable as e:                # a failure that says what to do, not a skip
        pytest.fail(str(e))


@pytest.mark.parametrize("board", board_files(), ids=lambda p: p.name)
def test_every_board_validates_against_the_kernels_binding_with_the_proposal(board: Path
                                                                             ) -> None:
    from directlpi.firmware.schema import kernel_schema_problems

    assert kernel_schema_problems(fdt_bytes(board), _kernel_bindings()) == []


def test_the_kernels_binding_alone_rejects_exactly_what_the_proposal_adds() -> None:
    """Without the change the kernel's schema refuses the Direct LPI child and the GICv2m
    frames under a GICv3 -- so the boards above validate because of the proposal, and
    against the kernel's rules for everything else."""
    from directlpi.firmware.boards import BOARDS_DIR
    from directlpi.firmware.schema import kernel_schema_problems

    bindings = _kernel_bindings()
    for name, child in (("default.dts", "direct-lpi"), ("gicv2m.dts", "v2m@8020000")):
        problems = kernel_schema_problems(fdt_bytes(BOARDS_DIR / name), bindings,
                                          proposal=False)
        assert problems and all(child in p and "arm,gic-v3.yaml" in p for p in problems), \
            problems
    assert kernel_schema_problems(fdt_bytes(BOARDS_DIR / "its.dts"), bindings,
                                  proposal=False) == []


def test_the_proposal_adds_two_keys_to_the_kernels_binding_and_changes_nothing_else() -> None:
    from ruamel.yaml import YAML

    from directlpi.firmware.schema import KERNEL_GIC_V3, apply_proposal

    text = (_kernel_bindings() / KERNEL_GIC_V3).read_text()
    before, after = YAML().load(text), YAML().load(apply_proposal(text))
    assert set(after["properties"]) - set(before["properties"]) == {"direct-lpi"}
    assert set(after["patternProperties"]) - set(before["patternProperties"]) == {
        "^v2m@[0-9a-f]+$"}
    del after["properties"]["direct-lpi"], after["patternProperties"]["^v2m@[0-9a-f]+$"]
    assert after == before
