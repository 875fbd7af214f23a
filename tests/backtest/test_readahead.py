"""The backtest's reader process: what the parent gets is what the pipeline would have decoded
itself, per distinct decoding, and whatever goes wrong in the child reaches the parent."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.backtest.readahead import ReadAhead
from detector.backtest.sources import Batch, Record, SourceError
from detector.core.pipeline import BatchResult, Pipeline
from detector.settings import Settings, load_settings
from tests.security.test_fuzz import FUZZ_SETTINGS, TOPICS, clean_stream, structured_json

SETTINGS = load_settings(None)


class Listed:
    """A source of given (topic, value) messages, in batches; `after` runs after the first batch."""

    description = "a list"

    def __init__(
        self, values: list[tuple[str, bytes]], after: Callable[[], None] | None = None
    ) -> None:
        self.values, self.after = values, after

    def batches(self, size: int) -> Iterator[Batch]:
        for start in range(0, len(self.values), size):
            batch = Batch()
            for offset, (topic, value) in enumerate(self.values[start : start + size], start=start):
                batch.append(Record(topic, 0, offset, None, value, 1000 + offset), "m")
            yield batch
            if self.after is not None:
                self.after()

    def fraction_done(self) -> None:
        return None


def read(source: Listed, pipelines: list[Pipeline], size: int = 50) -> tuple[ReadAhead, list[list]]:
    reader = ReadAhead(source, pipelines)
    return reader, list(reader.batches(size))


@FUZZ_SETTINGS
@given(st.lists(st.tuples(st.sampled_from(TOPICS), structured_json()), max_size=60))
def test_the_parent_gets_the_events_and_reasons_the_pipeline_decodes_itself(
    hostile: list[tuple[str, bytes]],
) -> None:
    values = list(clean_stream()[:100]) + hostile
    pipeline = Pipeline(SETTINGS)
    _, batches = read(Listed(values), [pipeline])

    for start, [decoded] in zip(range(0, len(values), 50), batches):
        expected = BatchResult()
        records = [
            Record(topic, 0, offset, None, value, 1000 + offset)
            for offset, (topic, value) in enumerate(values[start : start + 50], start=start)
        ]
        assert decoded.events == pipeline.decode(records, expected)
        assert decoded.invalid == expected.invalid
    assert len(batches) == -(-len(values) // 50)


def test_configurations_that_decode_differently_each_get_their_own_events() -> None:
    renamed = SETTINGS.model_copy(
        update={"fields": SETTINGS.fields.model_copy(update={"score": "proba"})}
    )
    pipelines = [Pipeline(SETTINGS), Pipeline(renamed), Pipeline(SETTINGS)]
    value = orjson.dumps({"model": "m", "ts": 5, "prediction": 1, "score": 0.25, "proba": 0.75})

    reader, [[a, b, c]] = read(Listed([("predictions", value)]), pipelines)

    assert reader.distinct == [0, 1]
    assert [a.events[0].score, b.events[0].score, c.events[0].score] == [0.25, 0.75, 0.25]
    assert reader.timeline.predictions == {"m": 1}


def test_an_error_of_the_source_reaches_the_parent_as_itself() -> None:
    def fail() -> None:
        raise SourceError("the cluster went away")

    reader = ReadAhead(Listed([("predictions", b"{}")] * 120, after=fail), [Pipeline(SETTINGS)])
    batches = reader.batches(50)
    next(batches)
    with pytest.raises(SourceError, match=r"^the cluster went away$"):
        next(batches)


def test_an_unexpected_error_is_reported_with_the_source() -> None:
    def fail() -> None:
        raise ValueError("bad bytes")

    with pytest.raises(SourceError, match=r"reading a list failed: ValueError\('bad bytes'\)"):
        read(Listed([("predictions", b"{}")] * 60, after=fail), [Pipeline(SETTINGS)])


def test_a_reader_that_dies_is_reported_with_its_exit_code() -> None:
    with pytest.raises(SourceError, match=r"stopped without a word .exit code 3."):
        read(Listed([("predictions", b"{}")] * 60, after=lambda: os._exit(3)), [Pipeline(SETTINGS)])


def test_settings_without_own_fields_decode_alike() -> None:
    other: Settings = SETTINGS.model_copy(update={"batch_max_events": 10})
    assert Pipeline(SETTINGS).decodes_like(Pipeline(other))
    assert not Pipeline(SETTINGS).decodes_like(
        Pipeline(
            SETTINGS.model_copy(
                update={"topics": SETTINGS.topics.model_copy(update={"labels": "x"})}
            )
        )
    )
