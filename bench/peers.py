"""A batch peer beside streamdrift on the same data (the set-up of the team's peer measurements):
reference 100,000 rows, analysis 1,000,000 rows × 23 columns (20 numeric of five families, 3
categorical), one numeric column shifted by +0.5 sd from analysis row 500,000, chunks of 5,000.

* NannyML's UnivariateDriftCalculator with default methods and thresholds runs in a separate,
  optional virtual environment (`--venv`, created and filled by this command unless
  `--no-install`; never a dependency of the package): rows/s of its calculate step (DataFrames
  built beforehand), the delay of its first alert on the shifted column (rows after the change
  until the end of the alerting chunk: a batch check decides when its chunk is complete), and
  its alerts on the 22 unchanged columns (column × chunk tests).
* streamdrift: the reference rows, then the analysis rows, as events through the core
  (`Pipeline.process`, batches of 5,000); delay = offset of the first alert on the shifted
  feature minus the change's offset; false alarms = alerts on any other monitor, or on the
  shifted one before the change.
Evidently is not re-run (about 740 rows/s: 20 minutes for this data); its recorded figures are
shown, labelled as such.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.families import Categorical
from bench.report import progress, table
from bench.throughput import GENERATE_CHUNK, core, generate
from bench.workload import Workload, standard_features
from detector.core.alerts import Alert
from detector.settings import load_settings

PEER_PACKAGES = (
    "nannyml==0.13.1",
    "pandas<3",
    "statsmodels",
)  # NannyML needs statsmodels without declaring it
SHIFTED, SHIFT_SD = "n0", 0.5
RECORDED = (  # measured earlier on a 2-core machine of the same kind (the team's shared peers notes)
    (
        "NannyML 0.13.1 (recorded, not re-run here)",
        "~171,000",
        "5,000",
        "55 of 4,400 column-chunk tests",
    ),
    ("Evidently 0.7.23, DataDriftPreset per window (recorded, not re-run)", "~743", "5,000", "0"),
)


@dataclass(frozen=True)
class Sizes:
    reference: int
    analysis: int
    change: int  # analysis row where the shift starts
    chunk: int


FULL = Sizes(reference=100_000, analysis=1_000_000, change=500_000, chunk=5000)
QUICK = Sizes(reference=5000, analysis=20_000, change=10_000, chunk=1000)


@dataclass(frozen=True)
class Outcome:
    tool: str
    rows_per_second: str
    delay: str
    false_alerts: str


def workload(sizes: Sizes) -> Workload:
    return Workload(
        standard_features(),
        outputs=False,
        ids=False,
        shift=(SHIFTED, sizes.reference + sizes.change, SHIFT_SD),
    )


def write_data(sizes: Sizes, path: Path) -> None:
    """The peer's columns, chunk by chunk as the event stream is generated, into an .npz file."""
    w = workload(sizes)
    total = sizes.reference + sizes.analysis
    parts = [
        w.arrays(start, min(GENERATE_CHUNK, total - start))
        for start in range(0, total, GENERATE_CHUNK)
    ]
    names = list(w.features)
    columns = {name: np.concatenate([part[name] for part in parts]) for name in names}
    arrays = {f"reference.{n}": c[: sizes.reference] for n, c in columns.items()}
    arrays |= {f"analysis.{n}": c[sizes.reference :] for n, c in columns.items()}
    categorical = [n for n, f in w.features.items() if isinstance(f, Categorical)]
    arrays |= {"names": np.array(names), "categorical": np.array(categorical)}
    np.savez(path, allow_pickle=False, **arrays)


def streamdrift(sizes: Sizes) -> Outcome:
    total = sizes.reference + sizes.analysis
    rate, alerts = core(generate(workload(sizes), total), load_settings(None))
    change = sizes.reference + sizes.change
    detected = [a for a in alerts if a.kind == "detected"]
    hit = next(
        (a for a in detected if a.monitor == f"feature.{SHIFTED}" and a.offset >= change), None
    )
    false = [a for a in detected if a is not hit and not _after_change_on_shifted(a, change)]
    return Outcome(
        "streamdrift core (this run)",
        f"{rate.per_second:,.0f}",
        f"{hit.offset - change:,}" if hit else "not detected",
        f"{len(false)} alerts ({total:,} events, every monitor of the 22 columns)",
    )


def _after_change_on_shifted(alert: Alert, change: int) -> bool:
    return alert.monitor == f"feature.{SHIFTED}" and alert.offset >= change


def nannyml(sizes: Sizes, python: Path) -> Outcome:
    script = Path(__file__).with_name("peer_nannyml.py")
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data.npz"
        write_data(sizes, data)
        progress(f"nannyml: running on {sizes.analysis:,} analysis rows")
        done = subprocess.run(
            [str(python), str(script), str(data), str(sizes.chunk)],
            capture_output=True,
            text=True,
            check=True,
        )
    result = json.loads(done.stdout)
    chunks = result["chunk_rows"]
    alerting = result["alerts"]
    after = [i for i in alerting[SHIFTED] if chunks[i][1] >= sizes.change]
    delay = f"{chunks[after[0]][1] + 1 - sizes.change:,}" if after else "not detected"
    unchanged = [name for name in alerting if name != SHIFTED]
    false = sum(len(alerting[name]) for name in unchanged) + len(alerting[SHIFTED]) - len(after)
    rows_per_second = sizes.analysis / result["calculate_s"]
    return Outcome(
        f"NannyML {result['version']} UnivariateDriftCalculator, defaults (this run)",
        f"{rows_per_second:,.0f} (DataFrames built in {result['build_s']:.1f}s; peak RSS {result['peak_rss_bytes'] / 2**20:,.0f} MiB)",
        delay,
        f"{false} of {len(unchanged) * len(chunks):,} column-chunk tests",
    )


def peer_python(venv: Path, install: bool) -> tuple[Path | None, str]:
    """The peers' interpreter, creating the environment if allowed; else None and why not."""
    python = venv / "bin" / "python"
    if _has_nannyml(python):
        return python, ""
    if not install:
        return None, f"no NannyML in {venv} and --no-install given"
    progress(f"creating {venv} and installing {', '.join(PEER_PACKAGES)}")
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *PEER_PACKAGES],
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        return None, f"installing failed: {(exc.stderr or '').strip().splitlines()[-1:] or exc}"
    return (python, "") if _has_nannyml(python) else (None, "NannyML installed but does not import")


def _has_nannyml(python: Path) -> bool:
    return (
        python.exists()
        and subprocess.run([str(python), "-c", "import nannyml"], capture_output=True).returncode
        == 0
    )


def run(quick: bool, venv: str, install: bool) -> str:
    sizes = QUICK if quick else FULL
    outcomes = [streamdrift(sizes)]
    python, why_not = peer_python(Path(venv), install)
    if python is not None:
        outcomes.append(nannyml(sizes, python))
    rows = [[o.tool, o.rows_per_second, o.delay, o.false_alerts] for o in outcomes]
    rows += [list(recorded) for recorded in RECORDED]
    note = (
        f"Reference {sizes.reference:,} rows, analysis {sizes.analysis:,} rows × 23 columns; {SHIFTED} (normal) shifted by "
        f"+{SHIFT_SD} sd from analysis row {sizes.change:,}; chunks of {sizes.chunk:,}."
        + (f" NannyML not run: {why_not}." if python is None else "")
    )
    return (
        note
        + "\n\n"
        + table(
            ["tool", "rows/s", "delay for +0.5 sd (rows)", "false alerts, 22 unchanged columns"],
            rows,
        )
    )
