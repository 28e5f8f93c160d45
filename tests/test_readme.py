"""Every ``python`` and ``bash`` block of the README runs, in README order, in one scratch folder.

What exists there before the first block (the README's example inputs, made from ``../shared``):
``photo.jpg`` (an AFLW2000 sample photo), ``AFLW2000/`` and ``hpdb/`` (the shared samples of the original
layouts), ``BIWI_test.npz`` (the authors' ``.npz`` format), ``data/300wlp_a`` and ``data/300wlp_b``
(canonical training sets, stand-ins for 300W-LP) and ``my-model-dir/`` (an untrained model folder).

What is changed, and why (:data:`SUBSTITUTIONS`): ``fsanet train`` runs one epoch instead of 90, and
``leaderboard seed`` evaluates one shipped model instead of all 19 (time on a 2-core machine).

A block that cannot run here carries a marker on the line just above its fence:

* ``<!-- readme-test: skip: REASON -->``: not run; the test is reported as skipped with REASON;
* ``<!-- readme-test: usage -->``: a synopsis (``[--option]``, ``{a,b}``, ``NAME``): each line's verb must
  exist and each ``--option`` it shows must appear in that verb's ``--help``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA, ROOT

README = ROOT / "README.md"
MARKER = re.compile(r"<!--\s*readme-test:\s*(skip|usage)\s*(?::\s*(.*?))?\s*-->")
FENCE = re.compile(r"^```(python|bash)\s*$")
SUBSTITUTIONS = (
    (re.compile(r"(python -m fsanet train [^#\n]*?)(\s*(#.*)?)$", re.M), r"\1 --epochs 1 --quiet\2"),
    (re.compile(r"(python -m leaderboard seed)\b"), r"\1 --models ssrnet_md.300w_lp"),
)


@dataclass(frozen=True)
class Example:
    language: str
    code: str
    line: int  # of the opening fence
    marker: str | None  # skip, usage or None
    reason: str = ""


def readme_examples(text: str) -> list[Example]:
    """The README's python/bash blocks with the marker (if any) on the line above each fence."""
    lines, examples, index = text.splitlines(), [], 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        above = MARKER.search(lines[index - 1]) if index else None
        examples.append(
            Example(
                fence.group(1),
                "\n".join(lines[index + 1 : end]) + "\n",
                index + 1,
                above.group(1) if above else None,
                (above.group(2) or "") if above else "",
            )
        )
        index = end + 1
    return examples


EXAMPLES = readme_examples(README.read_text())


def _write_inputs(folder: Path) -> None:
    import fsanet
    from leaderboard.protocol.data import authors_crop, write_dataset
    from leaderboard.protocol.importers import aflw2000_rows

    aflw = DATA / "aflw2000-sample16"
    shutil.copy(aflw / "image00050.jpg", folder / "photo.jpg")
    (folder / "AFLW2000").symlink_to(aflw)
    (folder / "hpdb").symlink_to(DATA / "biwi-sample1" / "hpdb")
    rows = list(aflw2000_rows(aflw))
    faces = np.stack([authors_crop(row["image"], row["box"]) for row in rows])
    poses = np.array([[row["yaw"], row["pitch"], row["roll"]] for row in rows], np.float32)
    np.savez(folder / "BIWI_test.npz", image=faces[..., ::-1], pose=poses)  # the authors' BGR crops
    for name in ("300wlp_a", "300wlp_b"):  # a full batch of 16 each
        write_dataset(rows, folder / "data" / name, {"benchmark": name})
    fsanet.create_model("fsanet_caps_1x1").save_pretrained(folder / "my-model-dir")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    for needed in (DATA / "aflw2000-sample16", DATA / "biwi-sample1"):
        if not needed.exists():
            pytest.skip(f"{needed} is absent: the README examples run on the ../shared samples")
    folder = tmp_path_factory.mktemp("readme")
    _write_inputs(folder)
    return folder


def _environment() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `python` is this one
    env.pop("LEADERBOARD_DIR", None)
    return env


def _substituted(code: str) -> str:
    for pattern, replacement in SUBSTITUTIONS:
        code = pattern.sub(replacement, code)
    return code


def test_the_readme_has_examples_and_every_marker_is_known():
    assert len(EXAMPLES) >= 6
    for line in README.read_text().splitlines():
        if "readme-test" in line:
            assert MARKER.search(line), f"unknown README marker: {line}"
    assert all(e.reason for e in EXAMPLES if e.marker == "skip"), "a skip marker must say why"


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{e.language}-line{e.line}" for e in EXAMPLES])
def test_readme_example_runs(example: Example, workspace: Path):
    if example.marker == "skip":
        pytest.skip(f"README line {example.line}: {example.reason}")
    if example.marker == "usage":
        _check_usage(example)
        return
    code = _substituted(example.code)
    if example.language == "python":
        command = [sys.executable, "-c", code]
    else:
        command = ["bash", "-euo", "pipefail", "-c", code]
    result = subprocess.run(
        command, cwd=workspace, env=_environment(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, (
        f"README line {example.line} failed:\n{code}\n--- stdout\n{result.stdout[-3000:]}\n"
        f"--- stderr\n{result.stderr[-3000:]}"
    )


def _check_usage(example: Example) -> None:
    """Each synopsis line: its verbs exist, and every ``--option`` it shows is in that verb's help."""
    from fsanet.cli.main import build_parser as fsanet_parser
    from leaderboard.cli import build_parser as leaderboard_parser

    parsers = {"fsanet": fsanet_parser(), "leaderboard": leaderboard_parser()}
    for line in example.code.splitlines():
        found = re.match(r"python -m (fsanet|leaderboard) (\{[^}]+\}|\S+)(.*)", line.strip())
        if not found:
            continue
        program, verbs, rest = found.groups()
        parser = parsers[program]
        subcommands = next(a for a in parser._actions if a.dest == "command").choices
        for verb in verbs.strip("{}").split(","):
            assert verb in subcommands, f"README line {example.line}: no verb {program} {verb}"
            known = set(subcommands[verb]._option_string_actions)
            shown = set(re.findall(r"--[a-z][a-z-]*", rest.split("#")[0]))
            assert shown <= known, f"README: {program} {verb} has no {sorted(shown - known)}"
