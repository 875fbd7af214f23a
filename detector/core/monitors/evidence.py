"""The evidence of a signal's transitions: summaries of its blocks before and after a change
(raw and PIT means), where the windows start and end, the detector's thresholds, and for
categories their shares and the categories whose share moved most."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.core.monitors.batch_detector import Hit
from detector.core.monitors.categories import CategoryCodes
from detector.core.monitors.columns import SourceRefs
from detector.core.monitors.config import SignalConfig
from detector.core.monitors.detectors import ADWIN_NAME
from detector.core.monitors.history import BlockHistory
from detector.core.monitors.lifecycle import Drift, EstimatedStart
from detector.core.monitors.reference import CategoricalReference, NumericReference
from detector.core.monitors.signal_type import SignalType

MIN_AFTER_EVENTS = 64  # evidence 'after' a change covers at least the blocks of this many events
TOP_CHANGES = 5  # categories listed in a categorical drift's evidence, those whose share moved most
TOP_SHARES = 5  # categories whose shares a summary lists


@dataclass(frozen=True)
class Evidence:
    """What the evidence of one signal's transitions is read from."""

    signal_type: SignalType
    statistics: tuple[str, ...]
    config: SignalConfig
    history: BlockHistory
    reference: NumericReference | CategoricalReference | None
    categories: CategoryCodes | None  # of a categorical signal, while its values are decided
    seasonal_buckets: int = 0  # the hours the reference depends on (24, 168), 0: none
    open_block: tuple[int, int, float] = (0, -1, float("nan"))  # first value's topic, offset, time

    def estimated_start(
        self, position: int, hit: Hit, sources: SourceRefs
    ) -> EstimatedStart | None:
        """The block in which the change detected at `position` began, from the detector's
        estimate of its age; None when the detector gives none (river's binary detectors)."""
        if hit.change_age <= 1:
            return None
        cfg = self.config
        first = position - hit.change_age + 1  # the change's first value
        kept = position - self.history.capacity * cfg.block_events
        ends = self.history.column("end")
        later = ends > max(first - 1, kept)
        if not later.any():  # it began in the open block
            topic, offset, time_ms = self.open_block
            return EstimatedStart(sources.topics[topic], offset, time_ms)
        row = self.history.rows[int(np.argmax(later))]
        block_first = int(self.history.column("end", row[None])[0]) - cfg.block_events + 1
        return EstimatedStart(
            sources.topics[int(self.history.column("topic", row[None])[0])],
            int(self.history.column("offset", row[None])[0]),
            float(self.history.column("ts", row[None])[0]),
            clipped=block_first > first,
        )

    def detected(self, index: int, position: int, hit: Hit, sources: SourceRefs) -> dict[str, Any]:
        """Of a drift detected at signal position `position` (`index` of `sources`)."""
        cfg = self.config
        change_start = position - max(hit.change_age, 1)
        # Only the blocks of the last `capacity` are sure to be kept, whatever the batches.
        kept = position - self.history.capacity * cfg.block_events
        before = self.history.between(
            max(change_start - cfg.window_blocks * cfg.block_events, kept), change_start
        )
        after = self.history.between(max(change_start, kept), position)
        least = -(-MIN_AFTER_EVENTS // cfg.block_events)
        if len(after) < least:  # a very recent change point, or a detector without one
            after = self.history.between(-1, position)[-least:]
        first = after[0] if len(after) else None
        evidence: dict[str, Any] = {
            "reference": self.reference_summary(),
            "before": self.summarise(before),
            "after": self.summarise(after) | self._shares_at(position),
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
        if self.signal_type is SignalType.categorical:
            evidence["top_changes"] = self._top_changes(change_start, position)
        return evidence

    def resolved(
        self, index: int, position: int, drift: Drift, sources: SourceRefs
    ) -> dict[str, Any]:
        """Of `drift` resolved at signal position `position` (`index` of `sources`)."""
        window = self.history.between(-1, position)[-self.config.window_blocks :]
        return {
            "reference": self.reference_summary(),
            "after": self.summarise(window) | self._shares_at(position),
            "window": {
                "events": int(position - drift.started_at),
                "partition": sources.partition,
                "from": self._block_ref(window[0], sources) if len(window) else sources.ref(index),
                "to": sources.ref(index),
            },
            "drift_started_at_events": drift.started_at + 1,
        }

    def summarise(self, rows: np.ndarray) -> dict[str, Any]:
        """Raw and PIT summaries of a set of blocks."""
        if not len(rows):
            return {"events": 0}
        events = len(rows) * self.config.block_events
        summary: dict[str, Any] = {"events": events}
        if self.signal_type is not SignalType.categorical:
            mean = float(self.history.column("raw_sum", rows).sum() / events)
            square = float(self.history.column("raw_sumsq", rows).sum() / events)
            key = "rate" if self.signal_type is SignalType.rate else "mean"
            summary[key] = mean
            if self.signal_type is SignalType.numeric:
                summary["std"] = float(np.sqrt(max(square - mean * mean, 0.0)))
        for name in self.statistics:
            summary[f"pit_{name}"] = float(self.history.column(name, rows).mean())
        return summary

    def reference_summary(self) -> dict[str, Any]:
        if isinstance(self.reference, CategoricalReference):
            shares = self.reference.shares()
            top = dict(sorted(shares.items(), key=lambda item: -item[1])[:TOP_SHARES])
            summary: dict[str, Any] = {
                "top_categories": {k: round(v, 4) for k, v in top.items()},
                "categories": len(self.reference.categories),
            }
            if self.seasonal_buckets:  # the shares expected depend on the hour
                summary["seasonal_buckets"] = self.seasonal_buckets
            return summary
        if isinstance(self.reference, NumericReference):
            if self.signal_type is SignalType.rate:
                rate = {"rate": self.reference.summary["mean"]}
                # the rate expected depends on the hour: its warm-up's is the one shown
                return rate | (
                    {"seasonal_buckets": self.seasonal_buckets} if self.seasonal_buckets else {}
                )
            if (
                self.seasonal_buckets
            ):  # a reference of standardised values: its summary means nothing
                return {"seasonal_buckets": self.seasonal_buckets}
            return dict(self.reference.summary)
        return {}

    def _block_ref(self, row: np.ndarray, sources: SourceRefs) -> dict[str, Any]:
        return {
            "topic": sources.topics[int(self.history.column("topic", row[None])[0])],
            "offset": int(self.history.column("offset", row[None])[0]),
        }

    def _thresholds(self, detector: str) -> dict[str, float]:
        cfg = self.config
        if detector == ADWIN_NAME:
            return {"delta": cfg.adwin_delta, "block_events": cfg.block_events}
        return {"threshold": cfg.page_hinkley_threshold, "delta": cfg.page_hinkley_delta}

    def _shares_at(self, position: int) -> dict[str, Any]:
        """Shares of the top categories over the last resolve_window_events values up to
        `position`."""
        categories = self.categories
        if categories is None or categories.in_play is None:
            return {}
        names = categories.names()
        counts = np.bincount(
            categories.between(position + 1 - self.config.resolve_window_events, position),
            minlength=len(names),
        )
        top = np.argsort(-counts, kind="stable")[:TOP_SHARES]
        return {
            "top_categories": {names[i]: round(float(counts[i] / counts.sum()), 4) for i in top}
        }

    def _top_changes(self, change_start: int, position: int) -> list[dict[str, Any]]:
        """The categories whose share moved most between the window before the change and the
        values after it (at least MIN_AFTER_EVENTS), new ones included, with their reference
        shares (None for a new category when the reference pooled some as 'other': it may have
        been one of them). Only the last codes_kept values are known."""
        categories = self.categories
        assert categories is not None
        reference = categories.reference
        cfg = self.config
        names = categories.names()
        other = reference.other_code
        before_codes = categories.between(
            max(
                change_start + 1 - cfg.window_blocks * cfg.block_events,
                position + 1 - cfg.codes_kept,  # kept whatever the batches
            ),
            change_start,
        )
        after_codes = categories.between(
            min(change_start + 1, position + 1 - MIN_AFTER_EVENTS), position
        )
        expected = np.zeros(len(names))
        expected[: other + 1] = reference.upto - reference.below
        after = np.bincount(after_codes, minlength=len(names)) / max(len(after_codes), 1)
        before = (
            np.bincount(before_codes, minlength=len(names)) / len(before_codes)
            if len(before_codes)
            else None
        )
        moved = np.abs(after - (expected if before is None else before))
        pooled = expected[other] > 0

        def share(values: np.ndarray | None, code: int) -> float | None:
            return None if values is None else round(float(values[code]), 4)

        return [
            {
                "category": names[code],
                "reference": None if code > other and pooled else share(expected, code),
                "before": share(before, code),
                "after": share(after, code),
                "new": code > other,
            }
            for code in np.argsort(-moved, kind="stable")[:TOP_CHANGES].tolist()
            if moved[code] > 0
        ]
