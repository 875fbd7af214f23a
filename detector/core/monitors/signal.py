"""One monitored signal of one model (a feature, the score, the latency, a missing-value rate…):
learn a reference, map values to PIT positions, run detectors on each statistic, record the
completed blocks, and let the lifecycle (lifecycle.py) turn the detectors' hits into detected →
resolved transitions, with their evidence (evidence.py).

Per monitor, counted in events of this signal:

* learning: the first `warmup_events` values form the reference; nothing can alert.
* learning the season: a signal given event times whose day (week) of traffic fits in
  `season_max_warmup_events` then learns its cycle over one day (week) of event time; nothing
  can alert (detector.core.monitors.seasonal). If the cycle is significant, the signal is
  judged against its usual values (a rate: its usual rate) for the hour from then on.
* watching and drifting: see lifecycle.py. A drift is resolved when the mean of every statistic
  over the last `resolve_window_events` is back within a band of its reference level
  (BAND_SIGMAS standard errors); or, if that has not happened after `rebaseline_after_events`,
  the monitor re-learns its reference from the next values (resolve reason `rebaselined`).

Decisions fall on positions that depend only on the order of this signal's values, never
on batch boundaries, so a replay produces the same alerts at the same offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detector.core.monitors.batch_detector import Hit
from detector.core.monitors.binary import MIN_DDM_ERRORS, BinaryDetector, binary_detectors
from detector.core.monitors.categories import CategoryCodes
from detector.core.monitors.columns import SourceRefs
from detector.core.monitors.config import SignalConfig
from detector.core.monitors.detectors import (
    StatisticStream,
    StreamUpdates,
    Updating,
    complete_blocks,
    run_together,
)
from detector.core.monitors.evidence import Evidence
from detector.core.monitors.history import BlockHistory
from detector.core.monitors.lifecycle import (
    BlockCheck,
    Detected,
    Lifecycle,
    Resolved,
    StatisticHit,
    Transition,
)
from detector.core.monitors.page_hinkley import PageHinkley
from detector.core.monitors.reference import CategoricalReference, NumericReference, spread_of
from detector.core.monitors.seasonal import (
    DAY_HOURS,
    HOUR_MS,
    WEEK_HOURS,
    BinarySeason,
    CategoricalSeason,
    MixStatistic,
    NumericSeason,
    Recentring,
    Scaler,
    SeasonLearner,
    plan,
)
from detector.core.monitors.signal_type import STATISTICS, SignalType

NAN = float("nan")
BAND_SIGMAS = 3.0  # half-width of the resolve band, in standard errors of the window mean
# A hit alerts only if the mean of its statistic's last blocks (those since the change's
# estimated start, or any of these many; at most all those kept) is beyond the minimum effect
# by this many standard errors (SignalMonitor._beyond_floor).
EFFECT_SIGMAS = 3.0
EFFECT_BLOCKS = (16, 32, 64, 1 << 30)  # (the last: all kept)


class SignalMonitor:
    """Reference, detectors, block history and lifecycle of one signal."""

    def __init__(
        self,
        monitor: str,
        signal_type: SignalType,
        config: SignalConfig,
        binary_detectors: bool = False,
        log_blocks: bool = False,
    ) -> None:
        """`binary_detectors`: also run river's DDM and HDDM_A on the raw values (0/1 error streams).
        `log_blocks`: also append every completed block to `block_log`, for a reader that drains it
        (the backtest's trace; the history keeps only the last blocks)."""
        self.monitor = monitor
        self.signal_type = signal_type
        self.config = config
        self.with_binary = binary_detectors and signal_type is SignalType.rate
        self.binary: dict[str, BinaryDetector] = {}
        self.statistics = STATISTICS[signal_type]
        self.seen = 0  # values observed, warm-up included
        self.sample: list[Any] = []
        self.sample_ts: list[int] = []  # event times of the sample (when the caller gives them)
        self.season_learner: SeasonLearner | None = None  # learning the cycle after the warm-up
        # The reference conditional on the hour (numbers: standardised for it; categories: its mix).
        self.season: NumericSeason | CategoricalSeason | None = None
        self.recentring: Recentring | None = None  # of a standardised signal's statistics
        self.mix: MixStatistic | None = None  # a seasonal category mix's location
        self.reference: NumericReference | CategoricalReference | None = None
        self.novelty_reference: NumericReference | None = None
        self.categories: CategoryCodes | None = None  # of a categorical signal, once learned
        self.levels: dict[str, tuple[float, float]] = {}  # statistic -> (reference mean, variance)
        self.streams: dict[str, StatisticStream] = {}
        self.raw_carry = np.empty(0)  # raw values of the unfinished block
        # (topic code, offset, event time) of the first value of the open block; offset -1: none yet
        self.block_source: tuple[int, int, float] = (0, -1, NAN)
        self.history = BlockHistory(self.statistics, 2 * config.window_blocks)
        self.block_log: list[np.ndarray] | None = [] if log_blocks else None
        self.lifecycle = Lifecycle(config.cooldown_events, config.resolve_window_events)
        # A hit below the minimum effect, still watched (SignalMonitor._confirm): statistic,
        # detector, signal position of the change's estimated start and of the hit.
        self.below_floor: tuple[str, str, int, int] | None = None

    @property
    def learning(self) -> bool:
        return self.reference is None

    @property
    def drifting(self) -> bool:
        return self.lifecycle.drift is not None

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
        return run_together([self.updating(values, sources, times)])[0]

    def updating(
        self,
        values: np.ndarray | Sequence[str],
        sources: SourceRefs,
        times: np.ndarray | None = None,
    ) -> Updating[list[Transition]]:
        """`update` as steps: it yields its statistic streams' updates (`StreamUpdates`), is
        sent their results, and returns the transitions; `run_together` runs many signals'
        steps with their streams' updates together."""
        transitions: list[Transition] = []
        start = 0
        while start < len(values):
            if self.learning:
                start += self._learn(values, start, times)
                continue
            learner = self.season_learner
            if learner is not None:
                assert times is not None  # a season is only planned from event times
                blind = start + learner.blind_run(times[start:])
                if blind > start:
                    start += self._learn_season(values[start:blind], times[start:blind])
                    continue
            end = self._segment_end(start, len(values))
            if learner is not None:  # watching while the cycle is learned
                assert times is not None
                end = start + learner.watched_run(times[start:end])
                if end == start:
                    transitions += self._end_watched_phase(start, sources)
                    continue
            found, stop = yield from self._watch(values, start, end, sources, times)
            if learner is not None:
                assert times is not None
                learner.take(values[start:stop], times[start:stop], inside=True)
            transitions += found
            start = stop
        return transitions

    def _segment_end(self, start: int, total: int) -> int:
        """Cut exactly at a pending re-baseline, and keep segments no longer than the re-baseline
        delay, so that a drift starting inside a segment cannot reach its re-baseline in it."""
        limit = self.config.rebaseline_after_events
        if not limit:
            return total
        end = min(total, start + limit)
        drift = self.lifecycle.drift
        if drift is not None and not self._held:
            # (at least one value: values learned blind meanwhile, the other kind of day in a
            # fast model's first week, may have passed the re-baseline, due at the next value
            # watched)
            end = min(end, max(start + drift.started_at + limit - self.seen, start + 1))
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
                self.season is None
                and self.season_learner is None  # (a re-baseline while watching and learning)
                and len(sample_ts) == len(sample)
            ):
                self._plan_season(sample, np.asarray(sample_ts, dtype=np.int64))
        return take

    def _plan_season(self, sample: list[Any], times: np.ndarray) -> None:
        """After the warm-up of a signal with event times: learn its cycle next
        (detector.core.monitors.seasonal.plan; the warm-up, its first values, is handed over to
        the learner)."""
        if self.signal_type is SignalType.rate and not 0 < sum(sample) < len(sample):
            # A rate that did not move in its warm-up (a feature never missing, every label in
            # time) has no mix whose hour could matter yet, and its first change is news: it is
            # watched at once, as before.
            return
        season_plan = plan(times, self.config.season_max_warmup_events)
        if season_plan is None:
            return
        if self.signal_type is SignalType.rate:
            self.season_learner = SeasonLearner(season_plan)
        elif isinstance(self.reference, CategoricalReference):
            self.season_learner = SeasonLearner(season_plan, reference=self.reference)
        else:
            self.season_learner = SeasonLearner(season_plan, Scaler.fit(np.asarray(sample)))
        if self.season_learner.take(sample, times) < len(sample):
            self._end_season()

    def _learn_season(self, values: np.ndarray | Sequence[str], times: np.ndarray) -> int:
        """Values of the cycle being learned (nothing alerts); ends it at the first value past it."""
        assert self.season_learner is not None
        taken = self.season_learner.take(values, times)
        self.seen += taken
        if taken < len(values):
            self._end_season()
        return taken

    def _end_watched_phase(self, start: int, sources: SourceRefs) -> list[Transition]:
        """A watching plan's phase (its first day, or its week) ends at values[start]. A drift
        held open over the first day (`_held`) is closed there as re-baselined: from
        this value on the signal is judged against the day's hours or, where the day showed no
        cycle, against a new reference learned from the next values, as any drift open too
        long."""
        if not self._held:
            self._end_season()
            return []
        resolved = self.lifecycle.resolve(0, self.seen, "rebaselined")
        transition = self._transition(resolved, start, sources)  # (the day's history and reference)
        if not self._end_season():
            self._rebaseline()
        return [transition]

    def _end_season(self) -> bool:
        """The cycle (or a watching plan's first day) is over: if it is significant, the
        signal is judged against its hour from now on (numbers: a pooled reference of the
        standardised values; categories: the hour's shares, under the reference the cycle was
        learned with) and its detectors and block history start again; else nothing changes
        (the warm-up's reference, or the first day's season, stays). After a first day the
        learner goes on, watched, to the week's end. True: the season was adopted."""
        learner = self.season_learner
        assert learner is not None
        ended_ms = learner.phase_end_ms
        if learner.first_day:
            learner.first_day = False
        else:
            self.season_learner = None
        if self.signal_type is SignalType.rate:
            if not self._adopt_rate_season(learner):
                return False
        elif learner.reference is not None:
            season = learner.categorical_season()
            if season is None:
                return False
            if learner.plan.watching:  # the signal may have re-baselined meanwhile
                self._adopt(learner.reference, learner.other_share())
            self.season = season
            self.mix = MixStatistic(season.shares.shape[1], self.config.block_events)
            self.levels["location"] = (0.5, 1.0 / 12.0)
        else:
            numeric = learner.numeric_season()
            if numeric is None:
                return False
            self.season = numeric
            self.recentring = Recentring(
                len(self.statistics),
                ended_ms + DAY_HOURS * HOUR_MS,
                ended_ms + WEEK_HOURS * HOUR_MS,
            )
            pooled = learner.pooled_sample(numeric)
            self.reference = NumericReference.fit(pooled, self.config.reference_bins)
            location, spread = numeric.statistics_t(
                self.reference, learner.sample, learner.sample_ts
            )
            self.levels = _levels({"location": location, "spread": spread})
        self.streams = {name: self._new_stream() for name in self.statistics}
        self.raw_carry = np.empty(0)
        self.block_source = (0, -1, NAN)
        self.history = BlockHistory(self.statistics, 2 * self.config.window_blocks)
        self.below_floor = None
        return True

    def _adopt_rate_season(self, learner: SeasonLearner) -> bool:
        """A rate whose share of 1s depends on the hour is judged against its hour's rate from
        now on: its PIT under that rate for the PIT detectors, its bits adjusted for the hour
        (`BinarySeason.adjust`) for river's binary ones, which start afresh. False: no cycle."""
        season = learner.binary_season()
        if season is None:
            return False
        self.season = season
        self.levels["location"] = learner.location_level(season)
        if self.with_binary:
            errors = int(learner.counts[:, 1].sum())
            self.binary = binary_detectors(
                self.config.per_detector_rate, self.config.warmup_events, errors
            )
        return True

    def _adopt(self, reference: CategoricalReference, novel_share: float) -> None:
        """Judge a categorical signal against `reference` (whose mix was learned by hour), its
        novelty's level from the share of values outside it."""
        self.reference = reference
        self.categories = CategoryCodes(reference, self.config.codes_kept)
        self.novelty_reference = NumericReference.binary(reference.novelty_rate)
        low, high = self.novelty_reference.transform(np.array([0.0, 1.0]))
        mean = low + novel_share * (high - low)
        variance = novel_share * (1.0 - novel_share) * (high - low) ** 2
        self.levels["novelty"] = (float(mean), max(float(variance), 1e-4))

    def _fit_reference(self) -> None:
        cfg = self.config
        if self.signal_type is SignalType.categorical:
            reference = CategoricalReference.fit(self.sample, cfg.max_categories)
            self.reference = reference
            self.categories = CategoryCodes(reference, cfg.codes_kept)
            self.novelty_reference = NumericReference.binary(reference.novelty_rate)
            in_sample = self._statistic_values(self.sample)
        else:
            sample = np.asarray(self.sample, dtype=np.float64)
            if isinstance(self.season, NumericSeason):  # a re-baseline: the season stays
                sample_ts = np.asarray(self.sample_ts, dtype=np.int64)
                t = self.season.scaler.transform(sample)
                pooled = self.season.reference_sample(t, sample_ts)
                self.reference = NumericReference.fit(pooled, cfg.reference_bins)
                location, spread = self.season.statistics_t(self.reference, t, sample_ts)
                in_sample = {"location": location, "spread": spread}
            else:
                self.reference = NumericReference.fit(sample, cfg.reference_bins)
                in_sample = self._pit_statistics(self.reference.transform(sample))
        self.levels = _levels(in_sample)
        self.streams = {name: self._new_stream() for name in self.statistics}
        if self.with_binary:
            self.binary = binary_detectors(
                cfg.per_detector_rate, len(self.sample), int(np.sum(self.sample))
            )
        self.sample = []
        self.sample_ts = []
        self.raw_carry = np.empty(0)
        self.history = BlockHistory(self.statistics, 2 * cfg.window_blocks)
        self.below_floor = None

    def _new_stream(self) -> StatisticStream:
        cfg = self.config
        return StatisticStream(
            PageHinkley(cfg.page_hinkley_threshold, cfg.page_hinkley_delta, cfg.page_hinkley_alpha),
            cfg.adwin_delta,
            cfg.block_events,
            cfg.adwin_max_buckets,
        )

    def _statistic_values(
        self,
        values: np.ndarray | Sequence[Any],
        codes: np.ndarray | None = None,
        times: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """PIT statistics of raw values, one array per statistic. A seasonal signal's values are
        judged against their hour (event `times`): numbers standardised for it first, their
        statistics recentred for it, categories under its shares."""
        if self.signal_type is SignalType.categorical:
            assert (
                isinstance(self.reference, CategoricalReference)
                and self.categories is not None
                and self.novelty_reference is not None
            )
            other = self.reference.other_code
            codes = np.minimum(
                self.categories.codes(values) if codes is None else codes, other
            )  # new categories are 'other'
            novel = (codes == other).astype(np.float64)
            if self.mix is not None:
                assert isinstance(self.season, CategoricalSeason) and times is not None
                location = self.mix.transform(codes, times, self.season)
            else:
                location = self.reference.transform(codes)
            return {
                "location": location,
                "novelty": self.novelty_reference.transform(novel),
            }
        assert isinstance(self.reference, NumericReference)
        x = np.asarray(values, dtype=np.float64)
        if isinstance(self.season, BinarySeason):
            assert times is not None
            return {"location": self.season.transform(x.astype(np.int64), times)}
        if isinstance(self.season, NumericSeason):
            assert times is not None  # a seasonal signal is always fed its event times
            location, spread = self.season.statistics(self.reference, x, times)
            if self.recentring is not None:
                location, spread = self.recentring.apply([location, spread], times)
            return {"location": location, "spread": spread}
        return self._pit_statistics(self.reference.transform(x))

    def _pit_statistics(self, u: np.ndarray) -> dict[str, np.ndarray]:
        """A number's (or rate's) statistics of its PIT positions u."""
        if self.signal_type is SignalType.rate:
            return {"location": u}
        return {"location": u, "spread": spread_of(u)}

    # -- watching and drifting ----------------------------------------------------------

    def _watch(
        self,
        values: np.ndarray | Sequence[Any],
        start: int,
        end: int,
        sources: SourceRefs,
        times: np.ndarray | None,
    ) -> Updating[tuple[list[Transition], int]]:
        """Watch values[start:end], or fewer (categories); return the transitions and where it
        stopped (steps, as `updating`)."""
        categories = self.categories
        codes = None
        if categories is not None:
            if self.seen % self.config.codes_kept == 0:
                categories.forget_absent()
            codes = categories.codes(values[start:end])
            end = start + categories.until_forgetting(codes, self.seen)
            codes = codes[: end - start]
            categories.name_new(values[start:end], codes)
        chunk = values[start:end]
        stats = self._statistic_values(
            chunk, codes, times[start:end] if times is not None else None
        )
        updates = yield StreamUpdates(
            list(self.streams.values()), [stats[name] for name in self.streams]
        )
        results = dict(zip(self.streams, updates))
        hits = [StatisticHit(name, hit) for name, result in results.items() for hit in result.hits]
        block_means = {name: result.block_means for name, result in results.items()}
        ends = next(iter(results.values())).block_ends  # the same blocks for every statistic
        self._record_blocks(chunk, block_means, ends, sources, start)
        hits = self._confirm(hits, ends)
        if self.binary:  # on the 0/1 values (adjusted for their hour), for the location
            if isinstance(self.season, BinarySeason):
                assert times is not None
                raw = self.season.adjust(np.asarray(chunk, dtype=np.float64), times[start:end])
            else:
                raw = np.asarray(chunk).astype(np.int64)
            hits += [
                StatisticHit("location", hit)
                for detector in self.binary.values()
                for hit in detector.update(raw).hits
            ]
        if categories is not None and codes is not None:
            categories.begin(self.seen, codes)  # the window before this chunk, then the chunk's

        transitions = self._decide(hits, ends, start, sources)
        self.seen += len(chunk)
        if self._rebaseline_due():
            resolved = self.lifecycle.resolve(len(chunk) - 1, self.seen - 1, "rebaselined")
            transitions.append(self._transition(resolved, start, sources))
            self._rebaseline()
        if categories is not None and codes is not None:
            categories.end()
        self.history.trim()
        return transitions, end

    def _rebaseline_due(self) -> bool:
        """Is an open drift due to re-baseline, and not held instead (`_held`)?"""
        return self._lasted_to_rebaseline() and not self._first_day

    @property
    def _held(self) -> bool:
        """Is a drift held open, neither re-baselined nor returned, until the day's hours are
        known (`_end_watched_phase`)? On a fast model's first day, judged against its warm-up's
        reference, a drift that lasted until its re-baseline was due: a cyclic signal moves
        away from that reference for hours, and each new reference learned from a few minutes
        of it, or each return, alarmed again as the hours moved on (258 alarms on the
        benchmark model's first day). A shorter drift resolves as always."""
        return self._lasted_to_rebaseline() and self._first_day

    def _lasted_to_rebaseline(self) -> bool:
        """Has the open drift lasted `rebaseline_after_events` values (0: never re-baselined)?"""
        drift, limit = self.lifecycle.drift, self.config.rebaseline_after_events
        return drift is not None and limit > 0 and self.seen - drift.started_at >= limit

    @property
    def _first_day(self) -> bool:
        """A watching plan's first day, judged against the warm-up's reference."""
        return self.season_learner is not None and self.season_learner.first_day

    def _rebaseline(self) -> None:
        """Learn a new reference from the next values (the season of a number stays; a
        category's or a rate's mix by hour is learned again with its new categories)."""
        self.reference = None
        if self.signal_type is not SignalType.numeric:
            self.season = None
            self.mix = None
        self.streams = {}

    def _confirm(self, hits: list[StatisticHit], ends: np.ndarray) -> list[StatisticHit]:
        """The detector hits (on PIT statistics) of this chunk that are large enough to alert on,
        with those that become so at a block end of it.

        Page-Hinkley and ADWIN find any lasting offset given enough values, however small: at
        hundreds of events a second, the few thousandths by which an hour's reference misses its
        hour (docs/detection.md, "Daily and weekly cycles"). So a hit alerts only if its
        statistic's mean over its last blocks is at least `min_effect_sd` of its reference sd
        away from its reference level, by EFFECT_SIGMAS standard errors (scale-free: on each
        statistic's own scale). A hit that is not (yet): its detectors have started afresh, as
        after any hit, and the blocks since its change's estimated start keep being judged at
        every block end for `2 × window_blocks` blocks: if they move beyond the floor, it
        alerts then; else it is dropped. One such hit is watched at a time; the blocks are those
        of the signal's order only, so nothing depends on batching."""
        if self.config.min_effect_sd <= 0:
            return hits
        first_row = len(self.history.rows) - len(ends)
        confirmed: list[StatisticHit] = []
        judged = -1  # the watched hit was judged at this chunk's block ends up to this index
        for hit in [*sorted(hits, key=lambda hit: hit.index), None]:
            until = hit.index if hit is not None else int(ends[-1]) if len(ends) else -1
            if self.below_floor is not None and until > judged:
                found = self._watch_below_floor(ends, first_row, judged, until)
                if found is not None and found.hit.detector:
                    confirmed.append(found)
                judged = until
            if hit is None:
                break
            position = self.seen + hit.index
            upto = int(np.searchsorted(self.history.column("end"), position, side="right"))
            change_start = position - max(hit.hit.change_age, 1)
            if self._beyond_floor(hit.statistic, upto, change_start, EFFECT_BLOCKS):
                confirmed.append(hit)
            elif self.below_floor is None:
                self.below_floor = (hit.statistic, hit.hit.detector, change_start, position)
                judged = hit.index
        return sorted(confirmed, key=lambda hit: hit.index)

    def _watch_below_floor(
        self, ends: np.ndarray, first_row: int, after: int, until: int
    ) -> StatisticHit | None:
        """The watched hit decided at a block end of this chunk in (after, until]: a hit (its
        change age from its estimated start) if its blocks moved beyond the floor, one with no
        detector if it expired; None if still undecided."""
        assert self.below_floor is not None
        statistic, detector, change_start, hit_position = self.below_floor
        block = self.config.block_events
        expires = hit_position + self.history.capacity * block
        for local in np.flatnonzero((ends > after) & (ends <= until)).tolist():
            position = self.seen + int(ends[local])
            if self._beyond_floor(statistic, first_row + local + 1, change_start, ()):
                self.below_floor = None
                hit = Hit(int(ends[local]), detector, position - change_start)
                return StatisticHit(statistic, hit)
            if position >= expires:
                self.below_floor = None
                return StatisticHit(statistic, Hit(int(ends[local]), "", 0))
        return None

    def _beyond_floor(
        self, statistic: str, upto: int, change_start: int, windows: tuple[int, ...]
    ) -> bool:
        """Is the mean of `statistic` over the history's rows before `upto`, since the row
        after `change_start` or over the last of any of `windows` blocks (all capped at the
        blocks kept), beyond the floor from its reference level by EFFECT_SIGMAS standard
        errors? True before the first block (nothing to judge by)."""
        if upto == 0:
            return True
        rows = self.history.rows[max(0, upto - self.history.capacity) : upto]
        since = len(rows) - int(np.searchsorted(self.history.column("end", rows), change_start))
        blocks = np.unique(np.clip([since, *windows], 1, len(rows)))
        recent = self.history.column(statistic, rows)
        means = np.cumsum(recent[::-1])[blocks - 1] / blocks
        level, variance = self.levels[statistic]
        sd = np.sqrt(variance)
        errors = EFFECT_SIGMAS * sd / np.sqrt(blocks * self.config.block_events)
        return bool(np.any(np.abs(means - level) - self.config.min_effect_sd * sd >= errors))

    def retire(self, sources: SourceRefs) -> Transition | None:
        """Close an open drift because the signal ends (its model version is no longer live),
        at the one value `sources` describes; None if no drift is open."""
        if self.lifecycle.drift is None:
            return None
        resolved = self.lifecycle.resolve(0, max(self.seen - 1, 0), "version_retired")
        return self._transition(resolved, 0, sources)

    def _decide(
        self, hits: list[StatisticHit], ends: np.ndarray, start: int, sources: SourceRefs
    ) -> list[Transition]:
        """The lifecycle's transitions over this chunk's hits and block ends."""
        if not hits and self.lifecycle.settled:
            return []  # the usual case: nothing to decide
        full, inside = self._in_band(ends)
        checks = [BlockCheck(int(i), bool(f), bool(n)) for i, f, n in zip(ends, full, inside)]
        edges = self.lifecycle.decide(hits, checks, self.seen, held=self._held)
        return [self._transition(edge, start, sources) for edge in edges]

    def _transition(self, edge: Detected | Resolved, start: int, sources: SourceRefs) -> Transition:
        """The transition of a lifecycle edge at `edge.index` of the chunk starting at `start`."""
        index = start + edge.index
        evidence = self._evidence()
        if isinstance(edge, Detected):
            hit = edge.hit
            return Transition(
                "detected",
                index,
                edge.statistic,
                hit.detector,
                "",
                edge.position + 1,
                evidence.detected(index, edge.position, hit, sources),
                evidence.estimated_start(edge.position, hit, sources),
            )
        drift = edge.drift
        return Transition(
            "resolved",
            index,
            drift.statistic,
            drift.detector,
            edge.reason,
            edge.position + 1,
            evidence.resolved(index, edge.position, drift, sources),
        )

    def _evidence(self) -> Evidence:
        return Evidence(
            self.signal_type,
            self.statistics,
            self.config,
            self.history,
            self.reference,
            self.categories,
            self.season.buckets if self.season is not None else 0,
            self.block_source,
        )

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
            if self.signal_type is not SignalType.categorical
            else np.zeros(len(chunk))
        )
        blocks, _, self.raw_carry = complete_blocks(raw, self.raw_carry, self.config.block_events)
        if self.block_source[1] < 0 and len(chunk):
            self.block_source = _source_of(sources, start)
        if not len(ends):
            return
        # One row per block, written column by column into one array (np.column_stack costs
        # more than the rest on a short chunk); every number as before.
        rows = np.empty((len(ends), len(self.history.columns)))
        rows[:, 0] = self.seen + ends
        # The first value of each completed block: carried over for the first (its source was
        # kept), else the one after the previous end.
        firsts = start + ends[:-1] + 1
        rows[1:, 1] = sources.topic_codes[firsts]
        rows[1:, 2] = sources.offsets[firsts]
        rows[1:, 3] = sources.times[firsts] if sources.times is not None else NAN
        rows[0, 1:4] = self.block_source
        after_last = start + int(ends[-1]) + 1
        self.block_source = (
            _source_of(sources, after_last) if after_last < start + len(chunk) else (0, -1, NAN)
        )
        rows[:, 4] = np.add.reduce(blocks, axis=1)  # what .sum(axis=1) calls
        rows[:, 5] = np.add.reduce(blocks * blocks, axis=1)
        for column, name in enumerate(self.statistics, 6):
            rows[:, column] = block_means[name]
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

    # -- for metrics --------------------------------------------------------------------

    def window_statistics(self) -> dict[str, float]:
        """Current window means: each PIT statistic (1/2 = as reference), and the raw mean."""
        rows = self.history.rows[-self.config.window_blocks :]
        if self.learning or not len(rows):
            return {}
        summary = self._evidence().summarise(rows)
        values = {name: summary[f"pit_{name}"] for name in self.statistics}
        if self.signal_type is SignalType.numeric:
            values["mean"] = summary["mean"]
        elif self.signal_type is SignalType.rate:
            values["rate"] = summary["rate"]
        return values

    # -- checkpoint state -----------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Everything learned, as plain data (the config is not stored: it comes from settings).
        The signal type is stored under its historical key, `kind`."""
        categories = self.categories
        return {
            "kind": self.signal_type.value,
            "seen": self.seen,
            "sample": self.sample,
            "sample_ts": self.sample_ts,
            "season_learner": self.season_learner.to_state()
            if self.season_learner is not None
            else None,
            "season": self.season.to_state() if self.season is not None else None,
            "recentring": self.recentring.to_state() if self.recentring is not None else None,
            "mix": self.mix.to_state() if self.mix is not None else None,
            "reference": self.reference.to_state() if self.reference is not None else None,
            "novelty_reference": self.novelty_reference.to_state()
            if self.novelty_reference is not None
            else None,
            "levels": self.levels,
            "streams": {name: stream.to_state() for name, stream in self.streams.items()},
            "with_binary": self.with_binary,
            "binary": {name: detector.to_state() for name, detector in self.binary.items()},
            "raw_carry": self.raw_carry,
            "block_source": list(self.block_source),
            "history": self.history.rows,
            "history_columns": list(self.history.columns),
            "recent_codes": categories.recent if categories else np.empty(0, dtype=np.int16),
            "new_categories": categories.new_categories if categories else [],
            "below_floor": list(self.below_floor) if self.below_floor is not None else None,
            **self.lifecycle.to_state(),
        }

    @classmethod
    def from_state(cls, monitor: str, config: SignalConfig, state: dict[str, Any]) -> SignalMonitor:
        signal = cls(
            monitor, SignalType(state["kind"]), config, binary_detectors=bool(state["with_binary"])
        )
        signal.seen = int(state["seen"])
        signal.sample = list(state["sample"])
        signal.sample_ts = [int(t) for t in state["sample_ts"]]
        if state["season_learner"] is not None:
            signal.season_learner = SeasonLearner.from_state(state["season_learner"])
        if state["recentring"] is not None:
            signal.recentring = Recentring.from_state(state["recentring"])
        if state["season"] is not None:
            if signal.signal_type is SignalType.numeric:
                signal.season = NumericSeason.from_state(state["season"])
            elif signal.signal_type is SignalType.rate:
                signal.season = BinarySeason.from_state(state["season"])
            else:
                signal.season = CategoricalSeason.from_state(state["season"])
                if state["mix"] is not None:
                    signal.mix = MixStatistic.from_state(
                        signal.season.shares.shape[1],
                        config.block_events,
                        state["mix"],
                    )
        if state["reference"] is not None:
            if signal.signal_type is SignalType.categorical:
                reference = CategoricalReference.from_state(state["reference"])
                signal.reference = reference
                signal.categories = CategoryCodes(reference, config.codes_kept)
                signal.categories.restore(
                    [None if name is None else str(name) for name in state["new_categories"]],
                    np.asarray(state["recent_codes"], dtype=np.int16),
                )
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
            signal.binary = binary_detectors(config.per_detector_rate, config.warmup_events, errors)
            for name, detector_state in state["binary"].items():
                signal.binary[name].load_state(detector_state)
        signal.raw_carry = np.asarray(state["raw_carry"], dtype=np.float64)
        # Unknown times (NaN) are saved as null; checkpoints before times were kept have none.
        topic, offset, *time = state["block_source"]
        known = bool(time) and time[0] is not None
        signal.block_source = (int(topic), int(offset), float(time[0]) if known else NAN)
        signal.history.restore(
            np.asarray(state["history"], dtype=np.float64),
            state.get("history_columns", [c for c in signal.history.columns if c != "ts"]),
        )
        if state["below_floor"] is not None:
            statistic, detector, change_start, position = state["below_floor"]
            signal.below_floor = (str(statistic), str(detector), int(change_start), int(position))
        signal.lifecycle.load_state(state)
        return signal


def _source_of(sources: SourceRefs, index: int) -> tuple[int, int, float]:
    return int(sources.topic_codes[index]), int(sources.offsets[index]), sources.time(index)


def _levels(in_sample: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """Reference mean and variance of each statistic over the reference sample."""
    return {
        name: (float(col.mean()), max(float(col.var()), 1e-4)) for name, col in in_sample.items()
    }
