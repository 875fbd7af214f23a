"""One monitored signal of one model (a feature, the score, the latency, a missing-value rate…):
learn a reference, map values to PIT positions, run detectors on each statistic, and turn
their edge-triggered hits into a detected → resolved lifecycle.

Lifecycle (per monitor, counted in events of this signal):

* learning: the first `warmup_events` values form the reference; nothing can alert.
* watching: a detector hit outside the cooldown emits `detected` and starts a drift.
* drifting: further hits are absorbed (one change, one alert). The drift is `resolved`
  when the mean of every statistic over the last `resolve_window_events` (all of them
  after the detection) is back within a band of its reference level; or, if that has not
  happened after `rebaseline_after_events`, the monitor re-learns its reference from the
  next values (resolve reason `rebaselined`). A cooldown of `cooldown_events` follows, so a
  drift that flaps is one alert, not many: a hit within the cooldown is deferred to its end
  and raised then if the signal is still outside its band (a real new change is not lost).

Decisions fall on positions that depend only on the order of this signal's values, never
on batch boundaries, so a replay produces the same alerts at the same offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import repeat
from typing import Any

import numpy as np

from detector.core.monitors.binary import (
    MIN_DDM_ERRORS,
    binary_state,
    load_binary_state,
    make_binary_detectors,
    update_binary,
)
from detector.core.monitors.detectors import Hit, StatisticStream, complete_blocks
from detector.core.monitors.page_hinkley import PageHinkley
from detector.core.monitors.reference import CategoricalReference, NumericReference
from detector.core.monitors.seasonal import (
    DAY_HOURS,
    HOUR_MS,
    CategoricalSeason,
    NumericSeason,
    Recentring,
    Scaler,
    SeasonLearner,
    plan,
)

BAND_SIGMAS = 3.0  # half-width of the resolve band, in standard errors of the window mean
MIN_AFTER_EVENTS = 64  # evidence 'after' a change covers at least the blocks of this many events
MAX_NEW_CATEGORIES = 16  # categories outside the reference named at a time for the evidence
TOP_CHANGES = 5  # categories listed in a categorical drift's evidence, those whose share moved most


class SignalKind(str, Enum):
    numeric = "numeric"  # location and spread of a continuous or discrete value
    categorical = "categorical"  # category mix (location) and rate of unseen categories (novelty)
    rate = "rate"  # a 0/1 indicator, e.g. "value missing"


STATISTICS: dict[SignalKind, tuple[str, ...]] = {
    SignalKind.numeric: ("location", "spread"),
    SignalKind.categorical: ("location", "novelty"),
    SignalKind.rate: ("location",),
}


@dataclass(frozen=True)
class SignalConfig:
    """Detection parameters of one signal (derived from DetectionSettings and the budget)."""

    warmup_events: int
    reference_bins: int
    max_categories: int
    block_events: int
    page_hinkley_threshold: float
    page_hinkley_delta: float
    page_hinkley_alpha: float
    adwin_delta: float
    adwin_max_buckets: int
    cooldown_events: int
    resolve_window_events: int
    rebaseline_after_events: int
    season_max_warmup_events: int
    per_detector_rate: (
        float  # false alarms per event allowed to each detector (for river's binary ones)
    )

    @property
    def window_blocks(self) -> int:
        return max(1, -(-self.resolve_window_events // self.block_events))

    @property
    def codes_kept(self) -> int:
        """Category codes kept for the evidence: as many values as the block history covers."""
        return 2 * self.window_blocks * self.block_events


@dataclass
class Columns:
    """The rows of a batch that carry a signal, and their values (floats or category text)."""

    rows: np.ndarray
    values: np.ndarray | list[str]


NUMBER_TYPES = frozenset((int, float))  # bool is neither: True is not a number here


def number_columns(values: list[Any]) -> Columns:
    """The numbers among `values` and their positions (None, text and booleans are skipped);
    without a Python loop when every value is a number, the usual case."""
    if set(map(type, values)) <= NUMBER_TYPES:
        return Columns(np.arange(len(values)), np.asarray(values, dtype=np.float64))
    rows = [i for i, v in enumerate(values) if v.__class__ in NUMBER_TYPES]
    return Columns(
        np.asarray(rows, dtype=np.int64), np.asarray([values[i] for i in rows], dtype=np.float64)
    )


@dataclass(frozen=True)
class SourceRefs:
    """Where each value of an update came from: topic code and offset per value."""

    topics: tuple[str, ...]
    partition: int
    topic_codes: np.ndarray
    offsets: np.ndarray

    def ref(self, index: int) -> dict[str, Any]:
        return {
            "topic": self.topics[int(self.topic_codes[index])],
            "offset": int(self.offsets[index]),
        }


@dataclass(frozen=True)
class Transition:
    """A lifecycle edge at `index` of the values passed to `SignalMonitor.update`."""

    kind: str  # "detected" or "resolved"
    index: int
    statistic: str
    detector: str
    reason: str
    observations: int
    evidence: dict[str, Any]


@dataclass
class Drift:
    started_at: int  # signal position of the detection
    statistic: str
    detector: str


@dataclass
class Deferred:
    """A detector hit inside the cooldown, decided when the cooldown ends."""

    statistic: str
    detector: str
    change_start: int  # signal position where the change was estimated to begin


class BlockHistory:
    """The last `capacity` complete blocks of a signal: per block, its end position, the source
    of its first value, raw sum and sum of squares, and the mean of each statistic."""

    def __init__(self, statistics: tuple[str, ...], capacity: int) -> None:
        self.columns = ("end", "topic", "offset", "raw_sum", "raw_sumsq", *statistics)
        self.capacity = capacity
        self.rows = np.empty((0, len(self.columns)))

    def append(self, rows: np.ndarray) -> None:
        """Add rows; the history may exceed its capacity until `trim`."""
        if len(rows):
            self.rows = np.concatenate((self.rows, rows))

    def trim(self) -> None:
        self.rows = self.rows[-self.capacity :]

    def column(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        return (self.rows if rows is None else rows)[:, self.columns.index(name)]

    def between(self, after: int, upto: int) -> np.ndarray:
        """Rows of blocks that end in (after, upto]."""
        ends = self.column("end")
        return self.rows[(ends > after) & (ends <= upto)]


class SignalMonitor:
    """Reference, detectors and lifecycle of one signal."""

    def __init__(
        self,
        monitor: str,
        kind: SignalKind,
        config: SignalConfig,
        binary_detectors: bool = False,
        log_blocks: bool = False,
    ) -> None:
        """`binary_detectors`: also run river's DDM and HDDM_A on the raw values (0/1 error streams).
        `log_blocks`: also append every completed block to `block_log`, for a reader that drains it
        (the backtest's trace; the history keeps only the last blocks)."""
        self.monitor = monitor
        self.kind = kind
        self.config = config
        self.with_binary = binary_detectors and kind is SignalKind.rate
        self.binary: dict[str, Any] = {}
        self.statistics = STATISTICS[kind]
        self.seen = 0  # values observed, warm-up included
        self.sample: list[Any] = []
        self.sample_ts: list[int] = []  # event times of the sample (when the caller gives them)
        self.season_learner: SeasonLearner | None = None  # learning the cycle after the warm-up
        # The reference conditional on the hour (numbers: standardised for it; categories: its mix).
        self.season: NumericSeason | CategoricalSeason | None = None
        self.recentring: Recentring | None = None  # of a standardised signal's statistics
        self.reference: NumericReference | CategoricalReference | None = None
        self.novelty_reference: NumericReference | None = None
        # Category -> code: the reference's (`other_code` for the rest), then the new categories
        # named for the evidence, slot i as other_code + 1 + i (the detectors see them as 'other').
        self.category_index: dict[str, int] = {}
        self.new_categories: list[str | None] = []  # by slot; None: free
        self.levels: dict[str, tuple[float, float]] = {}  # statistic -> (reference mean, variance)
        self.streams: dict[str, StatisticStream] = {}
        self.raw_carry = np.empty(0)  # raw values of the unfinished block
        self.block_source = (0, -1)  # (topic code, offset) of the first value of the open block
        self.history = BlockHistory(self.statistics, 2 * config.window_blocks)
        self.block_log: list[np.ndarray] | None = [] if log_blocks else None
        self.recent_codes = np.empty(0, dtype=np.int16)  # the last codes_kept category codes
        self.codes_in_play: tuple[int, np.ndarray] | None = (
            None  # (position of the first, codes) while deciding a chunk
        )
        self.drift: Drift | None = None
        self.deferred: Deferred | None = None
        self.cooldown_until = 0

    @property
    def learning(self) -> bool:
        return self.reference is None

    @property
    def drifting(self) -> bool:
        return self.drift is not None

    # -- the main entry point -----------------------------------------------------------

    def update(
        self,
        values: np.ndarray | Sequence[str],
        sources: SourceRefs,
        times: np.ndarray | None = None,
    ) -> list[Transition]:
        """Observe values (floats, or category strings) in order; return lifecycle transitions.

        `sources` describes the same values (topic code and offset of each); `times` their event
        times (epoch ms), which let a signal learn its daily and weekly cycle
        (detector.core.monitors.seasonal); without them it has none."""
        transitions: list[Transition] = []
        start = 0
        while start < len(values):
            if self.learning:
                start += self._learn(values, start, times)
                continue
            if self.season_learner is not None:
                assert times is not None  # a season is only planned from event times
                start += self._learn_season(values[start:], times[start:])
                continue
            end = self._segment_end(start, len(values))
            found, start = self._watch(values, start, end, sources, times)
            transitions += found
        return transitions

    def _segment_end(self, start: int, total: int) -> int:
        """Cut exactly at a pending re-baseline, and keep segments no longer than the re-baseline
        delay, so that a drift starting inside a segment cannot reach its re-baseline in it."""
        limit = self.config.rebaseline_after_events
        if not limit:
            return total
        end = min(total, start + limit)
        if self.drift is not None:
            end = min(end, start + self.drift.started_at + limit - self.seen)
        return end

    # -- learning -----------------------------------------------------------------------

    def _learn(
        self, values: np.ndarray | Sequence[str], start: int, times: np.ndarray | None
    ) -> int:
        take = min(len(values) - start, self.config.warmup_events - len(self.sample))
        chunk = values[start : start + take]
        self.sample.extend(chunk.tolist() if isinstance(chunk, np.ndarray) else chunk)
        if times is not None:
            self.sample_ts.extend(times[start : start + take].tolist())
        self.seen += take
        if len(self.sample) >= self.config.warmup_events:
            sample, sample_ts = self.sample, self.sample_ts
            self._fit_reference()
            if (
                self.kind is not SignalKind.rate
                and self.season is None
                and len(sample_ts) == len(sample)
            ):
                self._plan_season(sample, np.asarray(sample_ts, dtype=np.int64))
        return take

    def _plan_season(self, sample: list[Any], times: np.ndarray) -> None:
        """After the warm-up of a numeric or categorical signal with event times: learn its
        cycle next, if a day or a week of its traffic fits in season_max_warmup_events (the
        warm-up, its first values, is handed over to the learner)."""
        season_plan = plan(times, self.config.season_max_warmup_events)
        if season_plan is None:
            return
        if isinstance(self.reference, CategoricalReference):
            self.season_learner = SeasonLearner(season_plan, codes=self.reference.other_code + 1)
        else:
            self.season_learner = SeasonLearner(season_plan, Scaler.fit(np.asarray(sample)))
        if self.season_learner.take(self._season_values(sample), times) < len(sample):
            self._end_season()

    def _season_values(self, values: np.ndarray | Sequence[Any]) -> np.ndarray:
        """Values as the season learner takes them: numbers, or reference codes (new: other)."""
        if isinstance(self.reference, CategoricalReference):
            names = values.tolist() if isinstance(values, np.ndarray) else values
            return np.minimum(self._codes(names), self.reference.other_code)
        return np.asarray(values, dtype=np.float64)

    def _learn_season(self, values: np.ndarray | Sequence[str], times: np.ndarray) -> int:
        """Values of the cycle being learned (nothing alerts); ends it at the first value past it."""
        assert self.season_learner is not None
        taken = self.season_learner.take(self._season_values(values), times)
        self.seen += taken
        if taken < len(values):
            self._end_season()
        return taken

    def _end_season(self) -> None:
        """The cycle is over: if it is significant, the reference becomes the pooled one of the
        standardised values; else the warm-up's stays. The detectors start now, from scratch."""
        assert self.season_learner is not None
        learner, self.season_learner = self.season_learner, None
        if self.kind is SignalKind.categorical:
            self.season = learner.categorical_season()
            if self.season is not None:
                self.levels["location"] = learner.location_level(self.season)
        else:
            self.season = learner.numeric_season()
            if self.season is not None:
                self.recentring = Recentring(
                    len(self.statistics), learner.plan.end_ms + DAY_HOURS * HOUR_MS
                )
                pooled = learner.pooled_sample(self.season)
                self.reference = NumericReference.fit(pooled, self.config.reference_bins)
                self.levels = _levels(self._statistic_values(pooled, standardised=True))
        self.streams = {name: self._new_stream() for name in self.statistics}

    def _fit_reference(self) -> None:
        cfg = self.config
        if self.kind is SignalKind.categorical:
            reference = CategoricalReference.fit(self.sample, cfg.max_categories)
            self.reference = reference
            self.category_index = reference.index()
            self.new_categories = []
            self.novelty_reference = NumericReference.binary(reference.novelty_rate)
            in_sample = self._statistic_values(self.sample)
        else:
            sample = np.asarray(self.sample, dtype=np.float64)
            if isinstance(self.season, NumericSeason):  # a re-baseline: the season stays
                sample = self.season.standardise(sample, np.asarray(self.sample_ts))
            self.reference = NumericReference.fit(sample, cfg.reference_bins)
            in_sample = self._statistic_values(sample, standardised=True)
        self.levels = _levels(in_sample)
        self.streams = {name: self._new_stream() for name in self.statistics}
        if self.with_binary:
            self.binary = make_binary_detectors(
                cfg.per_detector_rate, len(self.sample), int(np.sum(self.sample))
            )
        self.sample = []
        self.sample_ts = []
        self.raw_carry = np.empty(0)
        self.recent_codes = np.empty(0, dtype=np.int16)
        self.history = BlockHistory(self.statistics, 2 * cfg.window_blocks)

    def _new_stream(self) -> StatisticStream:
        cfg = self.config
        return StatisticStream(
            PageHinkley(cfg.page_hinkley_threshold, cfg.page_hinkley_delta, cfg.page_hinkley_alpha),
            cfg.adwin_delta,
            cfg.block_events,
            cfg.adwin_max_buckets,
        )

    def _codes(self, values: Sequence[Any]) -> np.ndarray:
        assert isinstance(self.reference, CategoricalReference)
        other = self.reference.other_code
        return np.fromiter(
            map(self.category_index.get, values, repeat(other, len(values))),
            dtype=np.int64,
            count=len(values),
        )

    def _name_new_categories(self, values: Sequence[Any], codes: np.ndarray) -> None:
        """Give new categories (outside the reference) a free slot each, in signal order, and
        their values its code. Only values coded 'other' are looked at, and only while a slot is
        free; without new categories this is one comparison over the codes."""
        assert isinstance(self.reference, CategoricalReference)
        other = self.reference.other_code
        free = [slot for slot, name in enumerate(self.new_categories) if name is None]
        free += range(len(self.new_categories), MAX_NEW_CATEGORIES)
        rows = np.flatnonzero(codes == other) if free else codes[:0]
        if not len(rows):
            return
        names = list(map(values.__getitem__, rows.tolist()))
        for name, slot in zip(dict.fromkeys(names), free):
            self.category_index[name] = other + 1 + slot
            if slot < len(self.new_categories):
                self.new_categories[slot] = name
            else:
                self.new_categories.append(name)
        codes[rows] = np.fromiter(
            map(self.category_index.get, names, repeat(other, len(names))),
            dtype=np.int64,
            count=len(names),
        )

    def _until_forgetting(self, codes: np.ndarray) -> int:
        """How many of these values to watch now: all of them, unless forgetting absent new
        categories at a multiple of codes_kept values among them would change something; then up
        to that multiple. Without a free slot or without values coded 'other', the named slots
        stay as they are until then, so whether one is absent is read off the codes."""
        assert isinstance(self.reference, CategoricalReference)
        kept, other = self.config.codes_kept, self.reference.other_code
        multiple = kept - self.seen % kept  # index in `codes` of the next multiple
        if len(codes) <= multiple:
            return len(codes)
        named = {
            other + 1 + slot for slot, name in enumerate(self.new_categories) if name is not None
        }
        if len(named) < MAX_NEW_CATEGORIES and (codes == other).any():
            return multiple  # a new category may take a slot before it
        while named and multiple < len(codes):
            window = np.concatenate((self.recent_codes, codes[:multiple]))[-kept:]
            if named - set(np.unique(window[window > other]).tolist()):
                return multiple
            multiple += kept
        return len(codes)

    def _forget_absent_new_categories(self) -> None:
        """Free the slots of new categories absent from the kept codes (the last codes_kept
        values), so that later new categories can be named. Done at positions that are multiples
        of codes_kept, whatever the batches; a freed code is then absent from every window the
        evidence reads."""
        assert isinstance(self.reference, CategoricalReference)
        other = self.reference.other_code
        present = set(np.unique(self.recent_codes[self.recent_codes > other]).tolist())
        for slot, name in enumerate(self.new_categories):
            if name is not None and other + 1 + slot not in present:
                del self.category_index[name]
                self.new_categories[slot] = None

    def _statistic_values(
        self,
        values: np.ndarray | Sequence[Any],
        codes: np.ndarray | None = None,
        times: np.ndarray | None = None,
        standardised: bool = False,
    ) -> dict[str, np.ndarray]:
        """PIT statistics of raw values, one array per statistic. A seasonal signal's numbers
        are standardised for the hour of their event `times` first (unless `standardised`)."""
        if self.kind is SignalKind.categorical:
            assert (
                isinstance(self.reference, CategoricalReference)
                and self.novelty_reference is not None
            )
            other = self.reference.other_code
            codes = np.minimum(
                self._codes(values) if codes is None else codes, other
            )  # new categories are 'other'
            novel = (codes == other).astype(np.float64)
            if isinstance(self.season, CategoricalSeason):
                assert times is not None  # a seasonal signal is always fed its event times
                location = self.season.transform(codes, times)
            else:
                location = self.reference.transform(codes)
            return {
                "location": location,
                "novelty": self.novelty_reference.transform(novel),
            }
        assert isinstance(self.reference, NumericReference)
        x = np.asarray(values, dtype=np.float64)
        if isinstance(self.season, NumericSeason) and not standardised:
            assert times is not None  # a seasonal signal is always fed its event times
            x = self.season.standardise(x, times)
        u = self.reference.transform(x)
        if self.kind is SignalKind.rate:
            return {"location": u}
        location, spread = u, np.abs(2.0 * u - 1.0)
        if self.recentring is not None and not standardised:
            assert times is not None
            location, spread = self.recentring.apply([location, spread], times)
        return {"location": location, "spread": spread}

    # -- watching and drifting ----------------------------------------------------------

    def _watch(
        self,
        values: np.ndarray | Sequence[Any],
        start: int,
        end: int,
        sources: SourceRefs,
        times: np.ndarray | None,
    ) -> tuple[list[Transition], int]:
        """Watch values[start:end], or fewer (categories); return the transitions and where it stopped."""
        codes = None
        if self.kind is SignalKind.categorical:
            if self.seen % self.config.codes_kept == 0:
                self._forget_absent_new_categories()
            codes = self._codes(values[start:end])
            end = start + self._until_forgetting(codes)
            codes = codes[: end - start]
            self._name_new_categories(values[start:end], codes)
        chunk = values[start:end]
        stats = self._statistic_values(
            chunk, codes, times[start:end] if times is not None else None
        )
        hits: list[tuple[int, str, Hit]] = []
        block_means: dict[str, np.ndarray] = {}
        ends = np.empty(0, dtype=np.int64)
        for name, stream in self.streams.items():
            stream_hits, block_means[name], ends = stream.update(stats[name])
            hits += [(hit.index, name, hit) for hit in stream_hits]
        if self.binary:
            hits += [
                (hit.index, "location", hit)
                for hit in update_binary(self.binary, np.asarray(chunk))
            ]
        self._record_blocks(chunk, block_means, ends, sources, start)
        # Category codes of the window before this chunk, then the chunk's, while deciding it.
        self.codes_in_play = (
            (self.seen - len(self.recent_codes), np.concatenate((self.recent_codes, codes)))
            if codes is not None
            else None
        )

        transitions = self._decide(hits, ends, start, sources)
        self.seen += len(chunk)
        limit = self.config.rebaseline_after_events
        if self.drift is not None and limit and self.seen - self.drift.started_at >= limit:
            transitions.append(self._resolved(end - 1, self.seen - 1, "rebaselined", sources))
            self.reference = None  # learn a new one from the next values
            if self.kind is SignalKind.categorical:
                self.season = None  # new categories, new mix by hour: learn the cycle again
            self.streams = {}
        if self.codes_in_play is not None:
            self.recent_codes = self.codes_in_play[1][-self.config.codes_kept :].astype(np.int16)
            self.codes_in_play = None
        self.history.trim()
        return transitions, end

    def _decide(
        self, hits: list[tuple[int, str, Hit]], ends: np.ndarray, start: int, sources: SourceRefs
    ) -> list[Transition]:
        """Walk detector hits and block ends in signal order (a hit first at equal positions)
        through the lifecycle. A hit inside the cooldown is deferred: at the cooldown's end it
        becomes a detection if the signal is still out of its band, else it is dropped."""
        if not hits and self.drift is None and self.deferred is None:
            return []  # the usual case: nothing to decide
        full, inside = self._in_band(ends)
        candidates: list[tuple[int, int, str, Hit | None, bool, bool]] = [
            (i, 0, name, hit, False, False) for i, name, hit in hits
        ]
        candidates += [
            (int(i), 1, "", None, bool(f), bool(n)) for i, f, n in zip(ends, full, inside)
        ]
        candidates.sort(key=lambda item: (item[0], item[1]))
        transitions: list[Transition] = []
        for index, _, statistic, hit, window_full, in_band in candidates:
            position = self.seen + index
            if hit is not None:
                if self.drift is not None:
                    continue  # one change, one alert
                if position >= self.cooldown_until:
                    self.drift = Drift(position, statistic, hit.detector)
                    transitions.append(
                        self._detected(start + index, position, statistic, hit, sources)
                    )
                elif self.deferred is None:
                    self.deferred = Deferred(
                        statistic, hit.detector, position - max(hit.change_age, 1)
                    )
            elif self.drift is not None:
                if (
                    window_full
                    and in_band
                    and position - self.drift.started_at >= self.config.resolve_window_events
                ):
                    transitions.append(
                        self._resolved(start + index, position, "returned_to_reference", sources)
                    )
            elif self.deferred is not None and position >= self.cooldown_until and window_full:
                deferred, self.deferred = self.deferred, None
                if not in_band:
                    self.drift = Drift(position, deferred.statistic, deferred.detector)
                    late = Hit(index, deferred.detector, position - deferred.change_start)
                    transitions.append(
                        self._detected(start + index, position, deferred.statistic, late, sources)
                    )
        return transitions

    def _record_blocks(
        self,
        chunk: np.ndarray | Sequence[Any],
        block_means: dict[str, np.ndarray],
        ends: np.ndarray,
        sources: SourceRefs,
        start: int,
    ) -> None:
        """Append completed blocks to the history (raw sums only for numbers)."""
        raw = (
            np.asarray(chunk, dtype=np.float64)
            if self.kind is not SignalKind.categorical
            else np.zeros(len(chunk))
        )
        blocks, _, self.raw_carry = complete_blocks(raw, self.raw_carry, self.config.block_events)
        raw_sums, raw_sumsq = blocks.sum(axis=1), (blocks * blocks).sum(axis=1)
        if self.block_source[1] < 0 and len(chunk):
            self.block_source = (int(sources.topic_codes[start]), int(sources.offsets[start]))
        if not len(ends):
            return
        # The first value of each completed block: carried over for the first, else the one after the previous end.
        starts = np.concatenate(([-1], ends[:-1])) + 1
        topics = sources.topic_codes[start + np.maximum(starts, 0)].astype(np.float64)
        offsets = sources.offsets[start + np.maximum(starts, 0)].astype(np.float64)
        topics[0], offsets[0] = self.block_source
        after_last = start + int(ends[-1]) + 1
        self.block_source = (
            (int(sources.topic_codes[after_last]), int(sources.offsets[after_last]))
            if after_last < start + len(chunk)
            else (0, -1)
        )
        columns = [
            self.seen + ends,
            topics,
            offsets,
            raw_sums,
            raw_sumsq,
            *(block_means[name] for name in self.statistics),
        ]
        rows = np.column_stack(columns)
        self.history.append(rows)
        if self.block_log is not None:
            self.block_log.append(rows)

    def _in_band(self, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each block just completed (the last len(ends) rows of the history): does a full
        window end there, and is every statistic's mean over it within its band around the
        reference level? Each window is summed on its own, so the answer does not depend on how
        much history happened to be kept."""
        fresh = len(ends)
        window = self.config.window_blocks
        available = len(self.history.rows)
        full = np.arange(available - fresh, available) + 1 >= window
        inside = np.ones(fresh, dtype=bool)
        for name in self.statistics:
            column = self.history.column(name)[max(0, available - fresh - window + 1) :]
            if len(column) >= window:
                means = (
                    np.lib.stride_tricks.sliding_window_view(column, window).sum(axis=1)[-fresh:]
                    / window
                )
                level, variance = self.levels[name]
                half_width = BAND_SIGMAS * np.sqrt(
                    variance / self.config.resolve_window_events
                    + variance / self.config.warmup_events
                )
                inside[-len(means) :] &= np.abs(means - level) <= half_width
        return full, inside & full

    # -- alerts' evidence ---------------------------------------------------------------

    def _detected(
        self, index: int, position: int, statistic: str, hit: Hit, sources: SourceRefs
    ) -> Transition:
        change_start = position - max(hit.change_age, 1)
        # Only the blocks of the last `capacity` are sure to be kept, whatever the batches.
        kept = position - self.history.capacity * self.config.block_events
        before = self.history.between(
            max(change_start - self.config.window_blocks * self.config.block_events, kept),
            change_start,
        )
        after = self.history.between(max(change_start, kept), position)
        least = -(-MIN_AFTER_EVENTS // self.config.block_events)
        if len(after) < least:  # a very recent change point, or a detector without one
            after = self.history.between(-1, position)[-least:]
        first = after[0] if len(after) else None
        evidence = {
            "reference": self.reference_summary(),
            "before": self._summarise(before),
            "after": self._summarise(after) | self._shares_at(position),
            "window": {
                "events": int(position - change_start),
                "partition": sources.partition,
                "from": self._block_ref(first, sources)
                if first is not None
                else sources.ref(index),
                "to": sources.ref(index),
            },
            "thresholds": self._thresholds(hit.detector),
        }
        if self.kind is SignalKind.categorical:
            evidence["top_changes"] = self._top_changes(change_start, position)
        return Transition("detected", index, statistic, hit.detector, "", position + 1, evidence)

    def _resolved(self, index: int, position: int, reason: str, sources: SourceRefs) -> Transition:
        assert self.drift is not None
        drift, self.drift = self.drift, None
        self.cooldown_until = position + 1 + self.config.cooldown_events
        window = self.history.between(-1, position)[-self.config.window_blocks :]
        evidence = {
            "reference": self.reference_summary(),
            "after": self._summarise(window) | self._shares_at(position),
            "window": {
                "events": int(position - drift.started_at),
                "partition": sources.partition,
                "from": self._block_ref(window[0], sources) if len(window) else sources.ref(index),
                "to": sources.ref(index),
            },
            "drift_started_at_events": drift.started_at + 1,
        }
        return Transition(
            "resolved", index, drift.statistic, drift.detector, reason, position + 1, evidence
        )

    def _block_ref(self, row: np.ndarray, sources: SourceRefs) -> dict[str, Any]:
        return {
            "topic": sources.topics[int(self.history.column("topic", row[None])[0])],
            "offset": int(self.history.column("offset", row[None])[0]),
        }

    def _summarise(self, rows: np.ndarray) -> dict[str, Any]:
        """Raw and PIT summaries of a set of blocks."""
        if not len(rows):
            return {"events": 0}
        events = len(rows) * self.config.block_events
        summary: dict[str, Any] = {"events": events}
        if self.kind is not SignalKind.categorical:
            mean = float(self.history.column("raw_sum", rows).sum() / events)
            square = float(self.history.column("raw_sumsq", rows).sum() / events)
            key = "rate" if self.kind is SignalKind.rate else "mean"
            summary[key] = mean
            if self.kind is SignalKind.numeric:
                summary["std"] = float(np.sqrt(max(square - mean * mean, 0.0)))
        for name in self.statistics:
            summary[f"pit_{name}"] = float(self.history.column(name, rows).mean())
        return summary

    def _shares_at(self, position: int) -> dict[str, Any]:
        """Shares of the top categories over the last resolve_window_events values up to `position`."""
        if self.codes_in_play is None or not isinstance(self.reference, CategoricalReference):
            return {}
        names = self._category_names()
        counts = np.bincount(
            self._codes_between(position + 1 - self.config.resolve_window_events, position),
            minlength=len(names),
        )
        top = np.argsort(-counts, kind="stable")[:5]
        return {
            "top_categories": {names[i]: round(float(counts[i] / counts.sum()), 4) for i in top}
        }

    def _top_changes(self, change_start: int, position: int) -> list[dict[str, Any]]:
        """The categories whose share moved most between the window before the change and the
        values after it (at least MIN_AFTER_EVENTS), new ones included, with their reference
        shares (None for a new category when the reference pooled some as 'other': it may have
        been one of them). Only the last codes_kept values are known."""
        assert isinstance(self.reference, CategoricalReference)
        names = self._category_names()
        other = self.reference.other_code
        before_codes = self._codes_between(
            max(
                change_start + 1 - self.config.window_blocks * self.config.block_events,
                position + 1 - self.config.codes_kept,  # kept whatever the batches
            ),
            change_start,
        )
        after_codes = self._codes_between(
            min(change_start + 1, position + 1 - MIN_AFTER_EVENTS), position
        )
        reference = np.zeros(len(names))
        reference[: other + 1] = self.reference.upto - self.reference.below
        after = np.bincount(after_codes, minlength=len(names)) / max(len(after_codes), 1)
        before = (
            np.bincount(before_codes, minlength=len(names)) / len(before_codes)
            if len(before_codes)
            else None
        )
        moved = np.abs(after - (reference if before is None else before))
        pooled = reference[other] > 0

        def share(values: np.ndarray | None, code: int) -> float | None:
            return None if values is None else round(float(values[code]), 4)

        return [
            {
                "category": names[code],
                "reference": None if code > other and pooled else share(reference, code),
                "before": share(before, code),
                "after": share(after, code),
                "new": code > other,
            }
            for code in np.argsort(-moved, kind="stable")[:TOP_CHANGES].tolist()
            if moved[code] > 0
        ]

    def _codes_between(self, first: int, last: int) -> np.ndarray:
        """Category codes of the values at positions first..last, of those still kept."""
        assert self.codes_in_play is not None
        start, codes = self.codes_in_play
        first = max(first, start, last + 1 - self.config.codes_kept)
        return codes[first - start : last - start + 1] if last >= first else codes[:0]

    def _category_names(self) -> list[str]:
        """Names by code: the reference's categories, '(other)', then the new categories named."""
        assert isinstance(self.reference, CategoricalReference)
        return [
            *self.reference.categories,
            "(other)",
            *(name or "" for name in self.new_categories),
        ]

    def reference_summary(self) -> dict[str, Any]:
        if isinstance(self.reference, CategoricalReference):
            shares = self.reference.shares()
            top = dict(sorted(shares.items(), key=lambda item: -item[1])[:5])
            summary: dict[str, Any] = {
                "top_categories": {k: round(v, 4) for k, v in top.items()},
                "categories": len(self.reference.categories),
            }
            if self.season is not None:  # the shares expected depend on the hour
                summary["seasonal_buckets"] = self.season.buckets
            return summary
        if isinstance(self.reference, NumericReference):
            if self.kind is SignalKind.rate:
                return {"rate": self.reference.summary["mean"]}
            if isinstance(self.season, NumericSeason):  # the summary is of standardised values
                return {"seasonal_buckets": self.season.buckets}
            return dict(self.reference.summary)
        return {}

    def _thresholds(self, detector: str) -> dict[str, float]:
        cfg = self.config
        if detector == "adwin":
            return {"delta": cfg.adwin_delta, "block_events": cfg.block_events}
        return {"threshold": cfg.page_hinkley_threshold, "delta": cfg.page_hinkley_delta}

    # -- for metrics --------------------------------------------------------------------

    def window_statistics(self) -> dict[str, float]:
        """Current window means: each PIT statistic (1/2 = as reference), and the raw mean."""
        rows = self.history.rows[-self.config.window_blocks :]
        if self.learning or not len(rows):
            return {}
        summary = self._summarise(rows)
        values = {name: summary[f"pit_{name}"] for name in self.statistics}
        if self.kind is SignalKind.numeric:
            values["mean"] = summary["mean"]
        elif self.kind is SignalKind.rate:
            values["rate"] = summary["rate"]
        return values

    # -- checkpoint state -----------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Everything learned, as plain data (the config is not stored: it comes from settings)."""
        return {
            "kind": self.kind.value,
            "seen": self.seen,
            "sample": self.sample,
            "sample_ts": self.sample_ts,
            "season_learner": self.season_learner.to_state()
            if self.season_learner is not None
            else None,
            "season": self.season.to_state() if self.season is not None else None,
            "recentring": self.recentring.to_state() if self.recentring is not None else None,
            "reference": self.reference.to_state() if self.reference is not None else None,
            "novelty_reference": self.novelty_reference.to_state()
            if self.novelty_reference is not None
            else None,
            "levels": self.levels,
            "streams": {name: stream.to_state() for name, stream in self.streams.items()},
            "with_binary": self.with_binary,
            "binary": {name: binary_state(detector) for name, detector in self.binary.items()},
            "raw_carry": self.raw_carry,
            "block_source": list(self.block_source),
            "history": self.history.rows,
            "recent_codes": self.recent_codes,
            "new_categories": self.new_categories,
            "drift": [self.drift.started_at, self.drift.statistic, self.drift.detector]
            if self.drift
            else None,
            "cooldown_until": self.cooldown_until,
            "deferred": [
                self.deferred.statistic,
                self.deferred.detector,
                self.deferred.change_start,
            ]
            if self.deferred
            else None,
        }

    @classmethod
    def from_state(cls, monitor: str, config: SignalConfig, state: dict[str, Any]) -> SignalMonitor:
        signal = cls(
            monitor, SignalKind(state["kind"]), config, binary_detectors=bool(state["with_binary"])
        )
        signal.seen = int(state["seen"])
        signal.sample = list(state["sample"])
        signal.sample_ts = [int(t) for t in state["sample_ts"]]
        if state["season_learner"] is not None:
            signal.season_learner = SeasonLearner.from_state(state["season_learner"])
        if state["recentring"] is not None:
            signal.recentring = Recentring.from_state(state["recentring"])
        if state["season"] is not None:
            signal.season = (
                CategoricalSeason.from_state(state["season"])
                if signal.kind is SignalKind.categorical
                else NumericSeason.from_state(state["season"])
            )
        if state["reference"] is not None:
            if signal.kind is SignalKind.categorical:
                signal.reference = CategoricalReference.from_state(state["reference"])
                signal.category_index = signal.reference.index()
                signal.new_categories = [
                    None if name is None else str(name) for name in state["new_categories"]
                ]
                other = signal.reference.other_code
                signal.category_index |= {
                    name: other + 1 + i
                    for i, name in enumerate(signal.new_categories)
                    if name is not None
                }
            else:
                signal.reference = NumericReference.from_state(state["reference"])
        if state["novelty_reference"] is not None:
            signal.novelty_reference = NumericReference.from_state(state["novelty_reference"])
        signal.levels = {name: (float(m), float(v)) for name, (m, v) in state["levels"].items()}
        for name, stream_state in state["streams"].items():
            signal.streams[name] = signal._new_stream()
            signal.streams[name].load_state(stream_state)
        if state["binary"]:
            errors = MIN_DDM_ERRORS if "ddm" in state["binary"] else 0
            signal.binary = make_binary_detectors(
                config.per_detector_rate, config.warmup_events, errors
            )
            for name, detector_state in state["binary"].items():
                load_binary_state(signal.binary[name], detector_state)
        signal.raw_carry = np.asarray(state["raw_carry"], dtype=np.float64)
        signal.block_source = (int(state["block_source"][0]), int(state["block_source"][1]))
        rows = np.asarray(state["history"], dtype=np.float64)
        signal.history.rows = rows.reshape(-1, len(signal.history.columns))
        signal.recent_codes = np.asarray(state["recent_codes"], dtype=np.int16)
        if state["drift"] is not None:
            started_at, statistic, detector = state["drift"]
            signal.drift = Drift(int(started_at), str(statistic), str(detector))
        signal.cooldown_until = int(state["cooldown_until"])
        if state["deferred"] is not None:
            statistic, detector, change_start = state["deferred"]
            signal.deferred = Deferred(str(statistic), str(detector), int(change_start))
        return signal


def _levels(in_sample: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """Reference mean and variance of each statistic over the reference sample."""
    return {
        name: (float(col.mean()), max(float(col.var()), 1e-4)) for name, col in in_sample.items()
    }
