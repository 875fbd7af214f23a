"""The HTML report and the PNGs: produced, self-contained, and opened in headless Chromium
(Debian's package, installed by `make system-packages`) without console errors, with every
picture decoded and a screenshot that shows something."""

from __future__ import annotations

import base64
import html as html_module
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from tests.backtest.conftest import Backtest
from tests.backtest.support import History
from tests.system_packages import system_program

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
)
# Appended to a copy of the report: the title tells whether the browser decoded every picture.
IMAGE_CHECK = """<script>window.addEventListener("load", () => {
  const images = [...document.images];
  document.title = (images.every(i => i.complete && i.naturalWidth > 0) ? "images-ok:" : "images-broken:") + images.length;
});</script>"""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium (`make system-packages` installs it); a one-line failure when missing."""
    return system_program("chromium")


def open_in_chromium(
    chromium: str, page: Path, profile: Path, *mode: str
) -> subprocess.CompletedProcess[str]:
    """Load a page headless; its console messages are logged to stderr as INFO:CONSOLE lines."""
    command = [
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--window-size=1200,2400",
        *mode,
        page.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, f"the page wrote to the console: {console}"
    return result


def test_the_report_opens_in_chromium_with_every_picture(
    history: History, backtest: Backtest, chromium: str, tmp_path: Path
) -> None:
    report, pictures = tmp_path / "report.html", tmp_path / "pictures"
    code, _, err = backtest(
        "--file",
        history.events,
        "--labels-file",
        history.labels,
        "--truth",
        history.truth,
        "--report",
        report,
        "--png",
        pictures,
    )

    assert code == 0, err
    html = report.read_text(encoding="utf-8")
    embedded = [
        base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    ]
    files = sorted(pictures.glob("*.png"))
    assert {"A-fraud-feature.amount.png", "A-fraud-feature.country.png"} <= {f.name for f in files}
    assert sorted(embedded) == sorted(f.read_bytes() for f in files)
    assert all(png.startswith(PNG_SIGNATURE) for png in embedded)
    assert not re.search(r'(src|href)="(?!data:)', html), (
        "the report must not load anything from outside"
    )
    assert "mean_shift amount @8000..14000" in html and "Alerts, per monitor" in html

    screenshot = tmp_path / "screenshot.png"
    open_in_chromium(chromium, report, tmp_path / "profile-1", f"--screenshot={screenshot}")
    pixels = image.imread(screenshot)
    assert screenshot.stat().st_size > 20_000
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 50, (
        "the screenshot is (nearly) one colour"
    )

    checked = tmp_path / "checked.html"
    checked.write_text(html.replace("</body>", IMAGE_CHECK + "</body>"), encoding="utf-8")
    dom = open_in_chromium(chromium, checked, tmp_path / "profile-2", "--dump-dom").stdout
    assert f"<title>images-ok:{len(embedded)}</title>" in dom


def test_without_matplotlib_the_report_fails_at_once_with_the_install_hint(
    history: History, tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    no_matplotlib = "import sys; sys.modules['matplotlib'] = None; from detector.commands.cli import main; sys.exit(main(sys.argv[1:]))"

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            no_matplotlib,
            "backtest",
            "--file",
            str(history.events),
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2
    assert "pip install 'streamdrift[report]'" in result.stderr and result.stderr.count("\n") == 1
    assert "backtest [" not in result.stderr  # refused before replaying anything
    assert not report.exists()


def test_a_categorical_alert_names_the_categories_that_moved_in_text_and_html(
    history: History, backtest: Backtest, tmp_path: Path
) -> None:
    report, alerts = tmp_path / "report.html", tmp_path / "alerts.jsonl"
    code, out, err = backtest("--file", history.events, "--report", report, "--alerts-out", alerts)

    assert code == 0, err
    events = [json.loads(line) for line in alerts.read_text(encoding="utf-8").splitlines()]
    country = next(
        e
        for e in events
        if e["data"]["monitor"] == "feature.country" and e["type"].endswith("detected")
    )
    changes = country["data"]["evidence"]["top_changes"]
    assert changes and all(
        c["category"] in ("DE", "FR", "US", "GB", "IN", "BR", "(other)") for c in changes
    )
    first = changes[0]
    named = f"{first['category']} {first['before']:.0%} -> {first['after']:.0%}"
    assert named in out
    assert html_module.escape(named) in report.read_text(encoding="utf-8")
