"""The project installs as ``scripts/install.sh`` installs it: editable, importable from any directory, with
the ``fsanet`` and ``leaderboard`` commands.

The shared test interpreter is never re-pointed: the install goes into a throwaway virtualenv whose only
packages are the test interpreter's (a ``.pth`` line), with install.sh's own pip command.
"""

from __future__ import annotations

import os
import shlex
import site
import subprocess
import sys

import fsanet
from tests.conftest import ROOT


def _install_command() -> list[str]:
    """install.sh's line that installs the project, as written there."""
    lines = [
        line for line in (ROOT / "scripts/install.sh").read_text().splitlines() if line.endswith(" -e .")
    ]
    assert len(lines) == 1, lines
    words = shlex.split(lines[0])
    assert words[:3] == [".venv/bin/python", "-m", "pip"], words
    return words[3:]


def test_editable_install_gives_imports_and_commands_anywhere(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    (next(venv.glob("lib/python*/site-packages")) / "dependencies.pth").write_text(site.getsitepackages()[0])
    pip = [sys.executable, "-m", "pip", "--python", str(python), *_install_command()]
    subprocess.run(pip, cwd=ROOT, check=True, capture_output=True, timeout=300)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    found = subprocess.run(
        [
            str(python),
            "-c",
            "import fsanet, leaderboard; print(fsanet.__file__); print(leaderboard.__file__)",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert found == [str(ROOT / "fsanet/__init__.py"), str(ROOT / "leaderboard/__init__.py")]  # editable

    listed = subprocess.run(
        [str(venv / "bin/fsanet"), "list", "--pretrained"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0 and listed.stdout.split() == fsanet.list_models(pretrained=True)
    refused = subprocess.run(
        [str(venv / "bin/leaderboard"), "evaluate", "--model", "m", "--benchmark", "b", "--batch-size", "0"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--batch-size" in refused.stderr
    assert refused.stderr.startswith("leaderboard evaluate: error:")  # the name the user typed
    # `fsanet list | head -1`, made deterministic: the reader is gone before the command writes.
    piped = subprocess.Popen(
        [str(venv / "bin/fsanet"), "list"],
        cwd=elsewhere,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    piped.stdout.close()
    assert piped.wait(timeout=120) == 0 and piped.stderr.read() == b""
