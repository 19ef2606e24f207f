"""Every Python snippet and every ``directlpi`` command in README.md and docs/ runs as
written (commands with the exit status their text promises: 0)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(lang: str) -> list[tuple[str, int, str]]:
    out = []
    for doc in DOCS:
        for i, text in enumerate(re.findall(rf"```{lang}\n(.*?)```", doc.read_text(), re.S)):
            out.append((doc.name, i, text))
    return out


def commands() -> list[tuple[str, str]]:
    out = []
    for name, _, text in blocks("sh"):
        for line in text.splitlines():
            cmd = line.split("#", 1)[0].strip()
            if cmd.startswith("./bootstrap &&"):
                cmd = cmd.split("&&", 1)[1].strip()
            if cmd.startswith(".venv/bin/directlpi "):
                out.append((name, cmd))
    return out


@pytest.mark.parametrize("doc,index,code", blocks("python"),
                         ids=[f"{d}#{i}" for d, i, _ in blocks("python")])
def test_python_snippet_runs(doc: str, index: int, code: str, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    ns: dict[str, Any] = {}
    exec(compile(code, f"{doc}#{index}", "exec"), ns)


@pytest.mark.parametrize("doc,cmd", commands(), ids=[c for _, c in commands()])
def test_command_runs(doc: str, cmd: str) -> None:
    argv = shlex.split(cmd)
    argv[0:1] = [sys.executable, "-m", "directlpi"]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False,
                         timeout=300)
    assert out.returncode == 0, f"{doc}: {cmd}: {out.stderr}"


def test_there_are_commands_to_run() -> None:
    assert len(commands()) >= 3 and len(blocks("python")) >= 8
