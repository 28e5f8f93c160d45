"""Board integrity, tried as a hostile user would: a row belongs to the weights and config that made it, and
official rows cannot be touched. Every case ends with the official rows byte-for-byte unchanged and a
one-line answer; the Space's ``/submit``, the CLI and the worker share these checks
(``submit_directory`` is what both front ends call, and the worker validates again in its child)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

import fsanet
from fsanet.models.weights import weights_identity
from leaderboard.cli import main as leaderboard_main
from leaderboard.display.downloads import format_table
from leaderboard.errors import SubmissionError
from leaderboard.service.evaluation import evaluate
from leaderboard.service.submission import submit_directory
from leaderboard.service.worker import Worker, run_worker
from leaderboard.storage.requests import Request, RequestStore
from leaderboard.storage.results import ResultsStore
from tests.conftest import OFFICIAL, ROOT, require_shared, write_result
from tests.test_leaderboard_submissions import (  # noqa: F401  (the board fixture)
    board,
    board_table,
    stored_files,
    synthetic_benchmark,
)

OFFICIAL_MODEL = "fsanet_caps_1x1.300w_lp"
SCORES = {"mae": 3.0, "mae_yaw": 2.0, "mae_pitch": 3.0, "mae_roll": 4.0, "n": 200, "n_dropped": 0}


def _official_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "results" / "official").glob("*.json"))}


@pytest.fixture
def seeded(board):  # noqa: F811
    """The board with the official row of ``fsanet_caps_1x1.300w_lp`` on the synthetic benchmark."""
    require_shared(OFFICIAL)
    evaluation = evaluate(OFFICIAL_MODEL, "aflw2000", progress=False, robustness=False)
    assert evaluation.key.namespace == "official"
    return _official_bytes(board)


def _copy(model: fsanet.PoseModel, folder: Path, dtype: torch.dtype = torch.float32, **config) -> Path:
    """``model`` saved by hand as a hostile user would: its tensors as ``dtype``, its config changed."""
    folder.mkdir(parents=True)
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps({**model.config, **config}))
    return folder


def _refused(folder: Path, name: str, match: str) -> str:
    with pytest.raises(SubmissionError, match=match) as caught:
        submit_directory(folder, name=name)
    assert "\n" not in str(caught.value)
    return str(caught.value)


# ----------------------------------------------------------------------------------- the weights identity
def test_the_identity_covers_what_the_model_computes_not_how_the_file_encodes_it(tmp_path):
    model = fsanet.create_model("ssrnet_md")
    torch.manual_seed(0)
    with torch.no_grad():  # values a float16 holds exactly, so that the float16 copy is lossless
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter).to(torch.float16).float())
    state = model.state_dict()
    reference = weights_identity(state)
    for dtype in (torch.float64, torch.float16):
        copy = load_file(str(_copy(model, tmp_path / str(dtype), dtype) / "model.safetensors"))
        assert weights_identity(copy) == reference, dtype
    metadata = tmp_path / "metadata.safetensors"
    save_file(dict(reversed(list(state.items()))), str(metadata), metadata={"note": "anything"})
    assert weights_identity(load_file(str(metadata))) == reference
    negative_zero = {k: (v * 0 - 0.0 if k.endswith("bias") else v) for k, v in state.items()}
    zero = {k: (v * 0 if k.endswith("bias") else v) for k, v in state.items()}
    assert weights_identity(negative_zero) == weights_identity(zero)  # -0.0 computes as +0.0
    nudged = dict(state)
    key = next(k for k, v in state.items() if v.is_floating_point())
    nudged[key] = torch.nextafter(state[key], torch.full_like(state[key], np.inf))
    assert weights_identity(nudged) != reference  # one ulp is another model
    loaded = fsanet.load_model(str(_copy(model, tmp_path / "f64-folder", torch.float64)))
    assert fsanet.model_identity(loaded) == fsanet.model_identity(model)  # the file's and the module's
    described = dict(model.config, name="x", trained_on="BIWI 70%", protocol="protocol 2", method="Mine")
    assert fsanet.models.registry.config_identity(described) == fsanet.model_identity(model).config


# ------------------------------------------------------------------------- the cases, one by one
def test_the_official_row_cannot_be_replaced_by_its_own_weights_in_disguise(seeded, board, tmp_path):  # noqa: F811
    official = fsanet.load_model(OFFICIAL_MODEL)
    disguised = _copy(
        official, tmp_path / "disguised", torch.float64, trained_on="BIWI", protocol="protocol 2"
    )
    message = _refused(disguised, f"{OFFICIAL_MODEL}/", "official model name")
    assert repr(OFFICIAL_MODEL) in message  # names the official name it imitates
    message = _refused(disguised, "my-caps", "already on the board as the official row")
    assert repr(OFFICIAL_MODEL) in message
    assert RequestStore().list() == ([], [])
    cached = evaluate(OFFICIAL_MODEL, "aflw2000", progress=False, robustness=False)
    assert cached.cached and cached.row.model_protocol == "protocol 1"
    assert _official_bytes(board) == seeded


def test_a_request_smuggled_past_validation_cannot_shadow_an_official_row(seeded, board, tmp_path):  # noqa: F811
    """Written straight into the store (an old version, a hand edit): the worker rejects it, for good."""
    official = fsanet.load_model(OFFICIAL_MODEL)
    folder = _copy(official, tmp_path / "smuggled", torch.float64)
    identity = fsanet.model_identity(official)
    record = {
        "id": identity.key,
        "identity": {"weights": identity.weights, "config": identity.config},
        "model_name": "smuggled",
        "submitter": "someone",
        "status": "pending",
        "created": "2000-01-01",
        "attempts": [],
    }
    assert RequestStore().add(Request.model_validate(record), stored_files(folder), lambda _: None) is None
    (done,) = run_worker()
    assert done.status == "failed" and "already on the board as the official row" in done.reason
    assert _official_bytes(board) == seeded and not (board / "results" / "community").exists()


@pytest.mark.parametrize(
    "name",
    [
        "fsanet_caps_1x1.300w_lp/",
        "fsanet_caps_1x1.300w_lp.",
        "fsanet-fusion.300w-lp",
        "whenet.300w_lp_panoptic/",
        "FSANET_CAPS_1X1.300W_LP",
        "ｆｓａｎｅｔ_caps_1x1.300w_lp",  # full-width letters: NFKC makes them plain
        "ssrnet-md",
    ],
)
def test_look_alikes_of_official_names_are_refused_with_the_name_they_imitate(board, tmp_path, name):  # noqa: F811
    folder = fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), tmp_path / "m")
    message = _refused(folder, name, "official model name")
    assert any(repr(official) in message for official in fsanet.list_models(pretrained=True) + ["ssrnet_md"])


def test_names_that_normalise_alike_are_one_name(board, tmp_path):  # noqa: F811
    torch.manual_seed(1)
    first = fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), tmp_path / "a")
    torch.manual_seed(2)
    second = fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), tmp_path / "b")
    request = submit_directory(first, name="slugdup/x")
    message = _refused(second, "slugdup+x", "already taken")
    assert request.id in message
    (done,) = run_worker()
    assert done.status == "finished" and board_table()["model"].tolist() == ["slugdup/x"]
    _refused(second, "SlugDup_X", "already taken")  # the finished request and its row hold it


def test_lossless_reencodings_are_the_same_submission(board, tmp_path):  # noqa: F811
    model = fsanet.create_model("ssrnet_md")
    with torch.no_grad():  # values float16 holds exactly: its copy is lossless too
        for parameter in model.parameters():
            parameter.copy_(parameter.to(torch.float16).float())
    request = submit_directory(fsanet.save_pretrained(model, tmp_path / "plain"), name="alice/ssr")
    copies = {
        "float64": _copy(model, tmp_path / "f64", torch.float64, name="other"),
        "float16": _copy(model, tmp_path / "f16", torch.float16),
        "metadata": _copy(
            model, tmp_path / "meta", torch.float32, trained_on="300W-LP", protocol="protocol 1"
        ),
        # the recipe it has anyway, spelled out: the same config
        "recipe": _copy(model, tmp_path / "recipe", preprocess={"box": "margin", "size": 64, "color": "rgb"}),
    }
    for kind, copy in copies.items():
        assert request.id in _refused(copy, f"bob/ssr-{kind}", "already submitted as request"), kind
    assert len(RequestStore().list()[0]) == 1


def test_one_bad_result_file_never_breaks_the_board(board, tmp_path, capsys):  # noqa: F811
    store = ResultsStore()
    scores = {"mae": 3.0, "mae_yaw": 2.0, "mae_pitch": 3.0, "mae_roll": 4.0, "n": 200, "n_dropped": 0}
    robust = [{"angle": 0.0, "flip": False, "mae": 3.0, "geodesic_mean": 4.0}]
    write_result(
        store, "good", {**scores, "robustness": robust, "geodesic_mean": 4.0}, model_protocol="protocol 1"
    )
    good = next((board / "results" / "community").glob("*.json"))
    bad = json.loads(good.read_text())
    bad["config"] |= {"model_name": "bad-fields", "weights_identity": "f" * 64}
    bad["results"]["aflw2000"] |= {"geodesic_mean": "x", "robustness": [1, 2]}
    (good.parent / "bad-fields.json").write_text(json.dumps(bad))
    (board / "results" / "community" / "required.json").write_text(
        json.dumps({"config": {"model_name": "r", "namespace": "community"}, "results": {}})
    )
    snapshot = ResultsStore().snapshot()
    problems = snapshot.problems
    assert sorted(row.model_name for row in snapshot.rows) == ["bad-fields", "good"]
    dropped = [p for p in problems if "dropped" in p]
    assert len(dropped) == 1 and "geodesic_mean" in dropped[0] and "robustness" in dropped[0]
    assert any(p.startswith("skipped community/required.json: config.weights_identity") for p in problems)
    table = board_table()
    assert set(table["model"]) == {"good", "bad-fields"} and table["geodesic_mean"].isna().sum() == 1
    assert leaderboard_main(["plot", "--benchmark", "aflw2000", "--out", str(tmp_path / "plots")]) == 0
    from space import board as space_board

    view = space_board.board_table().data  # what the Space shows (two decimals styled)
    assert set(view[view["source"] == "measured here"]["model"]) == {"good", "bad-fields"}
    assert len(space_board.board_plots("aflw2000")) == 5


def test_store_files_over_the_cap_are_never_read(board):  # noqa: F811
    """A 2 GB file (sparse: no disk used) in results/ and in requests/: listed, skipped, not read (the
    process's peak memory barely moves)."""
    for folder in ("results/community", "requests"):
        (board / folder).mkdir(parents=True, exist_ok=True)
        with (board / folder / "huge.json").open("wb") as handle:
            handle.truncate(2 * 1024**3)
    script = (
        "import json, resource\n"
        "from leaderboard.storage.results import ResultsStore\n"
        "from leaderboard.storage.requests import RequestStore\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "problems = [*ResultsStore().snapshot().problems, *RequestStore().list()[1]]\n"
        "growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024\n"
        "print(json.dumps([problems, growth]))\n"
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT)
    problems, growth_mb = json.loads(result.stdout)
    assert growth_mb < 100, growth_mb
    assert len(problems) == 2 and all("over the" in p and "huge.json" in p for p in problems)


def test_a_flood_delays_only_its_sender(board, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LEADERBOARD_MAX_PENDING", "3")
    folders = []
    for index in range(6):
        torch.manual_seed(index)
        folders.append(fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), tmp_path / f"m{index}"))
    flood = [submit_directory(folders[i], name=f"flood-{i}", submitter="mallory") for i in range(3)]
    _refused_as = pytest.raises(SubmissionError, match="you have 3 requests waiting or running")
    with _refused_as:
        submit_directory(folders[3], name="flood-3", submitter="mallory")
    other = submit_directory(folders[4], name="alice-1", submitter="alice")  # newest of all
    order = [r.id for r in Worker().claimable()]
    assert order == [flood[0].id, other.id, flood[1].id, flood[2].id]  # round-robin

    monkeypatch.setenv("LEADERBOARD_MAX_PENDING", "100")
    monkeypatch.setenv("LEADERBOARD_SUBMISSIONS_PER_HOUR", "4")  # mallory has used 3 (a refusal costs none)
    submit_directory(folders[5], name="flood-5", submitter="mallory")
    with pytest.raises(SubmissionError, match="4 submissions in the last hour .at most 4.: try again in"):
        submit_directory(folders[3], name="flood-3", submitter="mallory")


def test_downloads_are_safe_for_spreadsheets(board):  # noqa: F811
    scores = {"mae": 3.0, "mae_yaw": 2.0, "mae_pitch": 3.0, "mae_roll": 4.0, "n": 200, "n_dropped": 0}
    write_result(ResultsStore(), "=HYPERLINK(1)", scores, method='=HYPERLINK("http://x","y")')
    csv = format_table(board_table(), "csv")
    frame = pd.read_csv(__import__("io").StringIO(csv))
    assert frame["method"][0] == '\'=HYPERLINK("http://x","y")' and frame["model"][0] == "'=HYPERLINK(1)"
    assert frame["mae"][0] == 3.0 and frame["n"][0] == 200  # numbers stay numbers
    assert not any(line.split(",")[0].startswith(("=", "+", "-", "@")) for line in csv.splitlines())


def test_a_submission_that_fails_midway_leaves_nothing(board, tmp_path, monkeypatch):  # noqa: F811
    folder = fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), tmp_path / "m")

    def disk_full(path, data):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr("leaderboard.storage.backends.atomic_write", disk_full)
        _refused(folder, "alice/ssr", "could not be stored .No space left on device")
    assert not (board / "requests").exists() or not list((board / "requests").iterdir())
    assert not (board / "submissions").exists() or not list((board / "submissions").iterdir())
    assert submit_directory(folder, name="alice/ssr").status == "pending"  # nothing was half-taken


def test_the_reported_peak_memory_is_the_evaluation_childs_own(board, tmp_path):  # noqa: F811
    """The worker holds 1.5 GB more than the child ever will: the child's report does not include it
    (``ru_maxrss`` would: Linux carries it across ``exec``)."""
    folder = fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), tmp_path / "m")
    submit_directory(folder, name="alice/ssr")
    ballast = np.ones(int(1.5 * 2**30), np.uint8)  # resident: every page written
    (done,) = run_worker()
    worker_mb = int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024
    assert done.status == "finished" and ballast[-1] == 1
    assert 50 < done.results[0].peak_rss_mb < worker_mb - 1000, (done.results, worker_mb)


def test_two_submissions_racing_for_one_name_leave_one(board, tmp_path):  # noqa: F811
    """Both pass the first look (the queue is empty for both); the store's atomic write looks again."""
    import threading

    folders = []
    for seed in (3, 4):
        torch.manual_seed(seed)
        folders.append(fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), tmp_path / f"m{seed}"))
    start, answers = threading.Barrier(2), []

    def submit(folder: Path, name: str) -> None:
        start.wait()
        try:
            answers.append(submit_directory(folder, name=name, submitter=name).model_name)
        except SubmissionError as error:
            answers.append(str(error))

    pairs = zip(folders, ("race/x", "race+x"), strict=True)
    threads = [threading.Thread(target=submit, args=args) for args in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(answer in ("race/x", "race+x") for answer in answers) == 1, answers
    assert any("already taken" in answer for answer in answers) and len(RequestStore().list()[0]) == 1


def test_a_model_card_carries_the_boards_numbers_for_its_weights(seeded, tmp_path):
    """``save_pretrained`` asks the leaderboard (an ``fsanet.model_card_results`` entry point) for the rows
    holding these weights and config: the official row's MAE is in the card, under any name."""
    from leaderboard.storage.results import ResultsStore

    model = fsanet.load_model(OFFICIAL_MODEL)
    model.name = "renamed"
    card = (fsanet.save_pretrained(model, tmp_path / "saved") / "README.md").read_text()
    (row,) = ResultsStore().snapshot().rows
    assert "## Leaderboard" in card and f"| aflw2000 | {row.mae_yaw:.2f} |" in card
    other = fsanet.save_pretrained(fsanet.create_model("fsanet_caps_1x1"), tmp_path / "untrained")
    assert "## Leaderboard" not in (other / "README.md").read_text()  # other weights: no row, no numbers


# ---------------------------------------------------------------------------------- equivalent models
def _ensemble(members: list[fsanet.PoseModel], folder: Path) -> Path:
    """``members`` (their weights as they are) saved as one ensemble submission."""
    folder.mkdir(parents=True)
    config = {"architecture": "ensemble", "members": [member.config for member in members]}
    tensors = {
        f"members.{i}.{k}": v.clone() for i, m in enumerate(members) for k, v in m.state_dict().items()
    }
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config))
    return folder


FUSION = "fsanet_fusion.300w_lp"


def test_equivalent_models_are_answered_with_the_existing_row(board, tmp_path, monkeypatch):  # noqa: F811
    """The official weights as an ensemble of one, as an ensemble of two copies, and the official fusion with
    a pre-processing change no member uses: other identities (each is queued), the same predictions (each is
    answered with the official row, named, and gets no row); a model of its own is scored (about 2 min)."""
    require_shared(OFFICIAL)
    monkeypatch.setenv("LEADERBOARD_MAX_PENDING", "4")
    for name in (OFFICIAL_MODEL, FUSION):
        evaluate(name, "aflw2000", progress=False, robustness=False)
    official, fusion = fsanet.load_model(OFFICIAL_MODEL), fsanet.load_model(FUSION)
    members = [dict(member) for member in fusion.config["members"]]
    members[1]["preprocess"] = {"interpolation": "area"}  # the ensemble crops as its first member does
    torch.manual_seed(5)
    folders = {
        "one-of-official": _ensemble([official], tmp_path / "one"),
        "two-of-official": _ensemble([official, official], tmp_path / "two"),
        "fusion-area": _copy(fusion, tmp_path / "fusion", members=members),
        "my-own": fsanet.save_pretrained(fsanet.create_model("fsanet_caps_1x1"), tmp_path / "own"),
    }
    for name, folder in folders.items():
        assert submit_directory(folder, name=name).status == "pending"  # not the same identity as a row
    done = {request.model_name: request for request in run_worker()}
    for name, row in (
        ("one-of-official", OFFICIAL_MODEL),
        ("two-of-official", OFFICIAL_MODEL),
        ("fusion-area", FUSION),
    ):
        request = done[name]
        assert request.status == "failed" and request.equivalent_to == row, (name, request.reason)
        assert f"equal those of the official row {row!r}" in request.reason and request.results == []
        assert "equivalent_to" in request.public() and "submitter" not in request.public()
    assert done["my-own"].status == "finished"
    community = [row.model_name for row in ResultsStore().snapshot().rows if row.namespace == "community"]
    assert community == ["my-own"]
    # The library and the CLI answer a local folder the same way, and store nothing.
    again = evaluate(str(folders["two-of-official"]), "aflw2000", progress=False, robustness=False)
    assert again.equivalent and again.row.model_name == OFFICIAL_MODEL and again.cached


# ---------------------------------------------------------------------------------------- limits that hold
def _distinct_models(tmp_path: Path, count: int) -> list[Path]:
    folders = []
    for index in range(count):
        torch.manual_seed(100 + index)
        folders.append(fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), tmp_path / f"m{index}"))
    return folders


def test_six_parallel_submits_by_one_user_leave_three_waiting(board, tmp_path, monkeypatch):  # noqa: F811
    """Six ``python -m leaderboard submit`` at once by one user, three requests allowed to wait: the count is
    checked inside the store's atomic write, so exactly three are queued (about 30 s)."""
    import os

    monkeypatch.setenv("LEADERBOARD_MAX_PENDING", "3")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    commands = [
        [sys.executable, "-m", "leaderboard", "submit", str(folder), "--name", f"six/{index}", "--json"]
        for index, folder in enumerate(_distinct_models(tmp_path, 6))
    ]
    running = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for command in commands
    ]
    answers = [(process.communicate(timeout=600), process.returncode) for process in running]
    accepted = [out for (out, _), code in answers if code == 0]
    refused = [err.strip() for (_, err), code in answers if code == 2]
    assert len(accepted) == 3 and len(refused) == 3, answers
    assert all(line.startswith("error: you have 3 requests waiting or running") for line in refused), refused
    requests = RequestStore().list()[0]
    assert len(requests) == 3 and {r.status for r in requests} == {"pending"}
    assert all("submitter" not in json.loads(out) for out in accepted)  # what the CLI prints: the public view


def test_limits_are_checked_before_any_download_and_junk_costs_no_quota(board, tmp_path, monkeypatch):  # noqa: F811
    from huggingface_hub import HfApi

    from leaderboard.service.submission import submit_repo

    folders = _distinct_models(tmp_path, 4)
    monkeypatch.setenv("LEADERBOARD_MAX_PENDING", "1")
    submit_directory(folders[0], name="mallory/0", submitter="mallory")

    def no_download(*args, **kwargs):
        raise AssertionError("the Hub was asked before the limits were checked")

    monkeypatch.setattr(HfApi, "model_info", no_download)
    with pytest.raises(SubmissionError, match="you have 1 requests waiting or running"):
        submit_repo("mallory/big-model", submitter="mallory")

    monkeypatch.setenv("LEADERBOARD_MAX_PENDING", "100")
    monkeypatch.setenv("LEADERBOARD_SUBMISSIONS_PER_HOUR", "3")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "config.json").write_text("{}")
    (junk / "model.safetensors").write_bytes(b"not weights")
    for _ in range(5):  # refused by validation: none of them counts
        _refused_as(junk, "mallory", "config")
    submit_directory(folders[1], name="mallory/1", submitter="mallory")
    submit_directory(folders[2], name="mallory/2", submitter="mallory")
    message = _refused_as(folders[3], "mallory", "3 submissions in the last hour .at most 3.")
    assert "try again in" in message
    assert len(RequestStore().list()[0]) == 3


def _refused_as(folder: Path, submitter: str, match: str) -> str:
    with pytest.raises(SubmissionError, match=match) as caught:
        submit_directory(folder, name=f"{submitter}/{folder.name}", submitter=submitter)
    return str(caught.value)


# ------------------------------------------------------------------------------------- full identities
def test_a_shared_identity_prefix_never_replaces_a_row_or_a_request(board, tmp_path, monkeypatch):  # noqa: F811
    """Two models whose identities share the short key: both rows stay on the board (file names carry the
    full identity), and the second request is refused, never written over the first."""
    from fsanet.models.registry import ModelIdentity
    from leaderboard.storage.rows import MeasuredRow

    store = ResultsStore()
    base = {"benchmark": "aflw2000", "dataset_revision": "r", "code_version": "2", "namespace": "community"}
    for name, weights in (("first", "ab" * 8 + "0" * 48), ("second", "ab" * 8 + "1" * 48)):
        row = MeasuredRow.model_validate(
            {**base, **SCORES, "model_name": name, "weights_identity": weights, "config_identity": "c" * 64}
        )
        store.write(row, pd.DataFrame({"sample_id": ["s0"]}))
    assert sorted(row.model_name for row in store.snapshot().rows) == ["first", "second"]

    monkeypatch.setattr(ModelIdentity, "key", property(lambda identity: "shared-key"))
    first, second = _distinct_models(tmp_path, 2)
    held = submit_directory(first, name="first/model")
    with pytest.raises(SubmissionError, match="request id shared-key is held by another model"):
        submit_directory(second, name="second/model")
    assert RequestStore().get("shared-key").identity == held.identity


def test_what_anyone_reads_of_a_request_names_no_submitter_and_no_worker(
    board,  # noqa: F811
    tmp_path,
    monkeypatch,
    capsys,
):
    """A running request (a lease and an attempt naming its worker's host and process) as the queue listing,
    the per-request lookup, ``leaderboard requests`` and the Space's queue and "your submission" show it."""
    import socket

    from space import board as space_board

    (folder,) = _distinct_models(tmp_path, 1)
    submit_directory(folder, name="alice/x", submitter="hf:alice-the-submitter")
    worker = Worker()
    claimed = worker.claim_next()
    assert claimed.lease.worker == worker.worker_id and claimed.attempts[-1].worker == worker.worker_id
    queue = RequestStore()
    monkeypatch.setattr(space_board._Reloads, "listed_at", -float("inf"))
    readable = {
        "listing": json.dumps(queue.public_list()[0]),
        "lookup": json.dumps(queue.public_get(claimed.id)),
        "space queue": space_board.requests_table().to_json(),
        "space follow-up": json.dumps(space_board.your_request({"id": claimed.id})),
    }
    capsys.readouterr()
    for flags in ([], ["--json"]):  # sentences for people, the public records for machines
        assert leaderboard_main(["requests", *flags]) == 0
        assert leaderboard_main(["requests", "--id", claimed.id, *flags]) == 0
        readable[f"leaderboard requests {flags}"] = capsys.readouterr().out
    for where, text in readable.items():
        assert claimed.id in text, where
        for secret in ("alice-the-submitter", worker.worker_id, socket.gethostname()):
            assert secret not in text, (where, secret)
