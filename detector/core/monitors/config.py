"""The detection parameters of one signal."""

from __future__ import annotations

from dataclasses import dataclass


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
    min_effect_sd: float  # ADWIN's smallest alerted change, in sd of the statistic
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
