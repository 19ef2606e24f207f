"""The command line: `directlpi run` (the walkthrough for now) and `directlpi bench`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from directlpi.cli import main


def test_walkthrough_walks_a_direct_lpi_and_exits_0(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["walkthrough"]) == 0
    out = capsys.readouterr().out
    assert "dma-write" in out and "GICR_SETLPIR" in out and "0x00002000" in out
    assert "ICC_IAR1_EL1" in out and "ICC_EOIR1_EL1" in out
    assert "FAIL" not in out and "every check passed" in out


def test_walkthrough_json_has_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["walkthrough", "--json", "--cpus", "200", "--cpu", "150"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["platform"]["its"] is False
    regs = [a["register"] for s in doc["steps"] for a in s["accesses"]]
    assert {"GICR_PROPBASER", "GICR_PENDBASER", "GICR_CTLR", "GICR_INVLPIR", "GICR_SYNCR",
            "GICR_SETLPIR", "ICC_IAR1_EL1", "ICC_EOIR1_EL1"} <= set(regs)
    setlpir = next(a for s in doc["steps"] for a in s["accesses"]
                   if a["register"] == "GICR_SETLPIR")
    assert setlpir["address"] == 0x40_0000_0000 + (150 - 123) * 0x20000 + 0x40  # above 4 GiB


def test_bad_options_give_one_line_and_a_nonzero_exit(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["walkthrough", "--cpus", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("directlpi: error: hardware option cpus") and "EINVAL" in err
    assert "Traceback" not in err
    assert main(["walkthrough", "--cpus", "4", "--cpu", "9"]) == 2
    assert "--cpu 9" in capsys.readouterr().err
    assert main(["run", "--cpus", "600"]) == 2
    assert "--cpus 600" in capsys.readouterr().err


def test_bench_runs_the_modules_of_a_bench_directory(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bench_demo.py").write_text(
        "from directlpi.benchkit import Figure\n"
        "def run(quick):\n"
        "    return [Figure('demo_per_s', 42.0 if quick else 1.0, 'ops/s', 'a demo')]\n")
    assert main(["bench", "--json", "--quick", "--bench-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out) == {"demo_per_s": 42.0}


def test_bench_compare_prints_each_keys_ratio_to_a_saved_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bench_demo.py").write_text(
        "from directlpi.benchkit import Figure\n"
        "def run(quick):\n"
        "    return [Figure('demo_per_s', 42.0, 'ops/s', 'a rate'),\n"
        "            Figure('demo_ms', 3.0, 'ms', 'a time'),\n"
        "            Figure('demo_flat', 7.0, 'ratio', 'a ratio'),\n"
        "            Figure('demo_new', 1.0, 'ops/s', 'not in the baseline')]\n")
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"demo_per_s": 21.0, "demo_ms": 2.0, "demo_flat": 7.1,
                                "demo_gone": 5.0}))
    args = ["bench", "--bench-dir", str(tmp_path), "--compare", str(base)]
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["demo_per_s"] == {"value": 42.0, "baseline": 21.0, "ratio": 2.0,
                                 "verdict": "better"}           # a rate doubled
    assert doc["demo_ms"]["ratio"] == 1.5 and doc["demo_ms"]["verdict"] == "worse"
    assert doc["demo_flat"]["verdict"] == "same"               # within 5%
    assert doc["demo_new"]["verdict"] == "new" and doc["demo_new"]["ratio"] is None
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2.00x better" in out
    assert any(ln.startswith("demo_gone ") and "not measured in this run" in ln
               for ln in out.splitlines())


@pytest.mark.parametrize(("content", "needle"), [
    ("[1, 2]", "not a {key: value} object"), ("{", "not JSON"),
    ('{"a": "fast"}', "key 'a' is not a finite number"), (None, "No such file")])
def test_bench_compare_with_a_bad_baseline_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None,
        needle: str) -> None:
    base = tmp_path / "base.json"
    if content is not None:
        base.write_text(content)
    assert main(["bench", "--bench-dir", str(tmp_path), "--compare", str(base)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_bench_without_a_bench_directory_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--bench-dir", str(tmp_path / "nope")]) == 2
    assert "no benchmark directory" in capsys.readouterr().err


def test_console_script_is_installed() -> None:
    out = subprocess.run([sys.executable, "-m", "directlpi.cli", "walkthrough", "--json"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ok"] is True


def test_the_repository_bench_modules_define_run() -> None:
    bench = Path(__file__).resolve().parents[1] / "bench"
    modules = sorted(p.stem for p in bench.glob("bench_*.py"))
    assert "bench_hw" in modules
    for name in modules:
        assert "\ndef run(quick: bool) -> list[Figure]:" in (bench / f"{name}.py").read_text()


def test_run_plays_the_default_scenario_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "CPU0" in out and "DLPI-MSI" in out and "nic-7" in out and "dma-1" in out
    assert "every invariant holds" in out
    assert "MSI isolation: no" in out and "spoofed MSI: dma wrote" in out


def test_run_json_follows_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--json", "--cpus", "4"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["platform"] == {"cpus": 4, "msi_provider": "direct-lpi+mbi", "lpi_id_bits": 16,
                               "its": False, "board": "directlpi default board (4 CPUs)"}
    assert set(doc["totals"]) == {"msis_written", "handled", "lost", "spurious", "coalesced",
                                  "dropped_by_platform", "stale_by_fault",
                                  "stale_runs_by_fault", "held_by_fault"}
    assert doc["totals"]["lost"] == doc["totals"]["spurious"] == 0
    assert doc["violations"] == []
    irq = doc["irqs"][0]
    assert set(irq) == {"virq", "hwirq", "intid", "chip", "device", "vector",
                        "effective_cpu", "msi", "counts", "smp_affinity_list",
                        "effective_affinity_list"}
    assert irq["msi"]["data"] == irq["intid"]                      # R1: data is the INTID
    assert irq["hwirq"] == 8 << 11             # the MSI domain's: pci_dev_id (RID 8) << 11
    assert len(irq["counts"]) == 4
    assert doc["security"]["msi_isolation"] is False
    assert [s["master"] for s in doc["security"]["spoofed_msis"]] == ["dma"]


def test_run_exits_1_when_an_invariant_is_violated(monkeypatch: pytest.MonkeyPatch) -> None:
    from directlpi.kernel.irqchip import direct_lpi
    from directlpi.sim.run import ScenarioRun
    from directlpi.sim.scenario import DEFAULT_SCENARIO, load_scenario
    from tests.sim.test_invariants import NoInvalidationOnUnmask
    monkeypatch.setattr(direct_lpi, "DirectLpi", NoInvalidationOnUnmask)
    report = ScenarioRun(load_scenario(DEFAULT_SCENARIO)).run()
    assert not report.ok
    assert "VIOLATION lost-interrupt" in report.render()


def test_run_writes_a_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "trace.txt"
    assert main(["run", "--trace", str(trace)]) == 0
    lines = trace.read_text().splitlines()
    assert any(": gicv3_iar: " in ln for ln in lines)
    assert any(": bus_dma_write: " in ln for ln in lines)
    assert not any("mmio" in ln for ln in lines)      # MMIO accesses are not traced


def test_run_with_a_bad_scenario_names_the_field(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[devices]]\nkind = "pci"\nname = "x"\nbdf = "0000:00:01.0"\n'
                   'msi_vectors = 3\n')
    assert main(["run", "--scenario", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "devices[0].msi_vectors" in err and "Traceback" not in err


def test_acpi_writes_tables_that_check_accepts(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["acpi", "--cpus", "200", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["check", str(tmp_path / "apic.dat"), str(tmp_path / "iort.dat")]) == 0
    out = capsys.readouterr().out
    assert "MADT: 200 CPU(s), GICD @0x8000000, 2 GICR region(s)" in out
    assert "Direct LPI (PROPOSED node) for segment 0 RIDs 0x0+0x10000" in out
    assert main(["acpi", "--no-direct-lpi", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["check", str(tmp_path / "iort.dat"), str(tmp_path / "apic.dat")]) == 0
    assert ("no requester ID or named component is routed to an MSI controller"
            in capsys.readouterr().out)


def test_check_describes_the_its_and_msi_frames_of_acpi_tables(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    boards = Path(__file__).resolve().parents[1] / "src" / "directlpi" / "boards"
    assert main(["acpi", "--from", str(boards / "its.dts"), "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["check", str(tmp_path / "apic.dat"), str(tmp_path / "iort.dat")]) == 0
    out = capsys.readouterr().out
    assert "ITS 0 @0x8080000" in out
    assert "IORT: ITS 0 for segment 0 RIDs 0x0+0x10000 (DeviceIDs from 0x0)" in out
    v2m = tmp_path / "v2m"
    assert main(["acpi", "--from", str(boards / "gicv2m.dts"), "--out", str(v2m)]) == 0
    capsys.readouterr()
    assert main(["check", str(v2m / "apic.dat")]) == 0
    assert "MSI frame 0 @0x8020000" in capsys.readouterr().out


def test_check_prints_one_line_per_problem_and_exits_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["acpi", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    madt = (tmp_path / "apic.dat").read_bytes()
    (tmp_path / "short.dat").write_bytes(madt[:100])
    (tmp_path / "board.dts").write_text("/dts-v1/;\n/ { };\n")
    (tmp_path / "junk.dat").write_bytes(b"\x00" * 64)
    files = [tmp_path / n for n in ("short.dat", "board.dts", "junk.dat", "missing.dat")]
    assert main(["check", *map(str, files)]) == 1
    lines = capsys.readouterr().out.splitlines()
    by_file = {f.name: [ln for ln in lines if ln.startswith(f"{f}:")] for f in files}
    assert sum(map(len, by_file.values())) == len(lines)      # every line names its file
    (short,) = by_file["short.dat"]
    assert short.endswith("short.dat: APIC: offset 0x4 Length: 724 but the table has 100 bytes")
    dts = by_file["board.dts"]
    assert any(ln.endswith("board.dts: /: no /cpus node") for ln in dts)
    assert any(ln.endswith('board.dts: /: no GICv3 node (compatible "arm,gic-v3")') for ln in dts)
    assert any("(schema " in ln for ln in dts)                 # dt-schema's findings too
    (junk,) = by_file["junk.dat"]
    assert "not a MADT (APIC), IORT, MCFG or devicetree" in junk
    (missing,) = by_file["missing.dat"]
    assert missing.endswith("missing.dat: No such file or directory")


def test_check_refuses_tables_the_hardware_cannot_match(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from directlpi.firmware.acpi import checksum_fix

    assert main(["acpi", "--cpus", "4", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    raw = bytearray((tmp_path / "apic.dat").read_bytes())
    raw[-4:] = (3 * 0x20000).to_bytes(4, "little")       # 3 RDs for 4 GICCs
    checksum_fix(raw)
    (tmp_path / "apic.dat").write_bytes(bytes(raw))
    assert main(["check", str(tmp_path / "apic.dat")]) == 1
    assert "the hardware it describes cannot be built" in capsys.readouterr().out


# -- devicetree: check, run --platform, acpi --from ----------------------------------------------

def _board(name: str) -> str:
    from directlpi.firmware.boards import BOARDS_DIR
    return str(BOARDS_DIR / f"{name}.dts")


def test_check_accepts_the_shipped_boards_and_reports_what_the_kernel_does(
        capsys: pytest.CaptureFixture[str]) -> None:
    files = [_board("default"), _board("mbi-only"), _board("rds-without-directlpi")]
    assert main(["check", *files]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "directlpi check: 3 file(s) valid"
    assert f"{files[0]}: MSI providers described: Direct LPI, MBI" in out
    assert f"{files[0]}: kernel: MSI provider: direct-lpi+mbi" in out
    assert f"{files[1]}: kernel: MSI provider: mbi" in out
    assert any(ln.startswith(f"{files[2]}: kernel: WARNING: GICv3: Direct LPI described by "
                             "firmware, but not every redistributor") for ln in out)
    firsts = [next(i for i, ln in enumerate(out) if ln.startswith(f)) for f in files]
    assert firsts == sorted(firsts)                     # grouped by file, in the given order


def test_check_reports_malformed_dtbs_by_offset(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from directlpi.firmware.boards import DEFAULT_DTB
    dtb = DEFAULT_DTB.read_bytes()
    (tmp_path / "short.dtb").write_bytes(dtb[:300])
    (tmp_path / "magic.dtb").write_bytes(b"\xd0\x0d\xfe\xed" + b"\0" * 36)
    assert main(["check", str(tmp_path / "short.dtb"), str(tmp_path / "magic.dtb")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "short.dtb: DTB: offset 0x4 totalsize" in out[0] and "truncated" in out[0]
    assert "magic.dtb: DTB: offset 0x14 version 0" in out[1]


def test_check_boots_the_board_to_find_rds_that_are_not_where_it_says(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = Path(_board("rds-without-directlpi")).read_text().replace(
        "directlpi,direct-lpi = <0>;", "directlpi,gicr-regions = <0x0 0x080c0000 123>;")
    (tmp_path / "moved.dts").write_text(text)
    assert main(["check", str(tmp_path / "moved.dts")]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line == (f"{tmp_path}/moved.dts: /interrupt-controller@8000000: reg: the GICR regions "
                    "do not match the hardware: the kernel stops with \"GICv3: CPU0: mpidr 0 has "
                    "no re-distributor!\"")


def test_run_on_a_devicetree_platform(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--platform", _board("gicr-256cpus"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["platform"]["cpus"] == 256
    assert report["platform"]["board"] == "directlpi 256-CPU board, two GICR regions"


def test_run_on_the_mbi_only_board_uses_mbis(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--platform", _board("mbi-only"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["platform"]["msi_provider"] == "mbi"
    assert {irq["chip"] for irq in report["irqs"]} == {"MBI-PCI-MSI", "MBI-pMSI"}
    assert {irq["msi"]["address"] for irq in report["irqs"]} == {0x0800_0040}
    (spoof,) = report["security"]["spoofed_msis"]       # MBIs are not isolated either
    assert spoof["address"] == 0x0800_0040 and spoof["target_cpu"] == -1


def test_run_on_the_its_board_isolates_and_the_spoof_misses(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--platform", _board("its"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["platform"]["msi_provider"] == "its"
    assert report["platform"]["its"] is True
    assert {irq["chip"] for irq in report["irqs"]} == {"ITS-MSI", "ITS-pMSI"}
    assert {irq["msi"]["address"] for irq in report["irqs"]} == {0x0809_0040}
    sec = report["security"]
    assert sec["msi_isolation"] is True
    assert sec["spoofs_reaching_a_handler"] == []
    (attempt,) = sec["spoof_attempts"]
    assert attempt["reached_victim"] is False
    assert main(["run", "--platform", _board("its")]) == 0
    assert "reached its victim: no" in capsys.readouterr().out


def test_run_on_the_gicv2m_board_the_spoof_reaches_its_victim(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--platform", _board("gicv2m"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["platform"]["msi_provider"] == "gicv2m"
    assert report["platform"]["lpi_id_bits"] == 0
    assert {irq["msi"]["address"] for irq in report["irqs"]} == {0x0802_0040}
    sec = report["security"]
    assert sec["msi_isolation"] is False
    (spoof,) = sec["spoofed_msis"]
    assert spoof["doorbell"] == "MSI_SETSPI_NS" and spoof["target_cpu"] == -1
    (attempt,) = sec["spoof_attempts"]
    assert attempt["reached_victim"] is True


def test_run_on_the_hyperv_spi_board_the_host_stops_the_spoof(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--platform", _board("hyperv-spi"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["violations"] == []
    assert report["platform"]["msi_provider"] == "gicv2m+spi-pv"
    pci = [irq for irq in report["irqs"] if irq["device"] != "dma"]
    assert {irq["chip"] for irq in pci} == {"HV-PCI-MSI"}
    assert {irq["msi"]["address"] for irq in pci} == {0x0C01_0040}       # the host's doorbell
    assert all(64 <= irq["intid"] < 928 for irq in pci)                  # guest SPIs from 64
    sec = report["security"]
    assert sec["msi_isolation"] is False and sec["host_isolation"] is True
    (spoof,) = sec["spoofed_msis"]
    assert spoof["doorbell"] == "HV_MSI_DOORBELL" and spoof["victim"].startswith("nobody")
    (attempt,) = sec["spoof_attempts"]
    assert attempt["reached_victim"] is False
    assert main(["run", "--platform", _board("hyperv-spi")]) == 0
    out = capsys.readouterr().out
    assert "the host owns every vPCI function's real MSI" in out
    assert "reached its victim: no" in out


def test_run_on_a_board_without_an_msi_provider_is_a_clear_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--platform", _board("rds-without-directlpi")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("directlpi: error: pci 0000:00:01.0: no MSI domain (firmware routes "
                          "its MSIs to /interrupt-controller@8000000/direct-lpi: it has no "
                          "PCI-MSI domain)")
    assert main(["run", "--platform", _board("default"), "--cpus", "4"]) == 2
    assert "--cpus and --platform conflict" in capsys.readouterr().err
    assert main(["run", "--platform", "/nonexistent.dts"]) == 2
    assert "No such file or directory" in capsys.readouterr().err


def test_acpi_from_a_devicetree_says_what_acpi_cannot(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from directlpi import Platform
    from directlpi.firmware.acpi import parse_iort

    assert main(["acpi", "--from", _board("mbi-and-direct-lpi"), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert ("note: segment 0 RIDs 0x100+0xf00 use MBI: written to a PROPOSED GIC MSI target "
            "node (MBI, SPIs 256+128)") in out
    routes = parse_iort((tmp_path / "iort.dat").read_bytes())
    assert [(r.segment, r.rid_base, r.count) for r in routes] == [(0, 0, 0x100)]
    plat = Platform.from_acpi(tmp_path / "apic.dat", tmp_path / "iort.dat")
    dt = Platform.from_devicetree(_board("mbi-and-direct-lpi")).board
    assert plat.board.cpus == dt.cpus and plat.board.gic.mbi_ranges == dt.gic.mbi_ranges
    host = plat.board.pci_hosts[0]
    assert host.msi_parent_for(0x0FF) is plat.board.gic.direct_lpi_fwnode
    assert host.msi_parent_for(0x100) is plat.board.gic.fwnode      # MBI, as the DT says
    assert main(["acpi", "--from", _board("default"), "--cpus", "4"]) == 2
    assert "--cpus and --from conflict" in capsys.readouterr().err


def test_run_with_posted_writes_holds_every_invariant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--posted-writes", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and doc["totals"]["lost"] == 0 and doc["totals"]["handled"] > 30


# -- what a new user trips over: exit statuses, pipes, version ----------------------------------

def test_a_binary_scenario_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "blob.toml"
    bad.write_bytes(b"\x00\xff\xfe binary")
    assert main(["run", "--scenario", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "blob.toml: not a text (UTF-8) file" in err[0]


def test_bench_that_runs_nothing_is_an_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--only", "bench_nothing_called_this"]) == 2
    assert "no bench module named bench_nothing_called_this" in capsys.readouterr().err
    assert main(["bench", "--bench-dir", str(tmp_path)]) == 2
    assert "no bench_*.py module" in capsys.readouterr().err


def test_version_and_python_dash_m() -> None:
    from directlpi import __version__
    out = subprocess.run([sys.executable, "-m", "directlpi", "--version"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.strip() == f"directlpi {__version__}"


def test_a_closed_pipe_ends_the_run_quietly() -> None:
    """``directlpi run --cpus 512 | head -3``: no traceback, 141 (128 + SIGPIPE)."""
    proc = subprocess.Popen([sys.executable, "-m", "directlpi", "run", "--cpus", "512"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()                              # the reader goes away
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and err == ""


def test_the_command_line_loads_the_model_only_when_a_command_needs_it() -> None:
    """Ctrl-C right after start lands in main (exit 130, one line), not in an import."""
    code = "import sys, directlpi.cli; print('directlpi.platform' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_an_interrupt_is_one_line_and_130(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import directlpi.sim.walkthrough as walk

    def interrupted(**kw: object) -> None:
        raise KeyboardInterrupt
    monkeypatch.setattr(walk, "run_walkthrough", interrupted)
    assert main(["walkthrough"]) == 130
    assert capsys.readouterr().err == "directlpi: interrupted\n"


def test_trace_dash_writes_standard_output(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--trace", "-"]) == 0
    out = capsys.readouterr().out
    assert not (tmp_path / "-").exists() and ": gicv3_setlpir: " in out


def test_json_errors_are_a_json_object(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--json", "--scenario", str(tmp_path / "none.toml")]) == 2
    got = json.loads(capsys.readouterr().out)
    assert got["ok"] is False and got["error"]["kind"] == "input"
    assert got["error"]["exit_status"] == 2 and "none.toml" in got["error"]["message"]


def test_acpi_creates_its_output_directory(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "new" / "tables"
    assert main(["acpi", "--out", str(out)]) == 0
    assert (out / "apic.dat").is_file() and (out / "iort.dat").is_file()
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["acpi", "--out", str(blocker / "sub")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_walkthrough_counts_cpus_from_the_end_as_scenarios_do(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["walkthrough", "--cpus", "4", "--cpu", "-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["platform"]["target_cpu"] == 3
    assert main(["walkthrough", "--cpus", "4", "--cpu", "-5"]) == 2


def test_check_says_where_a_madt_names_its_redistributors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["acpi", "--cpus", "4", "--gicr-in-gicc", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["check", str(tmp_path / "apic.dat")]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.endswith("4 CPU(s), GICD @0x8000000, 4 redistributor(s) named in the GICCs "
                         "(GICR Base Address)")


def test_a_ctrl_c_while_the_command_line_imports_is_one_line() -> None:
    """The command line catches SIGINT from its first import on (only when it is the
    command line: a program importing directlpi.cli keeps Python's handler)."""
    probe = ("import signal, sys; sys.argv[0] = {argv0!r}; import directlpi.cli; "
             "h = signal.getsignal(signal.SIGINT); print(getattr(h, '__name__', h))")
    got = {}
    for argv0 in ("/venv/bin/directlpi", "notebook"):
        out = subprocess.run([sys.executable, "-c", probe.format(argv0=argv0)],
                             capture_output=True, text=True, check=True)
        got[argv0] = out.stdout.strip()
    assert got == {"/venv/bin/directlpi": "_interrupted_at_start",
                   "notebook": "default_int_handler"}
    code = ("import signal, sys; sys.argv[0] = 'directlpi'; import directlpi.cli; "
            "signal.raise_signal(signal.SIGINT)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 130 and out.stderr == "directlpi: interrupted\n"


def test_trace_dash_and_json_cannot_share_standard_output(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--trace", "-", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["kind"] == "input"
