"""``directlpi sweep``: the configuration's errors, the local pool and a Dask LocalCluster
giving the same table, CSV/JSON output; ``--plot`` figures and the missing-extra error."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from directlpi.cli import main
from directlpi.sim.sweep import COLUMNS, SweepError, parse_sweep, run_sweep, write_results

SMALL = {"duration": "50us", "workload": "poisson", "routes": ["direct-lpi", "mbi"],
         "cpus": [2], "rates": [100000, 400000],
         "costs": {"default": {}, "slow": {"path": {"dma_write_ns": 4000}}}}


def test_points_are_the_cartesian_product_in_a_stable_order() -> None:
    pts = parse_sweep(SMALL).points()
    assert len(pts) == 2 * 1 * 2 * 2
    assert [(p["route"], p["rate"], p["costs_name"]) for p in pts[:3]] == [
        ("direct-lpi", 100000, "default"), ("direct-lpi", 100000, "slow"),
        ("direct-lpi", 400000, "default")]


@pytest.mark.parametrize(("change", "message"), [
    ({"routes": ["kvm"]}, "unknown route 'kvm'"),
    ({"routes": []}, "routes: a non-empty list"),
    ({"cpus": [1]}, "cpus: each 2..512"),
    ({"rates": ["fast"]}, "rates: 'fast' is not a float"),
    ({"costs": {"x": {"cpu": {"nope_ns": 1}}}}, "costs.x:"),
    ({"colour": "blue"}, "unknown key 'colour'"),
    ({"duration": "forever"}, "--duration forever"),
])
def test_bad_configurations_name_the_key(change: dict[str, object], message: str) -> None:
    with pytest.raises(SweepError, match=r"^sweep: ") as e:
        parse_sweep({**SMALL, **change})
    assert message in str(e.value)


def test_dask_local_cluster_and_the_process_pool_give_the_same_table() -> None:
    cfg = parse_sweep({**SMALL, "routes": ["direct-lpi"], "rates": [400000],
                       "costs": {"default": {}, "slow": {"path": {"dma_write_ns": 4000}}}})
    local = run_sweep(cfg, executor="local", workers=2)
    dask = run_sweep(cfg, executor="dask", workers=2, dask_processes=False)

    def strip(rows: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{k: v for k, v in r.items() if k != "host_seconds"} for r in rows]
    assert strip(local) == strip(dask)
    assert [r["costs"] for r in local] == ["default", "slow"]
    # The slower interconnect shows in the latency, by exactly its difference.
    assert local[1]["p50_ns"] - local[0]["p50_ns"] == 4000 - 400
    assert all(r["invariants_ok"] for r in local)


def test_results_are_written_as_csv_and_json(tmp_path: Path) -> None:
    rows = [{**{c: 0 for c in COLUMNS}, "route": "mbi", "costs": "default",
             "invariants_ok": True, "index": 0}]
    paths = write_results(rows, tmp_path)
    assert {p.name for p in paths} >= {"sweep.csv", "sweep.json"}
    with (tmp_path / "sweep.csv").open() as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == list(COLUMNS) and got[0]["route"] == "mbi"
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert doc["columns"] == list(COLUMNS) and doc["points"][0]["route"] == "mbi"


def test_the_sweep_command_writes_its_table(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text('duration = "50us"\nworkload = "poisson"\nroutes = ["its"]\ncpus = [2]\n'
                   'rates = [200000]\n')
    assert main(["sweep", str(cfg), "--workers", "1", "--out", str(tmp_path / "o"),
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["route"] for p in doc["points"]] == ["its"]
    assert (tmp_path / "o" / "sweep.csv").exists()
    assert (tmp_path / "o" / "sweep_p99.png").exists()
    cfg.write_text("routes = [\n")
    assert main(["sweep", str(cfg)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


# -- plots -------------------------------------------------------------------------------------

def test_simulate_plot_writes_png_and_svg(tmp_path: Path) -> None:
    d = tmp_path / "plots"
    assert main(["simulate", "--routes", "direct-lpi,mbi", "--duration", "100us", "--cpus",
                 "2", "--plot", str(d), "--json"]) == 0
    names = sorted(p.name for p in d.iterdir())
    assert names == ["cpu_heatmap_direct-lpi.png", "cpu_heatmap_direct-lpi.svg",
                     "cpu_heatmap_mbi.png", "cpu_heatmap_mbi.svg", "latency_cdf.png",
                     "latency_cdf.svg"]
    assert (d / "latency_cdf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (d / "latency_cdf.svg").read_bytes()[:500]


def test_compare_plot_writes_the_per_operation_bars(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--routes", "direct-lpi,mbi", "--cpus", "2", "--plot",
                 str(tmp_path), "--json"]) == 0
    assert (tmp_path / "compare_ops.png").stat().st_size > 1000
    assert (tmp_path / "compare_ops.svg").exists()


def test_without_matplotlib_plot_is_one_line_naming_the_extra(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["simulate", "--routes", "mbi", "--duration", "50us", "--plot",
                 str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "'plot' extra" in err and err.count("\n") == 1
    assert not (tmp_path / "p").exists()
