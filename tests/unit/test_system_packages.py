"""The system programs the tests run are installed by one visible step, `make system-packages`
(tests/system-packages.sh), that `make test` runs before pytest; no test installs anything, and
a missing program fails with one line naming that step."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.system_packages import SETUP_STEP, system_program

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "system-packages.sh"
PROGRAMS = ("java", "mvn", "chromium", "stunnel4", "openssl", "prometheus", "promtool", "amtool")


def run_script(bin_dir: Path) -> subprocess.CompletedProcess[str]:
    """The script with only `bin_dir` on PATH (no apt-get there) and no JAVA_HOME."""
    env = {key: value for key, value in os.environ.items() if key != "JAVA_HOME"}
    env["PATH"] = str(bin_dir)
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def fake_programs(directory: Path, names: tuple[str, ...]) -> Path:
    """A PATH directory holding `sort` (the script uses it) and empty executables `names`."""
    directory.mkdir()
    sort = shutil.which("sort")
    assert sort is not None
    (directory / "sort").symlink_to(sort)
    for name in names:
        program = directory / name
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    return directory


def test_a_missing_program_fails_with_one_line_naming_the_setup_step() -> None:
    with pytest.raises(pytest.fail.Exception) as failure:
        system_program("streamdrift-no-such-program")
    message = str(failure.value)
    assert "streamdrift-no-such-program is not installed" in message
    assert f"`{SETUP_STEP}`" in message and "\n" not in message


def test_the_script_installs_nothing_when_every_program_is_present(tmp_path: Path) -> None:
    result = run_script(fake_programs(tmp_path / "bin", PROGRAMS))
    assert result.returncode == 0, result.stderr
    assert "every program the tests need is installed" in result.stdout


def test_without_apt_get_the_script_names_the_missing_package_and_what_to_run(
    tmp_path: Path,
) -> None:
    present = tuple(name for name in PROGRAMS if name not in {"chromium", "amtool"})
    result = run_script(fake_programs(tmp_path / "bin", present))
    assert result.returncode == 1
    assert "missing chromium prometheus-alertmanager" in result.stdout
    assert "make system-packages" in result.stderr
    assert (
        "apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300 "
        "chromium prometheus-alertmanager" in result.stderr
    )


def test_make_test_runs_the_setup_step_before_pytest() -> None:
    make = shutil.which("make")
    assert make is not None
    commands = subprocess.run(
        [make, "-n", "test"], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    setup = next(i for i, line in enumerate(commands) if "tests/system-packages.sh" in line)
    pytest_run = next(i for i, line in enumerate(commands) if "-m pytest" in line)
    assert setup < pytest_run, commands


def calls_apt_get(path: Path) -> bool:
    """Whether a module holds the string "apt-get" on its own (a command's first word)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return any(
        isinstance(node, ast.Constant) and node.value == "apt-get" for node in ast.walk(tree)
    )


def test_no_test_installs_system_packages() -> None:
    installers = [
        str(path.relative_to(REPO))
        for path in (REPO / "tests").rglob("*.py")
        if path != Path(__file__) and calls_apt_get(path)
    ]
    assert not installers, f"tests that run apt-get (use tests/system_packages.py): {installers}"
