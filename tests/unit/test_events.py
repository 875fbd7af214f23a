"""Every kind of bad input is classified with a reason; valid events decode completely."""

from __future__ import annotations

import msgspec
import orjson
import pytest

from detector.core.events import (
    REASONS,
    Decoder,
    Event,
    InputTopic,
    Invalid,
    features_in_order,
    parse_timestamp,
)
from detector.settings import FieldMapping

DECODER = Decoder(FieldMapping(), max_message_bytes=2000, max_model_name_length=200)


def decode(raw: bytes | None, source: InputTopic = InputTopic.prediction) -> Event | Invalid:
    return DECODER.decode(raw, source, 0, 42, 1_700_000_000_000)


def test_a_full_prediction_event() -> None:
    raw = orjson.dumps(
        {
            "model": "fraud",
            "version": 3,
            "id": "req-1",
            "ts": "2025-11-25T10:00:00.123Z",
            "features": {"amount": 12.5, "country": "DE", "age": None, "vip": True},
            "prediction": 1,
            "score": 0.87,
            "latency_ms": 14.2,
            "unknown_top_level": [1, 2],
        }
    )
    event = decode(raw)
    assert isinstance(event, Event)
    assert (
        event.model,
        event.version,
        event.id,
        event.prediction,
        event.score,
        event.latency_ms,
    ) == ("fraud", "3", "req-1", 1, 0.87, 14.2)
    assert event.ts_ms == 1764064800123
    assert event.features == {"amount": 12.5, "country": "DE", "age": None, "vip": True}
    assert (event.partition, event.offset) == (0, 42)


def test_kafka_timestamp_is_the_default_event_time() -> None:
    event = decode(b'{"model": "m"}')
    assert isinstance(event, Event) and event.ts_ms == 1_700_000_000_000


def test_multiclass_scores_keep_the_top_probability() -> None:
    event = decode(b'{"model": "m", "score": {"a": 0.2, "b": 0.7, "c": 0.1}}')
    assert isinstance(event, Event) and event.score == 0.7


@pytest.mark.parametrize(
    "raw,reason",
    [
        (None, "empty"),
        (b"", "empty"),
        (b"x" * 2001, "oversize"),
        (b"{not json", "not_json"),
        (
            b'{"model": "NaN-x", "score": 0.5',
            "not_json",
        ),  # cut short: a model named NaN is no NaN value
        (b"\xff\xfe\x00", "not_json"),
        (
            b'{"model": "m\xff"}',
            "not_json",
        ),  # invalid UTF-8 inside a string: msgspec raises UnicodeDecodeError
        (b'{"model": "m", "features": {"a": NaN}}', "non_finite"),
        (b'{"model": "m", "score": Infinity}', "non_finite"),
        (b'{"model": "m", "latency_ms": 1e400}', "non_finite"),
        (b"[" * 1500 + b"]" * 1500, "oversize"),
        (b"[1, 2]", "not_object"),
        (b'"fraud"', "not_object"),
        (b'{"features": {}}', "missing_model"),
        (b'{"model": 7}', "bad_model"),
        (b'{"model": ""}', "bad_model"),
        (orjson.dumps({"model": "m" * 201}), "bad_model"),
        (b'{"model": "m", "features": [1, 2]}', "bad_field"),
        (b'{"model": "m", "features": {"a": {"b": 1}}}', "nested_feature"),
        (b'{"model": "m", "features": {"a": [1]}}', "nested_feature"),
        (b'{"model": "m", "score": 1.5}', "bad_field"),
        (b'{"model": "m", "score": "high"}', "bad_field"),
        (b'{"model": "m", "score": {"a": 2}}', "bad_field"),
        (b'{"model": "m", "latency_ms": -1}', "bad_field"),
        (b'{"model": "m", "prediction": {"x": 1}}', "bad_field"),
        (b'{"model": "m", "ts": "yesterday"}', "bad_field"),
        (b'{"model": "m", "ts": "2025-11-25T10:00:00"}', "bad_field"),
        (b'{"model": "m", "id": {"x": 1}}', "bad_field"),
    ],
)
def test_bad_input_is_classified(raw: bytes | None, reason: str) -> None:
    result = decode(raw)
    assert isinstance(result, Invalid), result
    assert result.reason == reason
    assert reason in REASONS


def test_deep_nesting_within_size_is_too_deep() -> None:
    decoder = Decoder(FieldMapping(), max_message_bytes=100_000, max_model_name_length=200)
    result = decoder.decode(b"[" * 5000 + b"]" * 5000, InputTopic.prediction, 0, 0, 0)
    assert isinstance(result, Invalid) and result.reason == "too_deep"


def test_topic_specific_requirements() -> None:
    assert decode(b'{"model": "m"}', InputTopic.feature) == Invalid(
        "missing_field", "feature events need 'features'"
    )
    assert isinstance(decode(b'{"model": "m", "label": 1}', InputTopic.label), Invalid)
    assert isinstance(decode(b'{"model": "m", "id": "1"}', InputTopic.label), Invalid)
    label = decode(b'{"model": "m", "id": "1", "label": true}', InputTopic.label)
    assert isinstance(label, Event) and label.label is True


def test_field_mapping_reads_other_names() -> None:
    decoder = Decoder(
        FieldMapping(model="model_name"),
        10_000,
        200,
        fields_for=lambda model: FieldMapping(model="model_name", features="inputs", score="proba"),
        custom_models=["m"],
    )
    event = decoder.decode(
        b'{"model_name": "m", "inputs": {"a": 1}, "proba": 0.3}', InputTopic.prediction, 0, 0, 0
    )
    assert isinstance(event, Event) and event.features == {"a": 1} and event.score == 0.3


VALID = [
    b'{"model": "m"}',
    b'{"model": "m", "version": 3, "id": 17, "ts": 1764064800123, "prediction": 0, "score": 0.25, "latency_ms": 3}',
    b'{"model": "m", "ts": "2025-11-25T10:00:00+01:00", "prediction": "cat", "score": {"cat": 0.7, "dog": 0.3}}',
    b'{"model": "m", "ts": 1764064800123.9, "prediction": 2.5, "features": {"a": 1, "b": 2.5, "c": "x", "d": true, "e": null}}',
    b'{"model": "m", "features": {"big": 123456789012345678901234567890}, "extra": {"ignored": [1, 2]}}',
    b'{"model": "m", "prediction": true, "score": 1, "latency_ms": 0.0, "id": "r-1"}',
]


@pytest.mark.parametrize("raw", VALID)
@pytest.mark.parametrize("source", [InputTopic.prediction, InputTopic.feature, InputTopic.label])
def test_the_fast_and_the_slow_path_decode_alike(raw: bytes, source: InputTopic) -> None:
    labelled = raw[:-1] + b', "id": "L", "label": 1}' if source is InputTopic.label else raw
    fast = DECODER.decode(labelled, source, 0, 42, 1_700_000_000_000)
    slow = DECODER._decode_slowly(labelled, source, 0, 42, 1_700_000_000_000)
    assert fast == slow


def test_timestamps() -> None:
    assert parse_timestamp(1764064800123) == 1764064800123
    assert parse_timestamp("2025-11-25T10:00:00+01:00") == 1764061200000
    assert parse_timestamp(-5) is None
    assert parse_timestamp(True) is None


T_MS = 1_700_000_000_000


def test_an_expected_model_s_features_decode_as_its_struct_and_read_back_in_message_order() -> None:
    decoder = Decoder(FieldMapping(), max_message_bytes=2000, max_model_name_length=200)
    struct = decoder.expect("m", ["b", "a", "ignored"], ["nulls"])
    assert decoder.expect("m", ["b", "a", "ignored"], ["nulls"]) is struct  # unchanged names
    raw = orjson.dumps(
        {"model": "m", "features": {"nulls": None, "a": 1.5, "b": "x"}, "score": 0.2, "id": 7}
    )
    event = decoder.decode(raw, InputTopic.prediction, 0, 1, T_MS, b"m")
    plain = decoder.decode(raw, InputTopic.prediction, 0, 1, T_MS)  # no key: the dict path
    assert isinstance(event, Event) and isinstance(plain, Event)
    assert isinstance(event.features, struct) and event.raw == raw
    assert struct.reader(["a", "b", "ignored"])(event.features) == (1.5, "x", None)
    in_order = features_in_order(event)
    assert in_order == plain.features and list(in_order or {}) == ["nulls", "a", "b"]
    assert msgspec.structs.replace(event, features=None, raw=None) == msgspec.structs.replace(
        plain, features=None
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (b"m", {"model": "m", "features": {"a": 1.0, "new": 2.0}}),  # a name the struct lacks
        (b"m", {"model": "m", "features": {"a": 1.0, "nulls": 3.0}}),  # no longer only null
        (b"m", {"model": "other", "features": {"a": 1.0}}),  # keyed as m, but another model
        (b"other", {"model": "other", "features": {"a": 1.0}}),  # a model not expected
    ],
)
def test_messages_outside_the_expected_struct_decode_as_before(key: bytes, value: dict) -> None:  # type: ignore[type-arg]
    decoder = Decoder(FieldMapping(), max_message_bytes=2000, max_model_name_length=200)
    decoder.expect("m", ["a"], ["nulls"])
    raw = orjson.dumps(value)
    event = decoder.decode(raw, InputTopic.prediction, 0, 1, T_MS, key)
    assert isinstance(event, Event) and event.features == value["features"] and event.raw is None


def test_invalid_features_of_an_expected_model_are_still_named() -> None:
    decoder = Decoder(FieldMapping(), max_message_bytes=2000, max_model_name_length=200)
    decoder.expect("m", ["a"])
    raw = orjson.dumps({"model": "m", "features": {"a": {"nested": 1}}})
    assert decoder.decode(raw, InputTopic.prediction, 0, 1, T_MS, b"m") == Invalid(
        "nested_feature", "feature 'a' is an dict"
    )
    decoder.forget("m")
    event = decoder.decode(
        orjson.dumps({"model": "m", "features": {"a": 1}}), InputTopic.prediction, 0, 1, T_MS, b"m"
    )
    assert isinstance(event, Event) and event.features == {"a": 1}


def test_any_text_can_name_an_expected_feature() -> None:
    names = ["a.b", "class", "features_key", "_x", "1st", "ü", "__init__", "f0"]
    decoder = Decoder(FieldMapping(), max_message_bytes=2000, max_model_name_length=200)
    struct = decoder.expect("m", names)
    features = {name: float(i) for i, name in enumerate(names)}
    raw = orjson.dumps({"model": "m", "features": features})
    event = decoder.decode(raw, InputTopic.prediction, 0, 1, T_MS, b"m")
    assert isinstance(event, Event) and isinstance(event.features, struct)
    assert struct.reader(names)(event.features) == tuple(features.values())
    assert features_in_order(event) == features


@pytest.mark.parametrize("name", ['say "hi"', "back\\slash", "tab\there"])
def test_a_model_with_a_name_msgspec_cannot_match_keeps_dicts(name: str) -> None:
    decoder = Decoder(FieldMapping(), max_message_bytes=2000, max_model_name_length=200)
    assert decoder.expect("m", ["a"]) is not None
    assert decoder.expect("m", ["a", name]) is None  # and the struct of ["a"] is no longer used
    raw = orjson.dumps({"model": "m", "features": {"a": 1.0}})
    event = decoder.decode(raw, InputTopic.prediction, 0, 1, T_MS, b"m")
    assert isinstance(event, Event) and event.features == {"a": 1.0} and event.raw is None


def _decoded_alone_and_together(raws: list[bytes | None], source: InputTopic) -> None:
    decoder = Decoder(FieldMapping(), max_message_bytes=200, max_model_name_length=200)
    decoder.expect("m", ["a", "b"], ["nulls"])
    partitions, offsets = [3] * len(raws), list(range(10, 10 + len(raws)))
    times = list(range(T_MS, T_MS + len(raws)))
    alone = list(
        map(
            decoder.decode,
            raws,
            [source] * len(raws),
            partitions,
            offsets,
            times,
            [b"m"] * len(raws),
        )
    )
    together = decoder.decode_all(raws, source, partitions, offsets, times, b"m")
    assert together == alone
    assert [type(event.features) for event in together if type(event) is Event] == [
        type(event.features) for event in alone if type(event) is Event
    ]


USUAL = [
    b'{"model": "m", "ts": 1764064800123, "features": {"a": 1.5, "b": "x"}, "prediction": 1, "score": 0.75, "latency_ms": 3.5}',
    b'{"model": "m", "ts": 1764064800124, "version": "v2", "id": "r-2", "features": {"a": 2, "nulls": null}, "score": 0.25}',
    b'{"model": "m", "ts": 1764064800125, "prediction": "cat", "id": "r-3", "label": "dog"}',
]


@pytest.mark.parametrize("source", [InputTopic.prediction, InputTopic.feature, InputTopic.label])
@pytest.mark.parametrize(
    "odd",
    [
        [],  # every message as usual: one msgspec call, no step per message
        [b'{"model": "m", "ts": "2025-11-25T10:00:00Z", "features": {"a": 1}}'],  # ts as text
        [
            b'{"model": "m", "version": 3, "id": 17, "score": {"x": 0.5, "y": 0.25}}'
        ],  # numbers, classes
        [b'{"model": "other", "features": {"a": 1}}'],  # keyed as m, another model
        [b'{"model": "m", "features": {"a": 1, "new": 2}}'],  # a name outside the struct
        [b'{"model": "m", "score": 1.5}', b'{"model": "m", "features": {"a": [1]}}'],  # invalid
        [None, b"", b"{" + b" " * 200 + b"}"],  # empty, oversize
        [b" ", b'  {"model": "m"}', b'{"model": "m"}\n'],  # whitespace around or alone
        # Not one value each, though as many values as messages if simply joined: a value
        # running into the next message, and two values in one.
        [b'{"model": "m", "x": [', b'{"model": "m"}]}', b'{"model": "m"} {"model": "m"}'],
        [b'{"model": "m", "x": "}', b'{"y": "}', b'{"model": "m"}{"model": "m"}'],
        [b'{"model": "m", "x": {"k": {}', b'{"model": "m"}}', b'{"model": "m"}\n{"model": "m"}'],
    ],
)
def test_messages_decoded_together_decode_as_alone(
    odd: list[bytes | None], source: InputTopic
) -> None:
    _decoded_alone_and_together(USUAL + odd + USUAL, source)


@pytest.mark.parametrize(
    "names",
    [
        ["a", "b", "c", "d"],  # every field, in order: read whole
        ["b", "c", "d"],  # a run of at least half of them
        ["a", "c", "d"],  # not a run
        ["d", "c", "b"],  # not in the struct's order
        ["a", "b"],  # a run, but under half of the fields: name by name
        ["c"],  # one name: the bare value
    ],
)
def test_a_struct_s_rows_are_its_values_of_the_names(names: list[str]) -> None:
    decoder = Decoder(FieldMapping(), max_message_bytes=2000, max_model_name_length=200)
    struct = decoder.expect("m", ["a", "b", "c", "d", "e"], ["nulls"])
    assert struct is not None
    raws = [
        orjson.dumps({"model": "m", "features": {"a": i, "b": "x", "d": 0.5 * i, "c": None}})
        for i in range(3)
    ]
    structs = [
        decoder.decode(raw, InputTopic.prediction, 0, 1, T_MS, b"m").features for raw in raws
    ]  # type: ignore[union-attr]
    assert struct.rows(structs, names) == list(map(struct.reader(names), structs))
    assert struct.rows(structs, names) == [
        tuple(f.get(n) for n in names) if len(names) > 1 else f.get(names[0])
        for f in (orjson.loads(raw)["features"] for raw in raws)
    ]
