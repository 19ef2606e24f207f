"""Workloads of the timed simulation: devices, when they raise MSIs, and actions mid-traffic.

A workload names devices (an MSI-X function, or a MultiMSI block), each taking a share
of the total rate, with an arrival pattern -- ``poisson`` (exponential gaps), or
``burst`` (bursts of ``burst`` MSIs at once, the bursts Poisson) -- and a vector choice:
``rss`` (uniform over the vectors, as an RSS hash spreads flows) or ``round-robin``.
``managed = true`` allocates the vectors with managed affinity (PCI_IRQ_AFFINITY: spread
over the CPUs by the irq core, shut down when their CPUs go offline).  Actions happen at
a fraction of the duration (``at = 0.5``): ``set_affinity``, ``cpu_offline``,
``cpu_online``.

Built in (``--workload NAME``): :data:`BUILTIN`; or ``--workload FILE.toml`` in the same
shape (docs/simulate.md).
"""

from __future__ import annotations

import errno
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from directlpi.errors import DirectLPIError


class WorkloadError(DirectLPIError):
    """A workload that cannot be used (exit status 2)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceLoad(_Strict):
    name: str = Field(min_length=1, max_length=32)
    kind: Literal["msix", "msi"] = "msix"
    """``msix``: one message per vector; ``msi``: a MultiMSI block (2^k vectors)."""
    vectors: int = Field(4, ge=1, le=2048)
    """Vectors; ``0`` is not allowed, and ``queues_per_cpu`` may set it instead."""
    queues_per_cpu: bool = False
    """One vector per CPU (an RSS NIC): ``vectors`` is then the upper bound."""
    managed: bool = False
    share: float = Field(1.0, gt=0.0)
    """This device's part of the total rate (shares are normalised)."""
    pattern: Literal["poisson", "burst"] = "poisson"
    burst: int = Field(8, ge=1, le=4096)
    spread: Literal["rss", "round-robin"] = "rss"

    @model_validator(mode="after")
    def _multimsi(self) -> DeviceLoad:
        if self.kind == "msi" and (self.vectors > 32 or self.vectors & (self.vectors - 1)):
            raise ValueError(f"a MultiMSI block has 1, 2, 4, 8, 16 or 32 vectors, not "
                             f"{self.vectors}")
        return self


class Action(_Strict):
    at: float = Field(ge=0.0, lt=1.0)
    """When, as a fraction of the duration."""
    do: Literal["set_affinity", "cpu_offline", "cpu_online"]
    device: str | None = None
    vector: int = Field(0, ge=0)
    cpus: list[int] = Field(default_factory=list)
    """set_affinity's CPUs (negative: from the last CPU)."""
    cpu: int = 0
    """cpu_offline / cpu_online's CPU (negative: from the last CPU)."""

    @model_validator(mode="after")
    def _fields(self) -> Action:
        if self.do == "set_affinity" and (self.device is None or not self.cpus):
            raise ValueError("set_affinity needs device and cpus")
        return self


class Workload(_Strict):
    name: str = "workload"
    devices: list[DeviceLoad] = Field(min_length=1, max_length=64)
    actions: list[Action] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names(self) -> Workload:
        names = [d.name for d in self.devices]
        for n in names:
            if names.count(n) > 1:
                raise ValueError(f"device {n!r} is named twice")
        for a in self.actions:
            if a.device is not None and a.device not in names:
                raise ValueError(f"action at {a.at}: no device named {a.device!r}")
        return self


_NIC = {"name": "nic", "kind": "msix", "vectors": 8, "queues_per_cpu": True, "managed": True,
        "spread": "rss"}
_STORAGE = {"name": "nvme", "kind": "msi", "vectors": 8, "pattern": "burst", "burst": 4,
            "spread": "rss"}

BUILTIN: dict[str, dict[str, object]] = {
    "poisson": {"name": "poisson", "devices": [{"name": "dev", "vectors": 4}]},
    "burst": {"name": "burst", "devices": [{"name": "dev", "vectors": 4, "pattern": "burst",
                                            "burst": 16}]},
    "nic-rss": {"name": "nic-rss", "devices": [_NIC]},
    "storage": {"name": "storage", "devices": [_STORAGE]},
    "mixed": {"name": "mixed",
              "devices": [{**_NIC, "share": 0.7}, {**_STORAGE, "share": 0.3}],
              "actions": [{"at": 0.3, "do": "set_affinity", "device": "nvme", "vector": 0,
                           "cpus": [-1]},
                          {"at": 0.6, "do": "cpu_offline", "cpu": 1}]},
}
"""``poisson``: one MSI-X function, 4 vectors, Poisson arrivals.  ``burst``: the same in
bursts of 16.  ``nic-rss``: an RSS NIC, one managed queue vector per CPU (8 at most).
``storage``: a MultiMSI block of 8 vectors, completions in bursts of 4.  ``mixed`` (the
default): the NIC (70 %) and the storage device (30 %) together, the storage block moved
to the last CPU at 30 % of the run and CPU1 taken offline at 60 %."""
DEFAULT_WORKLOAD = "mixed"


def _error(where: str, exc: ValidationError) -> WorkloadError:
    e = exc.errors()[0]
    loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in e["loc"])
    loc = loc.replace(".[", "[")
    return WorkloadError(f"{where}: {loc + ': ' if loc else ''}{e['msg']}", errno.EINVAL)


def parse_workload(data: dict[str, object], where: str = "workload") -> Workload:
    """A workload from its dict form; :class:`WorkloadError` names the field."""
    try:
        return Workload.model_validate(data)
    except ValidationError as exc:
        raise _error(where, exc) from None


def load_workload(name_or_file: str | Path | None) -> Workload:
    """``--workload NAME|FILE``: a built-in workload, or a TOML file (the default when
    None).  Raises :class:`WorkloadError` (unknown name, unreadable or invalid file)."""
    text = DEFAULT_WORKLOAD if name_or_file is None else str(name_or_file)
    if text in BUILTIN:
        return parse_workload(BUILTIN[text], text)
    path = Path(text)
    if path.suffix != ".toml":
        raise WorkloadError(f"--workload {text}: not a built-in workload (known: "
                            f"{', '.join(BUILTIN)}) nor a .toml file", errno.EINVAL)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WorkloadError(f"--workload {text}: {exc.strerror}",
                            exc.errno or errno.ENOENT) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"--workload {text}: not valid TOML ({exc})",
                            errno.EINVAL) from None
    return parse_workload(data, text)


_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def parse_duration(text: str) -> int:
    """``--duration``: ``10ms``, ``250us``, ``1s``, ``5000ns`` (a bare number: ns).
    Raises DirectLPIError (EINVAL)."""
    t = text.strip()
    for unit in ("ns", "us", "ms", "s"):
        if t.endswith(unit):
            num, scale = t[: -len(unit)], _UNITS[unit]
            break
    else:
        num, scale = t, 1
    try:
        value = float(num)
    except ValueError:
        raise DirectLPIError(f"--duration {text}: a time such as 10ms, 250us, 1s",
                             errno.EINVAL) from None
    ns = round(value * scale)
    if not 1_000 <= ns <= 60 * 1_000_000_000:
        raise DirectLPIError(f"--duration {text}: between 1us and 60s of simulated time",
                             errno.EINVAL)
    return ns
