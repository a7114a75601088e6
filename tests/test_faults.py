"""The fault-injection suite: each fault of benchmarks/faults.py, once, on real files and processes."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import faults  # noqa: E402


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Corpus and an uninterrupted reference run, shared by the scenarios (each writes its own dirs)."""
    work = tmp_path_factory.mktemp("faults")
    faults.reference(work)
    return work


@pytest.mark.parametrize("name", list(faults.SCENARIOS))
def test_fault_is_survived_without_losing_lines(work, name):
    outcome = faults.SCENARIOS[name](work)
    assert outcome.survived, outcome.detail
    assert outcome.lines_lost == 0
