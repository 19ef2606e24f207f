"""Scenarios: devices, their drivers, and actions at points in time, as TOML.

A scenario is validated as a whole before anything runs; every problem is
reported with its field path (``devices[1].msi_vectors: ...``).  Running it
builds the default board with the scenario's devices, boots, binds a driver to
every device (vectors allocated and requested), attaches the invariant checker,
and plays the steps tick by tick: all steps of one ``at`` in file order, then
the CPUs take and handle everything pending.

Step kinds (``do``): raise, set_affinity, mask, unmask, disable, enable,
retrigger, set_pending, clear_pending, cpu_offline, cpu_online, free, alloc,
spoof.  CPUs are numbered from 0, or from the end with negative numbers (-1 is
the last CPU), so that a scenario runs on any CPU count (``--cpus``).  A step
may declare ``expect_error = "EINVAL"``: the step must then fail with that
errno (a demonstrated refusal), and the run goes on.
"""

from __future__ import annotations

import difflib
import errno as errno_mod
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from directlpi.errors import ConfigError, DirectLPIError

DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "default.toml"


class ScenarioError(DirectLPIError):
    """A scenario file that cannot be read, validated or run (EINVAL)."""


class StepFailed(ScenarioError):
    """A step of a valid scenario failed, or succeeded where it was to be refused: the run
    found a problem (exit status 1), unlike a scenario that cannot be used (2)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlatformSpec(_Strict):
    cpus: int = Field(8, ge=1, le=512)
    lpi_id_bits: int = Field(16, ge=14, le=24)
    posted_writes: bool = False
    """DMA writes (MSIs) held in the interconnect and landing later (PCIe ordering)."""
    seed: int = Field(0, ge=0)
    """Seed of the order in which posted writes land among the PEs' activity."""
    lpis_clearable: bool = False
    """GICR_CTLR.CES = 1: EnableLPIs can be cleared (a dying CPU writes pending state back)."""
    security_states: int = Field(1, ge=1, le=2)
    """2: GICD_CTLR.DS = 0, the kernel Non-secure after the EL3 firmware step."""
    scr_el3_fiq: bool = True
    """With two Security states: SCR_EL3.FIQ as the EL3 firmware leaves it."""


class FaultsSpec(_Strict):
    """Injected faults (``[faults]``): what the hardware does wrong, seeded."""

    dma_drop: float = Field(0.0, ge=0.0, le=1.0)
    """The probability that the interconnect drops an issued DMA write (an MSI): recorded,
    so the report can tell "the platform lost it" from "the driver lost it"."""
    syncr_stuck: int = Field(0, ge=-1)
    """GICR_SYNCR.Busy stays 1 for this many extra reads after an operation it hits; -1:
    for ever (the redistributor never reports completion again)."""
    syncr_stuck_rate: float = Field(1.0, ge=0.0, le=1.0)
    """The probability that one CLRLPIR/INVLPIR/INVALLR is hit by ``syncr_stuck``."""
    cache_refill: float = Field(0.0, ge=0.0, le=1.0)
    """The probability, at each LPI made pending and each GICR_SYNCR read, that the RD
    drops its configuration cache and refills it from the property table."""
    stale_msi: int = Field(0, ge=0)
    """After a device's message is reprogrammed, it writes its previous one this many
    more times (per vector)."""
    its_cmd_error: float = Field(0.0, ge=0.0, le=1.0)
    """The probability that an ITS command fails with its architected error (the queue
    stalls until the driver retries)."""
    seed: int = Field(0, ge=0)

    def hardware(self) -> dict[str, Any]:
        """The faults as hardware options of :class:`~directlpi.platform.Platform`.
        (EnableLPIs that cannot be cleared, GICR_CTLR.CES = 0, is the default silicon;
        ``[platform] lpis_clearable`` chooses it.)"""
        return {"dma_drop": self.dma_drop, "syncr_stuck": self.syncr_stuck,
                "syncr_stuck_rate": self.syncr_stuck_rate, "cache_refill": self.cache_refill,
                "stale_msi": self.stale_msi, "its_cmd_error": self.its_cmd_error,
                "fault_seed": self.seed}


class DriverSpec(_Strict):
    """How the device's driver allocates its vectors."""

    flags: list[Literal["msi", "msix", "affinity"]] = ["msix", "msi"]
    min_vectors: int = Field(1, ge=1)
    max_vectors: int | None = Field(None, ge=1)
    pre_vectors: int = Field(0, ge=0)


class PciDeviceSpec(_Strict):
    kind: Literal["pci"]
    name: str = Field(min_length=1)
    bdf: str
    msi_vectors: Literal[0, 1, 2, 4, 8, 16, 32] = 0
    msix_vectors: int = Field(0, ge=0, le=2048)
    msi_64bit: bool = True
    per_vector_mask: bool = False
    driver: DriverSpec = DriverSpec()

    @field_validator("bdf")
    @classmethod
    def _bdf(cls, v: str) -> str:
        from directlpi.devices.pci import parse_bdf
        try:
            parse_bdf(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _has_msi(self) -> PciDeviceSpec:
        if not self.msi_vectors and not self.msix_vectors:
            raise ValueError("a PCI device needs msi_vectors or msix_vectors")
        return self


class PlatformDeviceSpec(_Strict):
    kind: Literal["platform"]
    name: str = Field(min_length=1)
    slots: int = Field(1, ge=1, le=2048)


DeviceSpec = Annotated[PciDeviceSpec | PlatformDeviceSpec, Field(discriminator="kind")]


class _Step(_Strict):
    at: int = Field(ge=0)
    expect_error: str | None = None
    min_cpus: int = Field(1, ge=1, le=512)
    """The step is played only on a platform with at least this many CPUs (skipped, and
    reported as skipped, on fewer), so one scenario runs on every CPU count."""

    @field_validator("expect_error")
    @classmethod
    def _errno(cls, v: str | None) -> str | None:
        if v is not None and not hasattr(errno_mod, v):
            raise ValueError(f"{v!r} is not an errno name (EINVAL, ENOSPC, EPERM, ...)")
        return v


class RaiseStep(_Step):
    do: Literal["raise"]
    device: str
    vector: int | Literal["all"] = "all"
    count: int = Field(1, ge=1, le=100_000)


class AffinityStep(_Step):
    do: Literal["set_affinity"]
    device: str
    vector: int = Field(ge=0)
    cpus: list[int] = Field(min_length=1)
    """CPU numbers; negative ones count from the last CPU (-1)."""
    force: bool = False


class VectorStep(_Step):
    do: Literal["mask", "unmask", "disable", "enable", "retrigger", "set_pending",
                "clear_pending"]
    device: str
    vector: int = Field(ge=0)


class CpuStep(_Step):
    do: Literal["cpu_offline", "cpu_online"]
    cpu: int


class DeviceStep(_Step):
    do: Literal["free", "alloc"]
    device: str


class SpoofStep(_Step):
    do: Literal["spoof"]
    device: str
    """The device that writes what it was never programmed with."""
    victim: str
    victim_vector: int = Field(0, ge=0)
    cpu: int | None = None
    """Whose redistributor to write (default: where the victim's vector targets)."""


Step = Annotated[RaiseStep | AffinityStep | VectorStep | CpuStep | DeviceStep | SpoofStep,
                 Field(discriminator="do")]


class Scenario(_Strict):
    name: str = "scenario"
    description: str = ""
    platform: PlatformSpec = PlatformSpec()
    faults: FaultsSpec = FaultsSpec()
    devices: list[DeviceSpec] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    _source: str = PrivateAttr("scenario")

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        problems = []
        names = [d.name for d in self.devices]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            problems.append(f"device names must be unique: {', '.join(dup)}")
        bdfs = [d.bdf for d in self.devices if isinstance(d, PciDeviceSpec)]
        dup = sorted({b for b in bdfs if bdfs.count(b) > 1})
        if dup:
            problems.append(f"two PCI devices at {', '.join(dup)}")
        sizes = {d.name: (max(d.msix_vectors, d.msi_vectors) if isinstance(d, PciDeviceSpec)
                          else d.slots) for d in self.devices}
        for i, step in enumerate(self.steps):
            for ref in ("device", "victim"):
                name = getattr(step, ref, None)
                if name is not None and name not in names:
                    problems.append(f"steps[{i}].{ref}: no device named {name!r}")
            for ref, field in (("device", "vector"), ("victim", "victim_vector")):
                vec = getattr(step, field, None)
                size = sizes.get(getattr(step, ref, None) or "")
                if isinstance(vec, int) and size is not None and vec >= size:
                    problems.append(f"steps[{i}].{field}: {getattr(step, ref)} has {size} "
                                    f"vector(s) at most, not vector {vec}")
        if not self.devices:
            problems.append("no devices: a scenario needs at least one [[devices]] table")
        if not self.steps:
            problems.append("no steps: a scenario needs at least one [[steps]] table")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def check_cpus(self, ncpus: int) -> None:
        """Every CPU a step that is played on ``ncpus`` CPUs names must exist there; every
        problem is listed, each with the scenario's file and the field path."""
        src = self.source
        problems = []
        for i, step in enumerate(self.steps):
            if ncpus < step.min_cpus:
                continue
            cpu = getattr(step, "cpu", None)
            field, refs = ("cpu", [cpu]) if cpu is not None else ("cpus",
                                                                    getattr(step, "cpus", []))
            for c in refs:
                if not -ncpus <= c < ncpus:
                    problems.append(
                        f"{src}: steps[{i}].{field}: CPU {c} does not exist on {ncpus} "
                        f"CPU(s) (use 0..{ncpus - 1}, or -1..-{ncpus} from the end; or "
                        "min_cpus to skip the step on fewer)")
            if step.do == "cpu_offline" and ncpus < 2:
                problems.append(f"{src}: steps[{i}]: cpu_offline needs at least 2 CPUs "
                                "(set min_cpus = 2 to skip it on 1)")
        if problems:
            raise ScenarioError("\n".join(problems), errno_mod.EINVAL)

    @property
    def source(self) -> str:
        """Where the scenario came from (its file), for messages."""
        return self._source

    def _with_source(self, source: str) -> Scenario:
        self._source = source
        return self


def _tags() -> set[str]:
    """The discriminator values pydantic puts into error locations."""
    tags: set[str] = set()
    for model in (PciDeviceSpec, PlatformDeviceSpec, RaiseStep, AffinityStep, VectorStep,
                  CpuStep, DeviceStep, SpoofStep):
        for name in ("kind", "do"):
            field = model.model_fields.get(name)
            if field is not None:
                tags.update(getattr(field.annotation, "__args__", ()))
    return tags


def _loc(loc: tuple[int | str, ...]) -> str:
    tags = _tags()
    out = ""
    prev: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not (isinstance(prev, int) and part in tags):   # a union's tag follows an index
            out += ("." if out else "") + part
        prev = part
    return out or "(top level)"


def parse_scenario(data: dict[str, Any], source: str = "scenario") -> Scenario:
    """Validate a parsed scenario; ScenarioError lists every problem with its field path."""
    try:
        return Scenario.model_validate(data)._with_source(source)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            if err["type"] == "extra_forbidden":
                key = str(loc[-1])
                near = difflib.get_close_matches(key, _keys(loc[:-1]), n=1)
                msg = f"unknown key {key!r}" + (f"; did you mean {near[0]!r}?" if near else "")
                loc = loc[:-1]
            elif err["type"] == "missing":
                msg = "missing (required)"
            else:
                msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{source}: {_loc(loc)}: {msg}")
        raise ScenarioError("\n".join(lines), errno_mod.EINVAL) from None


def _keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the table at ``loc`` (a pydantic error location) can have."""
    by_tag: dict[str, dict[str, type[BaseModel]]] = {
        "devices": {"pci": PciDeviceSpec, "platform": PlatformDeviceSpec},
        "steps": {do: m for m in (RaiseStep, AffinityStep, VectorStep, CpuStep, DeviceStep,
                                  SpoofStep)
                  for do in getattr(m.model_fields["do"].annotation, "__args__", ())},
    }
    model: type[BaseModel] = Scenario
    parts = [p for p in loc if isinstance(p, str)]
    for i, part in enumerate(parts):
        if part == "platform" and model is Scenario:
            model = PlatformSpec
        elif part == "faults" and model is Scenario:
            model = FaultsSpec
        elif part == "driver":
            model = DriverSpec
        elif part in by_tag and i + 1 < len(parts):
            model = by_tag[part].get(parts[i + 1], model)
    return sorted(model.model_fields)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a TOML scenario file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{p}: not a text (UTF-8) file: byte {exc.start} is "
                            f"{exc.object[exc.start]:#04x}; a scenario is TOML",
                            errno_mod.EINVAL) from None
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read the scenario: {exc.strerror}",
                            exc.errno or errno_mod.ENOENT) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{p}: not valid TOML: {exc}", errno_mod.EINVAL) from None
    return parse_scenario(data, str(p))
