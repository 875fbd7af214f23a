"""Every detector has the one batch interface: `update(values) -> DetectorResult` (hits in index
order, blocks only from a block detector) and a plain-data state that resumes the same."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import orjson
import pytest

from detector.core.monitors.batch_detector import BatchDetector, DetectorResult
from detector.core.monitors.binary import binary_detectors
from detector.core.monitors.detectors import BlockAdwin, StatisticStream
from detector.core.monitors.page_hinkley import PageHinkley

BLOCK = 16

DETECTORS: dict[str, tuple[Callable[[], BatchDetector], bool]] = {  # name: (make, gives blocks)
    "page_hinkley": (lambda: PageHinkley(threshold=8.0, delta=0.05, alpha=1.0), False),
    "block_adwin": (lambda: BlockAdwin(delta=0.002, block_events=BLOCK), True),
    "statistic_stream": (
        lambda: StatisticStream(PageHinkley(8.0, 0.05, 1.0), 0.002, BLOCK),
        True,
    ),
    "hddm_a": (lambda: binary_detectors(1e-3, 1000, 100)["hddm_a"], False),
    "ddm": (lambda: binary_detectors(1e-3, 1000, 100)["ddm"], False),
}


def stream() -> np.ndarray:
    """0/1 values whose rate rises from 0.1 to 0.4 (every detector here signals on it)."""
    rng = np.random.default_rng(4)
    return np.concatenate([rng.random(6000) < 0.1, rng.random(6000) < 0.4]).astype(np.float64)


def fed(detector: BatchDetector, values: np.ndarray, batch: int) -> list[tuple[int, str, int]]:
    hits = []
    for start in range(0, len(values), batch):
        result = detector.update(values[start : start + batch])
        assert isinstance(result, DetectorResult)
        assert [h.index for h in result.hits] == sorted(h.index for h in result.hits)
        hits += [(start + h.index, h.detector, h.change_age) for h in result.hits]
    return hits


@pytest.mark.parametrize("name", DETECTORS)
def test_a_detector_reports_its_hits_and_blocks_in_one_shape(name: str) -> None:
    make, gives_blocks = DETECTORS[name]
    values = stream()
    result = make().update(values)
    assert result.hits, f"{name} must signal the rise"
    assert all(hit.index >= 6000 for hit in result.hits[:1])
    if gives_blocks:
        assert result.block_ends.tolist() == list(range(BLOCK - 1, len(values), BLOCK))
        assert np.allclose(result.block_means, values.reshape(-1, BLOCK).mean(axis=1))
    else:
        assert len(result.block_means) == len(result.block_ends) == 0


@pytest.mark.parametrize("name", DETECTORS)
def test_a_detector_restored_from_its_state_decides_as_the_uninterrupted_one(name: str) -> None:
    make, _ = DETECTORS[name]
    values = stream()
    uninterrupted = fed(make(), values, 1000)
    first = make()
    found = fed(first, values[:5000], 1000)
    restored = make()
    restored.load_state(
        orjson.loads(orjson.dumps(first.to_state(), option=orjson.OPT_SERIALIZE_NUMPY))
    )
    found += [(5000 + i, d, age) for i, d, age in fed(restored, values[5000:], 1000)]
    assert found == uninterrupted
