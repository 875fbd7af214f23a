"""A picture of each drifting signal (matplotlib, the optional `report` extra).

Per monitor, against the model's prediction events: each PIT statistic's window mean with its
reference band (top), the raw value's window mean with the reference's band for numbers and
rates (bottom), the detections and resolves, and the true change points with their extent.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from detector.backtest.replay import Fired
from detector.backtest.score import Change
from detector.backtest.trace import Series
from detector.settings import ConfigError

COLOURS = {"location": "#1f77b4", "spread": "#ff7f0e", "novelty": "#9467bd", "raw": "#2ca02c"}
DETECTED, RESOLVED, CHANGE = "#d62728", "#2ca02c", "#444444"
INSTALL_HINT = "pip install 'streamdrift[report]'"


def require_matplotlib() -> None:
    """Fail early, before a long replay, when the pictures cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"--report and --png draw with matplotlib, which is not installed: {INSTALL_HINT}"
        ) from None


def signal_png(
    title: str,
    series: Series | None,
    fired: Sequence[Fired],
    changes: Sequence[Change],
    events: int,
) -> bytes:
    """One monitor's picture as PNG bytes."""
    from matplotlib.figure import Figure

    columns = series.columns() if series is not None else {}
    has_raw = bool(len(columns.get("raw", ()))) and not np.isnan(columns["raw"]).all()
    figure = Figure(figsize=(10, 5.8 if has_raw else 3.8), dpi=100, layout="constrained")
    axes = figure.subplots(2 if has_raw else 1, 1, sharex=True, squeeze=False)[:, 0]
    figure.suptitle(title, fontsize=11)
    if series is not None and len(columns["position"]):
        for statistic in series.statistics:
            _band_line(
                axes[0], columns, statistic, f"PIT {statistic}", COLOURS.get(statistic, "#17becf")
            )
        axes[0].set_ylabel("window mean (PIT)")
    else:
        axes[0].text(
            0.5,
            0.5,
            "no signal trace: a rule-based monitor, or still learning its reference",
            ha="center",
            va="center",
            transform=axes[0].transAxes,
        )
    if has_raw:
        assert series is not None
        _band_line(
            axes[1],
            columns,
            "raw",
            "rate" if series.signal_type.value == "rate" else "raw mean",
            COLOURS["raw"],
        )
        axes[1].set_ylabel("window mean (raw)")
    for axis in axes:
        _marks(axis, fired, changes)
        axis.set_xlim(0, max(events, 1))
        axis.grid(alpha=0.25)
    axes[-1].set_xlabel("prediction events of the model")
    legend = {
        label: handle for axis in axes for handle, label in zip(*axis.get_legend_handles_labels())
    }
    figure.legend(
        legend.values(),
        legend.keys(),
        loc="outside lower center",
        fontsize=8,
        ncols=4,
        frameon=False,
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _band_line(
    axis: Any, columns: dict[str, np.ndarray], name: str, label: str, colour: str
) -> None:
    x, level, half = columns["position"], columns[f"{name}.level"], columns[f"{name}.half"]
    axis.fill_between(
        x,
        level - half,
        level + half,
        color=colour,
        alpha=0.15,
        step="post",
        label=f"{label}: reference band",
    )
    axis.plot(x, columns[name], color=colour, linewidth=1.2, label=label)


def _marks(axis: Any, fired: Sequence[Fired], changes: Sequence[Change]) -> None:
    """True changes (line at the start, shaded extent), detections and resolves."""
    labelled: set[str] = set()

    def once(label: str) -> str | None:
        if label in labelled:
            return None
        labelled.add(label)
        return label

    for change in changes:
        extent = change.end if change.end is not None else change.start + change.length
        if extent > change.start:
            axis.axvspan(change.start, extent, color=CHANGE, alpha=0.08)
        axis.axvline(
            change.start,
            color=CHANGE,
            linestyle=":",
            linewidth=1.8,
            zorder=3,
            label=once("true change"),
        )
    for f in fired:
        if f.position is None:
            continue
        if f.alert.kind == "detected":
            axis.axvline(
                f.position,
                color=DETECTED,
                linewidth=1.5,
                label=once(f"detected ({f.alert.statistic}/{f.alert.detector})"),
            )
        else:
            axis.axvline(
                f.position,
                color=RESOLVED,
                linestyle="--",
                linewidth=1.2,
                label=once(f"resolved ({f.alert.reason})"),
            )
