"""Hostile input through the decoder and router (pure; no broker).

Random bytes and structured-but-wrong JSON never raise out of `Pipeline.process`; every
rejected message is dead-lettered verbatim with a reason from `detector.core.events.REASONS`; and
invalid messages leave the detectors exactly as a clean stream leaves them (same alerts, same
`ModelMonitor.to_state()`).

hypothesis, not atheris: the inputs that matter are structured (contract fields with wrong
types, values and nesting), which hypothesis generates and shrinks inside pytest; atheris'
coverage-guided byte mutation needs its own process per run (libFuzzer exits on a finding)
and adds nothing over the random-bytes property for a parser that is orjson.
"""

from __future__ import annotations

import functools
import json
import string
from collections.abc import Sequence
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.core.events import REASONS
from detector.core.pipeline import BatchResult, Pipeline
from detector.settings import Settings, load_settings
from producers.simulate import Injection, Simulator
from tests.fakes import FakeMessage

MAX_MESSAGE_BYTES = 4096
SETTINGS: Settings = load_settings(
    None,
    limits={"max_message_bytes": MAX_MESSAGE_BYTES},
    detection={"warmup_events": 50, "resolve_window_events": 50, "cooldown_events": 0},
)
PREDICTIONS, FEATURES, LABELS = (
    SETTINGS.topics.predictions,
    SETTINGS.topics.features,
    SETTINGS.topics.labels,
)
TOPICS = (PREDICTIONS, FEATURES, LABELS)
MODEL = "fraud"
CLEAN_EVENTS = 600
BATCH = 150  # clean messages per batch, the same in the clean and the hostile run
GAP = 64  # clean messages sit at every GAP-th offset of their topic; hostile ones fill the gaps
FUZZ_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- the clean stream and its outcome -------------------------------------------------------


@functools.cache
def clean_stream() -> tuple[tuple[str, bytes], ...]:
    """(topic, value) of a drifting model: predictions, and labels as they fall due."""
    simulator = Simulator(
        model=MODEL,
        seed=5,
        label_delay_ms=2_000,
        injections=(Injection("mean_shift", "amount", start=300),),
    )
    stream: list[tuple[str, bytes]] = []
    for _ in range(CLEAN_EVENTS // 50):
        batch = simulator.batch(50)
        stream += [(PREDICTIONS, orjson.dumps(e)) for e in batch.predictions] + [
            (LABELS, orjson.dumps(e)) for e in batch.labels
        ]
    return tuple(stream)


def placed(
    stream: Sequence[tuple[str, bytes]], hostile: Sequence[tuple[int, str, bytes | None]]
) -> list[list[FakeMessage]]:
    """Batches of the clean stream, the k-th message of a topic at offset GAP*(k+1), with each
    hostile (position, topic, value) inserted before clean message `position` at an offset in
    the gap after its topic's last clean message."""
    before: dict[int, list[tuple[str, bytes | None]]] = {}
    for position, topic, value in hostile:
        before.setdefault(position % len(stream), []).append((topic, value))
    clean_seen = dict.fromkeys(TOPICS, 0)
    in_gap = dict.fromkeys(TOPICS, 0)
    batches: list[list[FakeMessage]] = []
    for i, (topic, value) in enumerate(stream):
        if i % BATCH == 0:
            batches.append([])
        for bad_topic, bad_value in before.get(i, []):
            in_gap[bad_topic] += 1
            batches[-1].append(
                FakeMessage(
                    bad_topic, 0, GAP * clean_seen[bad_topic] + in_gap[bad_topic], bad_value
                )
            )
        clean_seen[topic] += 1
        in_gap[topic] = 0
        batches[-1].append(FakeMessage(topic, 0, GAP * clean_seen[topic], value, MODEL.encode()))
    return batches


def run(batches: list[list[FakeMessage]]) -> tuple[Pipeline, BatchResult]:
    pipeline = Pipeline(SETTINGS)
    total = BatchResult()
    for batch in batches:
        result = pipeline.process(batch)
        total.alerts += result.alerts
        total.dead_letters += result.dead_letters
        total.events.update(result.events)
        total.invalid.update(result.invalid)
    return pipeline, total


def model_states(pipeline: Pipeline) -> dict[str, bytes]:
    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_SORT_KEYS
    return {
        monitor.name: orjson.dumps(monitor.to_state(), option=option)
        for monitor in pipeline.models()
    }


def alert_ids(result: BatchResult) -> list[str]:
    return [alert.id(SETTINGS.kafka.group_id) for alert in result.alerts]


@functools.cache
def clean_outcome() -> tuple[dict[str, bytes], list[str]]:
    pipeline, result = run(placed(clean_stream(), []))
    assert result.alerts, "the clean stream should alert, or the comparison proves little"
    return model_states(pipeline), alert_ids(result)


# -- hostile messages -----------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
contract_fields = (
    "model",
    "version",
    "id",
    "ts",
    "features",
    "prediction",
    "score",
    "latency_ms",
    "label",
)


def dumps(value: Any) -> bytes:
    """JSON as some producer might send it: the stdlib writes NaN and Infinity literals."""
    return json.dumps(value, allow_nan=True, separators=(",", ":")).encode()


@st.composite
def structured_json(draw: st.DrawFn) -> bytes:
    """An object with contract field names holding arbitrary JSON (often wrong), or any JSON."""
    shaped = st.dictionaries(
        st.sampled_from(contract_fields) | st.text(max_size=8), json_values, max_size=6
    )
    return dumps(draw(shaped | json_values))


def not_a_number_letters() -> st.SearchStrategy[str]:
    return st.text(alphabet=string.ascii_letters, max_size=12)  # never a number, never a date


# Each corruption of a valid event, with the reason it must be dead-lettered for.
WRONG_FIELDS: dict[str, tuple[str, st.SearchStrategy[Any]]] = {
    "ts": (
        "bad_field",
        not_a_number_letters()
        | st.integers(max_value=-1)
        | st.integers(min_value=10**16, max_value=2**63 - 1)
        | st.just("2025-11-25T10:00:00")
        | st.lists(st.integers(), max_size=2),
    ),
    "version": (
        "bad_field",
        st.lists(st.integers(), max_size=2)
        | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    ),
    "id": (
        "bad_field",
        st.floats(allow_nan=False, allow_infinity=False)
        | st.booleans()
        | st.lists(st.integers(), max_size=2),
    ),
    "features": (
        "bad_field",
        st.lists(st.integers(), max_size=3) | st.text(max_size=5) | st.integers(),
    ),
    "prediction": (
        "bad_field",
        st.lists(st.integers(), max_size=2)
        | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    ),
    "score": (
        "bad_field",
        st.floats(min_value=1.0, exclude_min=True, allow_infinity=False)
        | st.floats(max_value=-1e-9, allow_infinity=False)
        | st.booleans()
        | not_a_number_letters()
        | st.dictionaries(
            st.text(max_size=3),
            st.floats(min_value=1.0, exclude_min=True, allow_infinity=False),
            min_size=1,
            max_size=3,
        )
        | st.just({}),
    ),
    "latency_ms": (
        "bad_field",
        st.floats(max_value=-1e-9, allow_infinity=False) | st.booleans() | not_a_number_letters(),
    ),
    "model": (
        "bad_model",
        st.integers()
        | st.booleans()
        | st.just("")
        | st.just("m" * 201)
        | st.lists(st.text(max_size=3), max_size=2),
    ),
}


@st.composite
def corrupted_event(draw: st.DrawFn) -> tuple[str, bytes | None, str]:
    """(topic, value, expected reason): one defect in an otherwise valid event of the clean model."""
    event = orjson.loads(
        draw(st.sampled_from([v for t, v in clean_stream() if t == PREDICTIONS][:50]))
    )
    kind = draw(
        st.sampled_from(
            [
                "field",
                "nested",
                "non_finite",
                "missing_model",
                "truncated",
                "not_object",
                "deep",
                "oversize",
                "utf8",
                "empty",
                "topic_field",
            ]
        )
    )
    if kind == "field":
        name = draw(st.sampled_from(sorted(WRONG_FIELDS)))
        reason, values = WRONG_FIELDS[name]
        return PREDICTIONS, dumps({**event, name: draw(values)}), reason
    if kind == "nested":
        nested = draw(
            st.lists(st.integers(), max_size=3)
            | st.dictionaries(st.text(max_size=3), st.integers(), max_size=3)
        )
        return (
            draw(st.sampled_from([PREDICTIONS, FEATURES])),
            dumps({**event, "features": {**event["features"], draw(st.text(max_size=8)): nested}}),
            "nested_feature",
        )
    if kind == "non_finite":
        literal = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400"]))
        field = draw(st.sampled_from(["score", "latency_ms", "amount"]))
        raw = dumps(
            {
                **event,
                "features": {**event["features"], "amount": 0.5},
                "score": 0.5,
                "latency_ms": 0.5,
            }
        )
        return (
            PREDICTIONS,
            raw.replace(f'"{field}":0.5'.encode(), f'"{field}":'.encode() + literal, 1),
            "non_finite",
        )
    if kind == "missing_model":
        return (
            draw(st.sampled_from(TOPICS)),
            dumps({k: v for k, v in event.items() if k != "model"}),
            "missing_model",
        )
    if kind == "truncated":
        raw = dumps(event)
        return (
            PREDICTIONS,
            raw[: draw(st.integers(min_value=1, max_value=len(raw) - 1))],
            "not_json",
        )
    if kind == "not_object":
        return (
            PREDICTIONS,
            dumps(draw(st.sampled_from([[event], "fraud", 1, None, True]))),
            "not_object",
        )
    if kind == "deep":
        depth = draw(st.integers(min_value=1100, max_value=1900))
        raw = dumps({**event, "features": {"x": "DEEP"}})
        return PREDICTIONS, raw.replace(b'"DEEP"', b"[" * depth + b"]" * depth), "too_deep"
    if kind == "oversize":
        return (
            PREDICTIONS,
            dumps(
                {
                    **event,
                    "padding": "x" * draw(st.integers(MAX_MESSAGE_BYTES, 2 * MAX_MESSAGE_BYTES)),
                }
            ),
            "oversize",
        )
    if kind == "utf8":
        return PREDICTIONS, dumps(event).replace(b'"fraud"', b'"fr\xff\xfeud"', 1), "not_json"
    if kind == "empty":
        return draw(st.sampled_from(TOPICS)), draw(st.sampled_from([None, b""])), "empty"
    if draw(st.booleans()):  # topic_field: a field the topic requires is absent
        return FEATURES, dumps({k: v for k, v in event.items() if k != "features"}), "missing_field"
    absent = draw(st.sampled_from(["id", "label"]))
    return (
        LABELS,
        dumps(
            {
                k: v
                for k, v in {"model": MODEL, "id": event["id"], "label": 1}.items()
                if k != absent
            }
        ),
        "missing_field",
    )


def could_be_an_event(raw: bytes) -> bool:
    """Decodes to a JSON object at all (the test's own check, not the decoder's)."""
    try:
        return isinstance(orjson.loads(raw), dict)
    except orjson.JSONDecodeError:
        return False


# -- properties -----------------------------------------------------------------------------


def assert_accounted(messages: Sequence[FakeMessage], result: BatchResult) -> None:
    """Every message is a counted event or a verbatim dead letter with a known reason."""
    assert sum(result.events.values()) + len(result.dead_letters) == len(messages)
    assert sum(result.invalid.values()) == len(result.dead_letters)
    by_offset = {(m.topic(), m.offset()): m for m in messages}
    for letter in result.dead_letters:
        assert letter.reason in REASONS, letter
        assert letter.value == by_offset[letter.topic, letter.offset].value()


@FUZZ_SETTINGS
@given(
    st.lists(
        st.tuples(st.sampled_from(TOPICS), st.none() | st.binary(max_size=600)),
        min_size=1,
        max_size=30,
    )
)
def test_random_bytes_never_raise_and_are_classified(
    values: list[tuple[str, bytes | None]],
) -> None:
    messages = [FakeMessage(topic, i % 3, i, value) for i, (topic, value) in enumerate(values)]
    result = Pipeline(SETTINGS).process(messages)
    assert_accounted(messages, result)


@FUZZ_SETTINGS
@given(st.lists(st.tuples(st.sampled_from(TOPICS), structured_json()), min_size=1, max_size=30))
def test_structured_but_wrong_json_never_raises_and_is_classified(
    values: list[tuple[str, bytes]],
) -> None:
    messages = [FakeMessage(topic, i % 3, i, value) for i, (topic, value) in enumerate(values)]
    result = Pipeline(SETTINGS).process(messages)
    assert_accounted(messages, result)
    for letter in result.dead_letters:
        decoded = could_be_an_event(letter.value or b"")
        assert decoded or letter.reason in {
            "empty",
            "oversize",
            "not_json",
            "non_finite",
            "too_deep",
            "not_object",
        }, letter


@FUZZ_SETTINGS
@given(corrupted_event())
def test_each_defect_is_dead_lettered_for_its_own_reason(
    corrupted: tuple[str, bytes | None, str],
) -> None:
    topic, value, reason = corrupted
    result = Pipeline(SETTINGS).process([FakeMessage(topic, 0, 0, value)])
    assert [(d.reason, d.value) for d in result.dead_letters] == [(reason, value)], (
        result.dead_letters[0].detail if result.dead_letters else "accepted"
    )


hostile_messages = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=10_000),
        corrupted_event().map(lambda c: (c[0], c[1]))
        | st.tuples(
            st.sampled_from(TOPICS),
            st.binary(max_size=300).filter(lambda raw: not could_be_an_event(raw)),
        ),
    ).map(lambda item: (item[0], *item[1])),
    min_size=1,
    max_size=40,
)


@FUZZ_SETTINGS
@given(hostile_messages)
def test_invalid_input_leaves_the_detectors_state_unchanged(
    hostile: list[tuple[int, str, bytes | None]],
) -> None:
    expected_states, expected_ids = clean_outcome()
    batches = placed(clean_stream(), hostile)
    pipeline, result = run(batches)
    assert len(result.dead_letters) == len(hostile), [
        (d.reason, d.value) for d in result.dead_letters
    ]
    assert_accounted([m for batch in batches for m in batch], result)
    assert alert_ids(result) == expected_ids
    assert model_states(pipeline) == expected_states
