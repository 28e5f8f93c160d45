"""Both command lines with the careless values of issue 15: one line on stderr, exit code 2, no traceback.

Also the board's locations as every verb sees them: ``--results`` before or after the verb, datasets where
``prepare --out`` put them, a training run's folder as ``--model``, ``table --benchmark``, ``retry`` of
failed requests only, and each warning printed once.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import fsanet
from fsanet.cli.main import main as fsanet_main
from leaderboard.cli import main as leaderboard_main
from leaderboard.display.plots import PNG_WIDTH
from tests.conftest import DATA, ROOT, require_shared

AFLW = DATA / "aflw2000-sample16"
MODEL = "ssrnet_md.300w_lp"  # the smallest shipped model: converted once per test session


def _run(main, argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _refused(main, argv: list[str], capsys, fragment: str) -> str:
    code, _, err = _run(main, argv, capsys)
    assert code == 2, (argv, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert fragment in err, err
    return err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """A plain file where a folder is expected, a broken model folder, an image."""
    plain = tmp_path / "plain.txt"
    plain.write_text("not a folder")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{")
    (broken / "model.safetensors").write_bytes(b"")
    image = sorted(require_shared(AFLW).glob("*.jpg"))[0]
    return {"file": str(plain), "broken": str(broken), "image": str(image), "tmp": str(tmp_path)}


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (
            ["train", "--model", "fsanet_caps_1x1", "--train", "d", "--out", "{tmp}/r", "--batch-size", "0"],
            ">= 1",
        ),
        (
            ["train", "--model", "fsanet_caps_1x1", "--train", "d", "--out", "{tmp}/r", "--batch-size", "-5"],
            ">= 1",
        ),
        (
            ["train", "--model", "fsanet_caps_1x1", "--train", "d", "--out", "{tmp}/r", "--epochs", "x"],
            "--epochs",
        ),
        (["train", "--model", "fsanet_caps_1x1", "--train", "d", "--out", "{tmp}/r", "--lr", "nan"], "--lr"),
        (
            ["train", "--model", "fsanet_caps_1x1", "--train", "d", "--out", "{tmp}/r", "--device", "banana"],
            "banana",
        ),
        (
            ["train", "--model", "fsanet_caps_1x1", "--train", "d", "--out", "{tmp}/r", "--workers", "-1"],
            ">= 0",
        ),
        (["train", "--model", "fsanet_caps_1x1", "--train", "d", "--out", "{file}"], "is a file"),
        (["train", "--model", "no_such_model", "--train", "{tmp}", "--out", "{tmp}/r"], "unknown model"),
        (
            ["train", "--model", "fsanet_caps_1x1", "--train", "{tmp}/none", "--out", "{tmp}/r"],
            "neither a dataset",
        ),
        (["predict", "{image}", "--out", "{file}"], "is a file"),
        (["predict", "{image}", "--out", "/proc/fsanet/out"], "not a writable folder"),
        (["predict", "{image}", "--model", "{broken}"], "config.json"),
        (["predict", "{image}", "--max-faces", "0"], ">= 1"),
        (["predict", "{image}", "--detector", "banana"], "invalid choice"),
        (["predict", "{tmp}/missing.jpg"], "missing.jpg"),
        (["bench", "--batches", "0"], ">= 1"),
        (["bench", "--repeats", "-5"], ">= 1"),
        (["bench", "--device", "banana"], "banana"),
        (["convert", "{tmp}/missing.h5", "{tmp}/out"], "missing.h5"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_fsanet_refuses_careless_values_in_one_line(argv, fragment, files, capsys):
    _refused(fsanet_main, [a.format(**files) for a in argv], capsys, fragment)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["evaluate", "--model", MODEL, "--benchmark", "aflw2000", "--batch-size", "0"], ">= 1"),
        (["evaluate", "--model", MODEL, "--benchmark", "aflw2000", "--batch-size", "-5"], ">= 1"),
        (["evaluate", "--model", MODEL, "--benchmark", "aflw2000", "--device", "banana"], "banana"),
        (["evaluate", "--model", MODEL, "--benchmark", "aflw2000", "--device", "cuda:99"], "cuda:99"),
        (["evaluate", "--model", MODEL, "--benchmark", "aflw2000"], "no aflw2000 data"),
        (["evaluate", "--model", MODEL, "--benchmark", "{tmp}/none"], "none"),
        (["table", "--format", "xml"], "invalid choice"),
        (["table", "--benchmark", "banana"], "unknown"),
        (["retry", "no-such-request"], "no request"),
        (["requests", "--id", "no-such-request"], "no request"),
        (["worker", "--limit", "0"], ">= 1"),
        (["seed"], "looked in aflw2000: {tmp}"),
        (["plot", "--benchmark", "aflw2000", "--out", "{tmp}/plots"], "no results"),
        (["plot", "--benchmark", "aflw2000", "--out", "{tmp}/plots", "--ext", "gif"], "invalid choice"),
        (["prepare", "aflw2000", "--source", "{tmp}/none", "--out", "{tmp}/data"], "none"),
        (["prepare", "npz", "--source", "{file}", "--out", "{tmp}/data"], "--benchmark"),
        (["submit", "{broken}"], "config.json"),
    ],
)
def test_leaderboard_refuses_careless_values_in_one_line(argv, fragment, files, capsys, monkeypatch):
    monkeypatch.delenv("LEADERBOARD_DATA_AFLW2000", raising=False)
    argv = [a.format(**files) for a in argv] + ["--results", files["tmp"]]
    _refused(leaderboard_main, argv, capsys, fragment.format(**files))


def test_the_library_refuses_a_batch_size_that_would_never_end(tmp_path):
    from leaderboard.service.evaluation import evaluate

    for size in (0, -5):
        with pytest.raises(ValueError, match="batch_size must be at least 1"):
            evaluate(MODEL, "aflw2000", batch_size=size)


def test_results_that_is_a_file_is_refused_before_or_after_the_verb(files, capsys):
    for argv in (["--results", files["file"], "table"], ["table", "--results", files["file"]]):
        _refused(leaderboard_main, argv, capsys, "is a file")


def test_plot_png_works_or_says_what_to_install(tmp_path, capsys):
    """``plot --ext png`` writes PNGs when kaleido can export, else one line naming what to install."""
    from tests.conftest import fill_leaderboard

    fill_leaderboard(tmp_path, (MODEL,))
    capsys.readouterr()
    argv = ["plot", "--benchmark", "aflw2000", "--out", str(tmp_path / "plots"), "--ext", "png"]
    code, out, err = _run(leaderboard_main, [*argv, "--results", str(tmp_path)], capsys)
    # Where the test set-up installed Debian's chromium, kaleido must export: no fallback hides a breakage.
    if code == 0 or Path("/usr/bin/chromium").exists():
        assert code == 0, err
        written = json.loads(out)
        assert len(written) == 5 and all(Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
        # As wide as the Space's figures, at twice the pixels: legible (plotly's default is 700 px).
        assert all(int.from_bytes(Path(p).read_bytes()[16:20], "big") == 2 * PNG_WIDTH for p in written)
    else:  # no Chrome or Chromium on this machine: one line saying what to install
        assert code == 2 and err.count("\n") == 1 and "chromium" in err, err


def test_the_commands_as_typed_print_one_line(tmp_path):
    """The real entry points (a fresh interpreter each): the issue's hanging and crashing values."""
    for argv in (
        ["fsanet", "train", "--model", "fsanet_caps_1x1", "--train", "d", "--out", "o", "--batch-size", "0"],
        ["leaderboard", "evaluate", "--model", MODEL, "--benchmark", "aflw2000", "--device", "banana"],
        ["fsanet", "export", "fsanet_caps_1x1.nope", "--format", "onnx", "--out", "o.onnx"],
        ["fsanet", "predict", "x.jpg", "--model", "nope"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""


# ------------------------------------------------------------------------- named pipes, devices, sockets
@pytest.fixture
def special(tmp_path: Path) -> dict[str, str]:
    """A named pipe, a link to a character device (never the device itself: an unfixed command would
    replace whatever path it is given), and a model folder."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "full").symlink_to("/dev/full")
    model = fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), tmp_path / "model")
    return {"fifo": str(fifo), "full": str(tmp_path / "full"), "model": str(model), "tmp": str(tmp_path)}


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["export", "{model}", "--out", "{fifo}"], "--out {fifo} is a named pipe (FIFO)"),
        (["export", "{model}", "--out", "{full}"], "--out {full} is a character device"),
        (["export", "{fifo}", "--out", "{tmp}/m.onnx"], "{fifo} is a named pipe"),
        (["convert", "{model}/config.json", "{fifo}"], "out_dir {fifo} is a named pipe"),
        (["predict", "{fifo}", "--out", "{fifo}"], "--out {fifo} is a named pipe"),
        (["predict", "{fifo}", "--model", "{fifo}"], "--model {fifo} is a named pipe"),
        (["train", "--model", "ssrnet_md", "--train", "d", "--out", "{fifo}"], "--out {fifo} is a named"),
    ],
)
def test_named_pipes_and_devices_are_refused_and_left_untouched(argv, fragment, special, capsys):
    before = sorted(Path(special["tmp"]).iterdir())
    _refused(fsanet_main, [a.format(**special) for a in argv], capsys, fragment.format(**special))
    assert stat.S_ISFIFO(os.stat(special["fifo"]).st_mode)
    assert stat.S_ISCHR(os.stat(special["full"]).st_mode) and Path(special["full"]).is_symlink()
    assert sorted(Path(special["tmp"]).iterdir()) == before, "nothing written, nothing replaced"


@pytest.mark.parametrize(
    "verb",
    [
        ["predict", "{fifo}"],
        ["convert", "{fifo}", "{tmp}/out"],
        ["train", "--model", "ssrnet_md", "--train", "{fifo}", "--out", "{tmp}/out"],
        ["bench", "--models", "ssrnet_md", "--batches", "1", "--repeats", "1", "--out", "{fifo}"],
    ],
)
def test_a_named_pipe_is_refused_before_anything_opens_it(verb, special):
    _pipe_refused_in_a_fresh_interpreter("fsanet", [a.format(**special) for a in verb], special, "")
    assert not (Path(special["tmp"]) / "out").exists()


@pytest.mark.parametrize("kind", ["npz", "aflw2000", "biwi"])
def test_prepare_refuses_a_named_pipe_as_its_source_before_reading_it(kind, special):
    """``leaderboard prepare npz --source FIFO`` hung reading the pipe: refused by its type, in one line, and
    nothing made."""
    out, board = Path(special["tmp"]) / "out", Path(special["tmp"]) / "board"
    benchmark = "biwi" if kind == "biwi" else "aflw2000"
    argv = ["prepare", kind, "--source", special["fifo"], "--out", str(out), "--benchmark", benchmark]
    argv += ["--results", str(board)]
    _pipe_refused_in_a_fresh_interpreter("leaderboard", argv, special, "--source ")
    assert not out.exists() and not board.exists()


def _pipe_refused_in_a_fresh_interpreter(module: str, argv: list[str], special: dict, flag: str) -> None:
    """Opening a named pipe blocks until someone opens its other end: the command runs in a fresh
    interpreter, so a hang fails the test instead of holding up the suite."""
    result = subprocess.run(
        [sys.executable, "-m", module, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"{flag}{special['fifo']} is a named pipe (FIFO), not a regular file or folder" in result.stderr
    assert stat.S_ISFIFO(os.stat(special["fifo"]).st_mode)


def test_prepare_refuses_a_named_pipe_or_a_device_as_its_out(special, files, capsys):
    for target, kind in ((special["fifo"], "a named pipe (FIFO)"), (special["full"], "a character device")):
        argv = ["prepare", "npz", "--source", files["file"], "--benchmark", "aflw2000", "--out", target]
        _refused(leaderboard_main, [*argv, "--results", special["tmp"]], capsys, f"--out {target} is {kind}")
    assert stat.S_ISFIFO(os.stat(special["fifo"]).st_mode)
    assert stat.S_ISCHR(os.stat(special["full"]).st_mode) and Path(special["full"]).is_symlink()


# ---------------------------------------------------------------------------------- where things live


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict[str, Path]:
    """The 16 AFLW2000 samples prepared with ``--out`` outside the board, which is named after the verb."""
    base = tmp_path_factory.mktemp("board")
    board, data = base / "board", base / "elsewhere" / "aflw2000"
    argv = ["prepare", "aflw2000", "--source", str(require_shared(AFLW)), "--out", str(data)]
    assert leaderboard_main([*argv, "--results", str(board)]) == 0
    return {"board": board, "data": data}


def test_every_verb_finds_the_data_where_prepare_put_it(prepared, capsys, monkeypatch):
    from leaderboard.protocol.loading import present_benchmarks

    monkeypatch.delenv("LEADERBOARD_DATA_AFLW2000", raising=False)
    board = str(prepared["board"])
    assert present_benchmarks(board) == ["aflw2000"]  # what `worker --results` evaluates on
    capsys.readouterr()
    argv = ["evaluate", "--model", MODEL, "--benchmark", "aflw2000", "--no-robustness", "--no-progress"]
    assert leaderboard_main(["--results", board, *argv]) == 0  # before the verb
    first = json.loads(capsys.readouterr().out)
    assert first["n"] == 16 and not first["cached"]
    assert leaderboard_main([*argv, "--results", board]) == 0  # after it: the same board, the same result
    assert json.loads(capsys.readouterr().out)["cached"]
    assert leaderboard_main(["seed", "--models", MODEL, "--results", board]) == 0
    seeded = json.loads(capsys.readouterr().out)
    assert seeded["benchmarks"] == ["aflw2000"] and seeded["evaluated"][0]["model"] == MODEL


def test_evaluate_of_a_broken_model_folder_is_one_line(prepared, files, capsys):
    argv = [
        "evaluate",
        "--model",
        files["broken"],
        "--benchmark",
        "aflw2000",
        "--results",
        str(prepared["board"]),
    ]
    _refused(leaderboard_main, argv, capsys, "config.json")


def test_table_filters_by_benchmark(prepared, tmp_path, capsys):
    from leaderboard.protocol.data import write_dataset
    from leaderboard.protocol.importers import aflw2000_rows

    rows = list(aflw2000_rows(AFLW))[:8]
    other = write_dataset(rows, tmp_path / "mini", {"benchmark": "mini8"})
    board = str(prepared["board"])
    argv = ["evaluate", "--model", MODEL, "--benchmark", str(other), "--no-robustness", "--no-progress"]
    assert leaderboard_main([*argv, "--results", board]) == 0
    capsys.readouterr()
    # mini8 states no protocol: ranked with every model only, as in the Space
    for benchmark, flags in (("aflw2000", []), ("mini8", ["--all"])):
        argv = ["table", "--format", "json", "--benchmark", benchmark, "--results", board, *flags]
        assert leaderboard_main(argv) == 0
        rows = json.loads(capsys.readouterr().out)
        assert rows and rows[0]["model"] == MODEL and rows[0]["rank"] == 1
    assert leaderboard_main(["table", "--benchmark", "mini8", "--results", board]) == 2
    assert "no ranked results for mini8" in capsys.readouterr().err
    # registered, no results yet: said, not an empty table
    assert leaderboard_main(["table", "--format", "json", "--benchmark", "biwi", "--results", board]) == 2
    assert "no ranked results for biwi" in capsys.readouterr().err
    empty = str(tmp_path / "no-board")
    assert (
        leaderboard_main(["table", "--results", empty]) == 2
        and "no results on the board" in capsys.readouterr().err
    )


def test_retry_requeues_failed_requests_only(tmp_path, capsys, monkeypatch):
    import fsanet
    from leaderboard.service.submission import submit
    from leaderboard.storage.backends import LocalBackend
    from leaderboard.storage.requests import RequestStore

    monkeypatch.delenv("REQUESTS_REPO", raising=False)
    fsanet.create_model("fsanet_caps_1x1").save_pretrained(tmp_path / "mine")
    requests = RequestStore(LocalBackend(tmp_path / "board"))
    request = submit(tmp_path / "mine", name="me/mine", queue=requests)
    board = ["--results", str(tmp_path / "board")]
    for status in ("pending", "running", "finished"):
        requests.update(
            request.id, lambda record, status=status: record.model_copy(update={"status": status})
        )
        _refused(leaderboard_main, ["retry", request.id, *board], capsys, f"is {status}")
        assert requests.get(request.id).status == status
    failed = {"status": "failed", "reason": "out of memory"}
    requests.update(request.id, lambda record: record.model_copy(update=failed))
    assert leaderboard_main(["retry", request.id, *board]) == 0
    assert requests.get(request.id).status == "pending"


def test_an_unusable_result_file_is_reported_once(prepared, tmp_path):
    import shutil

    board = tmp_path / "board"
    shutil.copytree(prepared["board"] / "results", board / "results")
    (board / "results" / "broken.json").write_text("{ not json")
    for verb in (["table"], ["plot", "--benchmark", "aflw2000", "--out", str(tmp_path / "plots")]):
        result = subprocess.run(
            [sys.executable, "-m", "leaderboard", *verb, "--results", str(board)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr.count("broken.json") == 1, result.stderr


def test_a_training_run_folder_stands_for_its_latest_model(tmp_path):
    """``--model runs/x`` (the folder given to ``train --out``) means ``runs/x/model``; the leaderboard's
    ``evaluate --model runs/x`` is exercised on a real run in ``tests/test_training.py``."""
    import fsanet

    model = fsanet.create_model("fsanet_caps_1x1")
    model.save_pretrained(tmp_path / "run" / "model")
    assert fsanet.model_identity(fsanet.load_model(str(tmp_path / "run"))) == fsanet.model_identity(model)
