"""The timed simulation's cost model: ``sim/data/costs.toml``, overridable per run.

The shipped file holds the defaults and where each comes from (docs/simulate.md).  A
``--costs FILE`` has the same tables and keys, each optional; what it gives replaces
the default.  Bad input -- an unknown table or key, a value that is not a non-negative
integer number of ns, a route name that is not a route -- is a :class:`CostsError`
naming the file, the key and what is wrong.
"""

from __future__ import annotations

import errno
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from directlpi.errors import DirectLPIError

_TABLES = {
    "path": ("dma_write_ns", "dma_jitter_ns", "its_translate_ns", "hv_doorbell_ns", "rd_signal_ns",
             "spi_signal_ns"),
    "cpu": ("irq_entry_ns", "iar_ns", "handler_ns", "eoi_ns", "irq_exit_ns", "mmio_read_ns",
            "mmio_write_ns"),
    "virtualisation": ("trapped_routes", "trap_ns"),
}


class CostsError(DirectLPIError):
    """A cost file that cannot be used (exit status 2)."""


@dataclass(frozen=True)
class Costs:
    """Costs in ns of simulated time (the meaning of each: ``sim/data/costs.toml``)."""

    dma_write_ns: int
    dma_jitter_ns: int
    its_translate_ns: int
    hv_doorbell_ns: int
    rd_signal_ns: int
    spi_signal_ns: int
    irq_entry_ns: int
    iar_ns: int
    handler_ns: int
    eoi_ns: int
    irq_exit_ns: int
    mmio_read_ns: int
    mmio_write_ns: int
    trapped_routes: tuple[str, ...]
    trap_ns: int

    def as_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)}

    @classmethod
    def zero(cls) -> Costs:
        """Every cost 0: the untimed run's model (everything at once)."""
        zeros = {f.name: 0 for f in fields(cls) if f.name != "trapped_routes"}
        return cls(trapped_routes=(), **zeros)


def _flatten(data: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for table, body in data.items():
        if table not in _TABLES:
            raise CostsError(f"{where}: unknown table [{table}] (known: "
                             f"{', '.join(_TABLES)})", errno.EINVAL)
        if not isinstance(body, dict):
            raise CostsError(f"{where}: {table} must be a table ([{table}])", errno.EINVAL)
        for key, value in body.items():
            if key not in _TABLES[table]:
                raise CostsError(f"{where}: [{table}] {key}: unknown key (known: "
                                 f"{', '.join(_TABLES[table])})", errno.EINVAL)
            out[key] = _value(where, table, key, value)
    return out


def _value(where: str, table: str, key: str, value: object) -> object:
    if key == "trapped_routes":
        from directlpi.sim.compare import ROUTES
        if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
            raise CostsError(f"{where}: [{table}] {key}: a list of route names",
                             errno.EINVAL)
        bad = [r for r in value if r not in ROUTES]
        if bad:
            raise CostsError(f"{where}: [{table}] {key}: unknown route {bad[0]!r} (known: "
                             f"{', '.join(ROUTES)})", errno.EINVAL)
        return tuple(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CostsError(f"{where}: [{table}] {key} = {value!r}: a whole number of ns, 0 "
                         "or more", errno.EINVAL)
    return value


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise CostsError(f"--costs {path}: {exc.strerror}", exc.errno or errno.EIO) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CostsError(f"--costs {path}: not TOML ({exc})", errno.EINVAL) from None


def default_costs_text() -> str:
    """The shipped cost file, comments and all."""
    return resources.files("directlpi.sim").joinpath("data/costs.toml").read_text()


def load_costs(path: str | Path | None = None,
               overrides: dict[str, Any] | None = None) -> Costs:
    """The defaults, with ``path``'s values (a TOML file) and then ``overrides`` (the same
    shape, e.g. a sweep's cost model inline) on top.  Raises :class:`CostsError`."""
    values = _flatten(tomllib.loads(default_costs_text()), "costs.toml")
    if path is not None:
        values.update(_flatten(_read(Path(path)), f"--costs {path}"))
    if overrides:
        values.update(_flatten(overrides, "cost model"))
    return Costs(**values)
