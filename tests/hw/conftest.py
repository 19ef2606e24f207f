from __future__ import annotations

import pytest

from directlpi import Platform
from directlpi.sim.bringup import LpiTables, bring_up


@pytest.fixture
def plat() -> Platform:
    """Four PEs at reset."""
    return Platform.bare(cpus=4)


@pytest.fixture
def lpis(plat: Platform) -> tuple[Platform, LpiTables]:
    """Four PEs with Group 1 enabled, RDs awake, LPI tables programmed and LPIs on."""
    return plat, bring_up(plat)
