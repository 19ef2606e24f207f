"""docs/report.md lists every key of the run report, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from directlpi.sim.invariants import Violation
from directlpi.sim.run import SCHEMA_VERSION, ScenarioRun, cpulist
from directlpi.sim.scenario import DEFAULT_SCENARIO, load_scenario

DOC = Path(__file__).resolve().parents[1] / "docs" / "report.md"
FREE_FORM = {"steps[].args"}          # the step's own fields (docs/scenarios.md)


def paths(x: Any, prefix: str = "") -> set[str]:
    if prefix in FREE_FORM:
        return {prefix}
    if isinstance(x, dict):
        out: set[str] = set()
        for k, v in x.items():
            out |= paths(v, f"{prefix}.{k}" if prefix else k)
        return out
    if isinstance(x, list) and x and isinstance(x[0], dict):
        return set().union(*(paths(e, prefix + "[]") for e in x))
    return {prefix}


def documented() -> set[str]:
    return set(re.findall(r"^\| `([^`]+)` \|", DOC.read_text(), re.MULTILINE))


def test_the_report_has_exactly_the_documented_keys() -> None:
    report = ScenarioRun(load_scenario(DEFAULT_SCENARIO), cpus=4).run().as_dict()
    report["violations"] = [{**Violation("lost-interrupt", 8192, 7, 0, "x").as_dict(),
                             "review": None}]
    # The RFC replayed trips the review's objections: its findings' keys, too.
    rfc = ScenarioRun(load_scenario(DEFAULT_SCENARIO), cpus=4, provider="rfc-v1").run()
    report["review_findings"] = rfc.as_dict()["review_findings"]
    assert report["review_findings"]
    assert report["schema_version"] == SCHEMA_VERSION
    got = paths(report)
    assert got == documented(), (sorted(got - documented()), sorted(documented() - got))


def test_affinity_lists_are_in_linux_format() -> None:
    assert cpulist([0, 1, 2, 3, 5]) == "0-3,5"
    assert cpulist([7]) == "7" and cpulist([]) == ""
    assert cpulist([0, 2, 3, 4, 9, 10]) == "0,2-4,9-10"
