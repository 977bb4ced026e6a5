"""Shared fixtures: seeded small temporal graphs and the path of the real data sets."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# Test modules import helpers with ``from reference import ...`` whatever pytest's import mode.
_TESTS = Path(__file__).resolve().parent
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from reference import TemporalGraph, random_temporal_graph  # noqa: E402

#: ``../shared/data`` relative to the repository root; tests needing it skip when it is absent.
SHARED_DATA = _TESTS.parents[1] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real data sets folder, or a skip when this checkout has none."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data sets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    """A numpy generator with a fixed seed, fresh for each test."""
    return np.random.default_rng(12345)


@pytest.fixture
def make_graph():
    """Factory for :func:`reference.random_temporal_graph` (same arguments -> same graph)."""
    return random_temporal_graph


@pytest.fixture
def small_graph() -> TemporalGraph:
    """20 nodes (the last 4 without any event), 120 events over 30 distinct times (many ties)."""
    return random_temporal_graph(20, 120, seed=7, num_distinct_times=30, num_active_nodes=16)
