"""Decode and validate raw Kafka messages into events (pure; no I/O).

A message is either an `Event` or an `Invalid` with a reason from `REASONS`. Invalid input is
never an exception: the caller dead-letters it verbatim with the reason.

Two paths: msgspec decodes a message straight into a typed struct, checking types and ranges in
C (1.7 µs for a 23-feature event, as fast as orjson.loads, which checks nothing; 3.2 µs with the
`Event`, against 4.8 µs for orjson plus Python checks: `python -m bench decode`); it only
accepts what it fully validates. Anything it rejects, or a model with its own field names, goes
through the orjson path, which decides and names the reason. Valid events come out the same.

A model's features usually repeat the same names in every message, and a dict per message is a
third of msgspec's time. Once the pipeline tells the decoder which names a model's monitors
know (`Decoder.expect`), that model's messages (found by their key, the model name) are decoded
with their features as a struct of exactly those names; a name outside it, or an unexpected
value, sends the message down the usual path, so the struct only ever holds names the model
needs no discovery for (`FeatureStruct`). Such a model's messages of one topic are parsed
together, in one msgspec call, and their events made without a Python step per message
(`Decoder.decode_all`), each the same as alone.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from enum import IntEnum
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Annotated, Any, ClassVar, NamedTuple, final

import msgspec
import orjson

from detector.settings import FieldMapping

# Why a message was rejected (the `reason` label of streamdrift_events_invalid_total).
REASONS = (
    "empty",  # no value
    "oversize",  # larger than limits.max_message_bytes
    "not_json",  # not UTF-8 JSON
    "non_finite",  # NaN, Infinity or a number too large for a double
    "too_deep",  # nesting beyond the JSON parser's limit
    "not_object",  # valid JSON, but not an object
    "missing_model",
    "bad_model",  # not a string of 1..max characters
    "bad_field",  # a known field has the wrong type or range (detail names it)
    "nested_feature",  # a feature value is an object or array
    "missing_field",  # a field this topic requires is absent (detail names it)
    "unknown_model",  # auto-discovery is off and the model is not configured
    "model_cap",  # limits.max_models reached by models all past their warm-up
    "processing_error",  # the model's monitors raised; they restart from scratch
)


class InputTopic(IntEnum):
    """Which input topic an event came from (also the topic code in evidence)."""

    prediction = 0
    feature = 1
    label = 2


@final  # lets `type(x) is Invalid` narrow both ways for the type checker
class Invalid(NamedTuple):
    reason: str
    detail: str = ""


class Event(msgspec.Struct):
    """A valid event. `score` is the binary score, or the top class probability; `confidence`
    is the probability of the predicted class (max(score, 1 - score) for a binary score).
    (A msgspec struct rather than a dataclass: built once per message, its C constructor counts.)"""

    source: InputTopic
    model: str
    partition: int
    offset: int
    ts_ms: int
    version: str | None = None
    id: str | None = None
    # A dict of the message's features, or a FeatureStruct of them (see Decoder.expect).
    features: Any = None
    prediction: Any = None
    score: float | None = None
    confidence: float | None = None
    latency_ms: float | None = None
    label: Any = None
    record_ms: int = (
        0  # the Kafka message's own timestamp: the clock of model eviction (detector.core.pipeline)
    )
    raw: bytes | None = None  # the message value, kept only when `features` is a FeatureStruct


class FeatureStruct(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The features of one message of a model whose feature names are known (subclassed per model
    by `Decoder.expect`): an absent name reads as None, as a null does; a name the struct does
    not have fails the decoding, so every name of a message that decodes into it is known.
    A feature is held under an attribute of its own (`attributes`: name -> attribute), as any
    text can name a feature; `features_key` is the name of the features object in the message."""

    features_key: ClassVar[str] = "features"
    attributes: ClassVar[dict[str, str]] = {}

    @classmethod
    def reader(cls, names: Sequence[str]) -> Callable[[Any], Any]:
        """A struct's values of `names`, as `operator.itemgetter(*names)` gives a dict's."""
        return attrgetter(*(cls.attributes[name] for name in names))

    @classmethod
    def rows(cls, structs: Sequence[Any], names: Sequence[str]) -> list[Any]:
        """`reader(names)` of each struct; where `names` are a run of the struct's fields in
        their order, at least half of them, the struct is read whole and the run sliced off
        (0.11 µs a struct against 0.26 name by name, for 20 of 23 fields; 3 of 23: 0.10
        against 0.06)."""
        attributes = tuple(cls.attributes[name] for name in names)
        fields = cls.__struct_fields__
        start = fields.index(attributes[0])
        whole = len(attributes) > 1 and 2 * len(attributes) >= len(fields)
        if whole and fields[start : start + len(attributes)] == attributes:
            run = itemgetter(slice(start, start + len(attributes)))
            return list(map(run, map(msgspec.structs.astuple, structs)))
        return list(map(cls.reader(names), structs))


def features_in_order(event: Event) -> dict[str, Any] | None:
    """The event's features as a dict in the message's order (a FeatureStruct loses that order
    and whether a name was absent or null, which discovering new names needs)."""
    features = event.features
    if isinstance(features, FeatureStruct):
        assert event.raw is not None  # kept with every FeatureStruct
        mapping: dict[str, Any] = orjson.loads(event.raw)[features.features_key]
        return mapping
    return features


# A field of every event of a batch, read in C: `list(map(TS_OF, events))` (the monitors' columns).
SOURCE_OF, TS_OF, OFFSET_OF = attrgetter("source"), attrgetter("ts_ms"), attrgetter("offset")
RECORD_MS_OF = attrgetter("record_ms")
ID_OF, CONFIDENCE_OF = attrgetter("id"), attrgetter("confidence")
# The same of a wire struct (`Decoder.decode_all`), and a message's first and last byte.
_MODEL_OF, _TS_OF, _VERSION_OF, _ID_OF = (
    attrgetter(name) for name in ("model", "ts", "version", "id")
)
_FEATURES_OF, _LABEL_OF, _SCORE_OF = (
    attrgetter("features"),
    attrgetter("label"),
    attrgetter("score"),
)
_PREDICTION_OF, _LATENCY_OF = attrgetter("prediction"), attrgetter("latency_ms")
_FIRST, _LAST = itemgetter(0), itemgetter(-1)
_NONE = type(None)
_TEXT_OR_NONE, _FLOAT_OR_NONE = frozenset((str, _NONE)), frozenset((float, _NONE))

_NUMBER = (int, float)
MAX_TIMESTAMP_MS = 10**16  # epoch milliseconds beyond this are not timestamps
_SCALAR = (int, float, str, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


def parse_json(raw: bytes | None, max_bytes: int) -> Any | Invalid:
    """orjson.loads with every failure classified."""
    if not raw:
        return Invalid("empty")
    if len(raw) > max_bytes:
        return Invalid("oversize", f"{len(raw)} bytes > {max_bytes}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
        if "infinity" in message or raw[exc.pos :].startswith((b"NaN", b"Infinity")):
            return Invalid("non_finite", message)
        if "depth limit" in message or "recursion" in message:
            return Invalid("too_deep", message)
        return Invalid("not_json", message)


def parse_timestamp(value: Any) -> int | None:
    """Epoch milliseconds from epoch ms (number) or RFC 3339 text; None if neither."""
    if _is_number(value):
        return int(value) if 0 <= value < MAX_TIMESTAMP_MS else None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        return int(moment.timestamp() * 1000)
    return None


# Integers beyond 64 bits are left to the orjson path (which reads them as doubles, like JSON).
_Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_Scalar = str | _Int | float | bool
_Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]


def event_struct(
    fields: FieldMapping, max_model_name_length: int, features: Any = dict[str, _Scalar | None]
) -> type[msgspec.Struct]:
    """The msgspec type of an event under a field mapping (unknown fields are ignored), its
    features decoded as `features` (a dict, or a FeatureStruct)."""
    return msgspec.defstruct(
        "WireEvent",
        [
            ("model", Annotated[str, msgspec.Meta(min_length=1, max_length=max_model_name_length)]),
            ("version", _Scalar | None, None),
            ("id", str | _Int | None, None),
            ("ts", _Int | float | str | None, None),
            ("features", features | None, None),
            ("prediction", _Scalar | None, None),
            ("score", _Probability | dict[str, _Probability] | None, None),
            ("latency_ms", Annotated[float, msgspec.Meta(ge=0)] | None, None),
            ("label", _Scalar | None, None),
        ],
        rename={name: getattr(fields, name) for name in FieldMapping.model_fields},
    )


# What msgspec refuses in a renamed field (a FeatureStruct's feature names).
_UNMATCHABLE = re.compile(r'["\\\x00-\x1f]')


class _Expected(NamedTuple):
    """A model whose features are decoded as a struct (`Decoder.expect`)."""

    model: str
    shape: tuple[tuple[str, ...], tuple[str, ...]]  # names, and names that are only ever null
    struct: type[FeatureStruct]
    decoder: msgspec.json.Decoder[Any]


class Decoder:
    """Turns message values into events, with the configured field names.

    `fields_for(model)` gives a model's own field names (the model field itself is global);
    `custom_models` names the models that have their own (they take the orjson path)."""

    def __init__(
        self,
        fields: FieldMapping,
        max_message_bytes: int,
        max_model_name_length: int,
        fields_for: Callable[[str], FieldMapping] | None = None,
        custom_models: Collection[str] = (),
    ) -> None:
        self.fields = fields
        self.max_message_bytes = max_message_bytes
        self.max_model_name_length = max_model_name_length
        self.fields_for = fields_for or (lambda model: fields)
        self.custom_models = frozenset(custom_models)
        self._fast = msgspec.json.Decoder(event_struct(fields, max_model_name_length))
        # Message key (the model's name) -> the model, its decoder and its FeatureStruct type.
        self._expected: dict[bytes, _Expected] = {}
        # Feature names -> their FeatureStruct type and decoder, shared by the models expecting
        # them (with how many): models with the same names (many on one topic, as a rule) share
        # one decoder, which keeps msgspec's per-type tables hot when their messages interleave
        # (200 models of 4 features: 3.4-3.9 µs a message with a decoder each, 2.2 with one).
        self._shapes: dict[tuple[tuple[str, ...], tuple[str, ...]], _Expected] = {}
        self._users: Counter[tuple[tuple[str, ...], tuple[str, ...]]] = Counter()

    def expect(
        self, model: str, names: Iterable[str], null_names: Iterable[str] = ()
    ) -> type[FeatureStruct] | None:
        """Decode `model`'s messages keyed by its name with their features as a FeatureStruct of
        `names` (any scalar or null) and `null_names` (null only), and return that type (the
        same type while the names stay the same; None for a model with its own field names,
        which takes the orjson path, and for names msgspec cannot match: with a quote, a
        backslash or a control character)."""
        key, shape = model.encode(), (tuple(names), tuple(null_names))
        known = self._expected.get(key)
        if known is not None and known.shape == shape:
            return known.struct
        self.forget(model)
        if model in self.custom_models or any(map(_UNMATCHABLE.search, (*shape[0], *shape[1]))):
            return None
        shared = self._shapes.get(shape)
        if shared is None:
            shared = self._shapes[shape] = self._compile(shape)
        self._users[shape] += 1
        self._expected[key] = shared._replace(model=model)
        return shared.struct

    def _compile(self, shape: tuple[tuple[str, ...], tuple[str, ...]]) -> _Expected:
        """The FeatureStruct type of these feature names and the decoder of events with it (the
        model is filled in per model)."""
        attributes = {name: f"f{i}" for i, name in enumerate(dict.fromkeys((*shape[0], *shape[1])))}
        null_only = set(shape[1]) - set(shape[0])
        struct: type[FeatureStruct] = msgspec.defstruct(  # type: ignore[assignment]  # a subclass, by `bases`
            "Features",
            [
                (attribute, None if name in null_only else _Scalar | None, None)
                for name, attribute in attributes.items()
            ],
            bases=(FeatureStruct,),
            namespace={"features_key": self.fields.features, "attributes": attributes},
            rename={attribute: name for name, attribute in attributes.items()},
        )
        wire = event_struct(self.fields, self.max_model_name_length, struct)
        return _Expected("", shape, struct, msgspec.json.Decoder(wire))

    def forget(self, model: str) -> None:
        """Stop expecting `model`'s features (its monitors are gone)."""
        known = self._expected.pop(model.encode(), None)
        if known is not None:
            self._users[known.shape] -= 1
            if not self._users[known.shape]:
                del self._users[known.shape], self._shapes[known.shape]

    def decode(
        self,
        raw: bytes | None,
        source: InputTopic,
        partition: int,
        offset: int,
        kafka_ts_ms: int,
        key: bytes | None = None,
    ) -> Event | Invalid:
        """Validate one message value (`key`: the message key, which picks the decoder of a
        model whose features are expected)."""
        if raw and len(raw) <= self.max_message_bytes:
            expected = self._expected.get(key) if key is not None else None
            if expected is not None:
                try:
                    wire = expected.decoder.decode(raw)
                except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                    pass  # an unexpected name or value, or invalid: the usual path decides
                else:
                    return self._expected_event(
                        wire, expected, raw, source, partition, offset, kafka_ts_ms
                    )
        return self._decode_unexpected(raw, source, partition, offset, kafka_ts_ms)

    def decode_all(
        self,
        raws: list[bytes | None],
        source: InputTopic,
        partitions: list[int],
        offsets: list[int],
        kafka_ts_ms: list[int],
        key: bytes | None,
    ) -> list[Event | Invalid]:
        """`decode` of messages of one topic with one key, each the same as alone: a model whose
        features are expected has its messages parsed in one msgspec call, and their events
        made without a Python step per message when each is as usual (every field of the
        type it mostly has); any other, and any batch that does not parse, message by message."""
        expected = self._expected.get(key) if key is not None else None
        if expected is not None and len(raws) > 1:
            wires = self._parse_together(expected.decoder, raws)
            if wires is not None:
                events = self._events_together(
                    wires, expected.model, raws, source, partitions, offsets, kafka_ts_ms
                )
                if events is not None:
                    return events  # type: ignore[return-value]  # every one an Event
                return list(
                    map(
                        self._expected_event,
                        wires,
                        repeat(expected),
                        raws,
                        repeat(source),
                        partitions,
                        offsets,
                        kafka_ts_ms,
                    )
                )
        return list(
            map(self.decode, raws, repeat(source), partitions, offsets, kafka_ts_ms, repeat(key))
        )

    def _parse_together(
        self, decoder: msgspec.json.Decoder[Any], raws: list[bytes | None]
    ) -> list[Any] | None:
        """The structs `decoder` gives each of `raws` alone, parsed in one call; None where it
        cannot tell them apart so (any message failing, or not starting with `{` and ending
        with `}`).

        Joined by newlines, msgspec reads the messages as one stream of JSON values. As each
        message starts with `{` and ends with `}`, a value cannot run on from one message into
        the next (after a `}` inside an array or object comes `,` or a closing bracket, never
        `{`; a raw newline is not allowed inside a string), so each message holds at least one
        whole value: as many values as messages means each holds exactly its own."""
        try:
            if max(map(len, raws)) > self.max_message_bytes:  # type: ignore[arg-type]
                return None
            firsts, lasts = bytes(map(_FIRST, raws)), bytes(map(_LAST, raws))  # type: ignore[arg-type]
        except (TypeError, IndexError):  # None, or an empty message
            return None
        if firsts.count(b"{") != len(raws) or lasts.count(b"}") != len(raws):
            return None
        try:
            wires = decoder.decode_lines(b"\n".join(raws))  # type: ignore[arg-type]
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            return None
        return wires if len(wires) == len(raws) else None

    @staticmethod
    def _events_together(
        wires: list[Any],
        model: str,
        raws: list[bytes | None],
        source: InputTopic,
        partitions: list[int],
        offsets: list[int],
        kafka_ts_ms: list[int],
    ) -> list[Event] | None:
        """The events of wire structs of `model`'s expected decoder, as `_expected_event` makes
        them one by one, when every field is of its usual type: ts epoch ms, version and id
        text, a score a number, features present on the feature topic, id and label on the
        label topic. None otherwise."""
        if set(map(_MODEL_OF, wires)) != {model}:
            return None
        times = list(map(_TS_OF, wires))
        if set(map(type, times)) != {int} or min(times) < 0 or max(times) >= MAX_TIMESTAMP_MS:
            return None
        versions, ids = list(map(_VERSION_OF, wires)), list(map(_ID_OF, wires))
        if (
            not set(map(type, versions)) <= _TEXT_OR_NONE
            or not set(map(type, ids)) <= _TEXT_OR_NONE
        ):
            return None
        features = list(map(_FEATURES_OF, wires))
        feature_types = set(map(type, features))
        if _NONE not in feature_types:
            kept: Iterable[bytes | None] = raws  # kept with every FeatureStruct
        elif source is InputTopic.feature:
            return None
        elif feature_types == {_NONE}:
            kept = repeat(None)
        else:
            kept = [raw if f is not None else None for raw, f in zip(raws, features)]
        nothing = repeat(None)
        if source is InputTopic.label:
            labels = list(map(_LABEL_OF, wires))
            if _NONE in set(map(type, ids)) or _NONE in set(map(type, labels)):
                return None
            outputs: tuple[Iterable[Any], ...] = (nothing, nothing, nothing, nothing, labels)
        else:
            scores = list(map(_SCORE_OF, wires))
            if not set(map(type, scores)) <= _FLOAT_OR_NONE:
                return None
            confidences = [s if s is None or s >= 0.5 else 1.0 - s for s in scores]
            outputs = (
                map(_PREDICTION_OF, wires),
                scores,
                confidences,
                map(_LATENCY_OF, wires),
                nothing,
            )
        return list(
            map(
                Event,
                repeat(source),
                repeat(model),
                partitions,
                offsets,
                times,
                versions,
                ids,
                features,
                *outputs,
                kafka_ts_ms,
                kept,
            )
        )

    def _expected_event(
        self,
        wire: Any,
        expected: _Expected,
        raw: bytes,
        source: InputTopic,
        partition: int,
        offset: int,
        kafka_ts_ms: int,
    ) -> Event | Invalid:
        """The event of a message decoded by its model's expected decoder into `wire` (as
        `decode` makes it, without a call per message where the decoder applies)."""
        if wire.model == expected.model:
            event = self._from_wire(wire, source, partition, offset, kafka_ts_ms)
            if event is not None:
                if event.features is not None:
                    event.raw = raw
                return event
        return self._decode_unexpected(raw, source, partition, offset, kafka_ts_ms)

    def _decode_unexpected(
        self, raw: bytes | None, source: InputTopic, partition: int, offset: int, kafka_ts_ms: int
    ) -> Event | Invalid:
        """`decode` without an expected decoder, or where it did not apply."""
        if raw and len(raw) <= self.max_message_bytes:
            try:
                wire = self._fast.decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                pass  # the orjson path says why
            else:
                event = self._from_wire(wire, source, partition, offset, kafka_ts_ms)
                if event is not None:
                    return event
        return self._decode_slowly(raw, source, partition, offset, kafka_ts_ms)

    def _from_wire(
        self, wire: Any, source: InputTopic, partition: int, offset: int, kafka_ts_ms: int
    ) -> Event | None:
        """The event of a struct that passed msgspec's checks; None where the orjson path must decide.
        (Runs once per message: the common case takes the fewest steps.)"""
        if self.custom_models and wire.model in self.custom_models:
            return None
        ts = wire.ts
        if ts is None:
            ts = kafka_ts_ms
        elif not (ts.__class__ is int and 0 <= ts < MAX_TIMESTAMP_MS):
            ts = parse_timestamp(ts)
            if ts is None:
                return None
        version = wire.version
        if version is not None and version.__class__ is not str:
            version = str(version)
        id_ = wire.id
        if id_ is not None and id_.__class__ is not str:
            id_ = str(id_)
        if source is InputTopic.label:
            if id_ is None or wire.label is None:
                return None
            return Event(
                source,
                wire.model,
                partition,
                offset,
                ts,
                version,
                id_,
                wire.features,
                label=wire.label,
                record_ms=kafka_ts_ms,
            )
        if source is InputTopic.feature and wire.features is None:
            return None
        score = confidence = wire.score
        if score is not None:
            if score.__class__ is dict:
                if not score:
                    return None
                score = confidence = float(max(score.values()))
            elif score < 0.5:
                confidence = 1.0 - score
        return Event(
            source,
            wire.model,
            partition,
            offset,
            ts,
            version,
            id_,
            wire.features,
            wire.prediction,
            score,
            confidence,
            wire.latency_ms,
            record_ms=kafka_ts_ms,
        )

    def _decode_slowly(
        self, raw: bytes | None, source: InputTopic, partition: int, offset: int, kafka_ts_ms: int
    ) -> Event | Invalid:
        obj = parse_json(raw, self.max_message_bytes)
        if isinstance(obj, Invalid):
            return obj
        if not isinstance(obj, dict):
            return Invalid("not_object", type(obj).__name__)
        model = obj.get(self.fields.model)
        if model is None:
            return Invalid("missing_model", f"no '{self.fields.model}' field")
        if not isinstance(model, str) or not 0 < len(model) <= self.max_model_name_length:
            return Invalid(
                "bad_model",
                f"'{self.fields.model}' must be a string of 1 to {self.max_model_name_length} characters",
            )
        return self.validate(
            obj, model, source, partition, offset, kafka_ts_ms, self.fields_for(model)
        )

    def validate(
        self,
        obj: dict[str, Any],
        model: str,
        source: InputTopic,
        partition: int,
        offset: int,
        kafka_ts_ms: int,
        f: FieldMapping,
    ) -> Event | Invalid:
        event = Event(source, model, partition, offset, kafka_ts_ms, record_ms=kafka_ts_ms)
        ts = obj.get(f.ts)
        if ts is not None:
            parsed = parse_timestamp(ts)
            if parsed is None:
                return Invalid(
                    "bad_field", f"'{f.ts}' must be epoch milliseconds or RFC 3339 with a zone"
                )
            event.ts_ms = parsed
        version = obj.get(f.version)
        if version is not None:
            if not isinstance(version, _SCALAR):
                return Invalid("bad_field", f"'{f.version}' must be a string or number")
            event.version = str(version)
        identifier = obj.get(f.id)
        if identifier is not None:
            if not isinstance(identifier, (str, int)) or isinstance(identifier, bool):
                return Invalid("bad_field", f"'{f.id}' must be a string or integer")
            event.id = str(identifier)

        features = obj.get(f.features)
        if features is not None:
            if not isinstance(features, dict):
                return Invalid("bad_field", f"'{f.features}' must be an object")
            types = {*map(type, features.values())}  # in C: far cheaper than a loop over the values
            if dict in types or list in types:
                name, value = next((n, v) for n, v in features.items() if type(v) in (dict, list))
                return Invalid(
                    "nested_feature", f"feature '{name[:100]}' is an {type(value).__name__}"
                )
            event.features = features
        elif source is InputTopic.feature:
            return Invalid("missing_field", f"feature events need '{f.features}'")

        if source is InputTopic.label:
            return self._label_fields(obj, event, f)
        return self._prediction_fields(obj, event, f)

    @staticmethod
    def _prediction_fields(obj: dict[str, Any], event: Event, f: FieldMapping) -> Event | Invalid:
        prediction = obj.get(f.prediction)
        if prediction is not None and not isinstance(prediction, _SCALAR):
            return Invalid("bad_field", f"'{f.prediction}' must be a number, string or boolean")
        event.prediction = prediction
        score = obj.get(f.score)
        if score is not None:
            if isinstance(score, dict):
                probabilities = list(score.values())
                if not probabilities or not all(
                    _is_number(p) and 0 <= p <= 1 for p in probabilities
                ):
                    return Invalid(
                        "bad_field", f"'{f.score}' classes must map to probabilities in [0, 1]"
                    )
                event.score = event.confidence = float(max(probabilities))
            elif _is_number(score) and 0 <= score <= 1:
                event.score = float(score)
                event.confidence = max(event.score, 1.0 - event.score)
            else:
                return Invalid(
                    "bad_field",
                    f"'{f.score}' must be a number in [0, 1] or an object of probabilities",
                )
        latency = obj.get(f.latency_ms)
        if latency is not None:
            if not _is_number(latency) or latency < 0:
                return Invalid("bad_field", f"'{f.latency_ms}' must be a non-negative number")
            event.latency_ms = float(latency)
        return event

    @staticmethod
    def _label_fields(obj: dict[str, Any], event: Event, f: FieldMapping) -> Event | Invalid:
        if event.id is None:
            return Invalid("missing_field", f"label events need '{f.id}'")
        label = obj.get(f.label)
        if label is None:
            return Invalid("missing_field", f"label events need '{f.label}'")
        if not isinstance(label, _SCALAR):
            return Invalid("bad_field", f"'{f.label}' must be a number, string or boolean")
        event.label = label
        return event
