"""directlpi: MSIs on an Arm GICv3 without an ITS ("Direct LPI"), as an executable model.

The public façade.  Hardware at reset::

    from directlpi import Platform
    hw = Platform.bare(cpus=4, lpi_id_bits=16)

See ``README.md`` and ``docs/`` for the model's architectural choices.
"""

from directlpi.errors import (
    ArchitectureViolation,
    ConfigError,
    DirectLPIError,
    UnknownSysregError,
)
from directlpi.hw.events import Event, EventKind
from directlpi.platform import Platform

__all__ = [
    "ArchitectureViolation",
    "ConfigError",
    "DirectLPIError",
    "Event",
    "EventKind",
    "Platform",
    "UnknownSysregError",
]

__version__ = "0.1.0"
