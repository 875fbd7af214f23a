"""What a signal's values are, and the statistics watched for each type."""

from __future__ import annotations

from enum import Enum


class SignalType(str, Enum):
    """The type of a signal's values (the alert evidence's `signal_kind`)."""

    numeric = "numeric"  # location and spread of a continuous or discrete value
    categorical = "categorical"  # category mix (location) and rate of unseen categories (novelty)
    rate = "rate"  # a 0/1 indicator, e.g. "value missing"


STATISTICS: dict[SignalType, tuple[str, ...]] = {
    SignalType.numeric: ("location", "spread"),
    SignalType.categorical: ("location", "novelty"),
    SignalType.rate: ("location",),
}
