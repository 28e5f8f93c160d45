"""The Space through gradio_client, against ``python app.py`` launched on a free loopback port."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import BOARD_MODELS, DATA, ROOT, require_shared
from tests.videos import two_astronauts_clip

SAMPLES = DATA / "aflw2000-sample16"
MAX_PHOTO_MB = 2  # the Space's cap on photos
MAX_VIDEO_MB = 4  # on videos
MAX_UPLOAD_MB = 8  # a submission's cap, the largest upload (a timm-backbone variant is ~5 MB)
READY_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServedApp(str):
    """The URL of a served app, with the server's process id and its log (stdout and stderr)."""

    pid: int
    log: Path


@contextlib.contextmanager
def serve_app(
    leaderboard_dir: Path, log: Path, app_dir: Path = ROOT, python: str = sys.executable, **extra_env: str
) -> Iterator[ServedApp]:
    """``python app.py`` as users start it, on a free port; yields its URL (and ``.pid``) once it answers.

    ``app_dir`` and ``python``: another tree and interpreter (the Space bundle in its own virtualenv)."""
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "LEADERBOARD_DIR": str(leaderboard_dir),
        "SPACE_MAX_PHOTO_MB": str(MAX_PHOTO_MB),
        "SPACE_MAX_VIDEO_MB": str(MAX_VIDEO_MB),
        "LEADERBOARD_MAX_SUBMISSION_MB": str(MAX_UPLOAD_MB),
        # As behind a Space's proxy: a test client says its address in X-Forwarded-For (client_at), as the
        # proxy would write it, so several clients of one test are several clients to the Space.
        "SPACE_PROXY_HOPS": "1",
        # Tests of the board compare it with a fixed directory: no background worker changing it meanwhile
        # (the tests of the worker in the Space turn it back on).
        "LEADERBOARD_WORKER": "0",
        "LEADERBOARD_SEED": "0",  # nor seeding at start (tests/test_space_seed.py turns it on)
        **extra_env,
    }
    url = ServedApp(f"http://127.0.0.1:{port}/")
    with log.open("wb") as out:
        process = subprocess.Popen([python, "app.py"], cwd=app_dir, env=env, stdout=out, stderr=out)
    url.pid, url.log = process.pid, log
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with {process.returncode}:\n{log.read_text()}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url + "gradio_api/info", timeout=2) as response:
                    if response.status == 200:
                        break
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not serve within {READY_TIMEOUT_S} s:\n{log.read_text()}")
            time.sleep(0.25)
        yield url
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """End a served app: SIGTERM (it cleans up), SIGKILL after 10 s."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def app_url(board_dir, tmp_path_factory) -> Iterator[str]:
    import fsanet

    fsanet.load_model("fsanet_fusion.300w_lp")  # converts the weights into the session cache once
    with serve_app(board_dir, tmp_path_factory.mktemp("app") / "app.log") as url:
        yield url


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def client_at(url: str, address: str, **options):
    """A gradio_client whose requests come from ``address``, as the Space's proxy would report them."""
    from gradio_client import Client

    return Client(url, verbose=False, headers={"X-Forwarded-For": address}, **options)


def predict(client, path: Path | str, model: str = "fsanet_fusion.300w_lp", detector: str | None = None):
    """``/predict`` with the library's default detector unless told: the CLI and ``estimate`` use it too."""
    from gradio_client import handle_file

    from fsanet.detect.detectors import DEFAULT_DETECTOR

    return client.predict(handle_file(str(path)), model, detector or DEFAULT_DETECTOR, api_name="/predict")


def test_predict_matches_library_on_real_photos(client):
    from fsanet.pipeline.estimate import estimate

    photos = sorted(require_shared(SAMPLES).glob("*.jpg"))[:4]
    assert photos
    for photo in photos:
        annotated, payload = predict(client, photo)
        expected = estimate(photo)
        assert payload["image"] == photo.name
        assert len(payload["faces"]) == len(expected.faces) >= 1
        for got, want in zip(payload["faces"], expected.faces, strict=True):
            assert got["box"] == pytest.approx(list(want.box), abs=0.06)
            for axis in ("yaw", "pitch", "roll"):
                assert got[axis] == pytest.approx(getattr(want, axis), abs=0.006), (photo.name, axis)
            assert got["model"] == "fsanet_fusion.300w_lp"
        drawn = np.asarray(Image.open(annotated).convert("RGB"), np.int16)
        original = np.asarray(Image.open(photo).convert("RGB"), np.int16)
        assert drawn.shape == original.shape
        assert np.abs(drawn - original).max() > 100  # the axes and the box are drawn on it


def test_predict_other_model_and_detector(client):
    photo = sorted(require_shared(SAMPLES).glob("*.jpg"))[0]
    _, payload = predict(client, photo, model="ssrnet_md.300w_lp", detector="haar")
    assert payload["faces"] and {f["model"] for f in payload["faces"]} == {"ssrnet_md.300w_lp"}


def _png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_bad_uploads_get_clear_errors_and_server_keeps_serving(client, tmp_path):
    photo = sorted(require_shared(SAMPLES).glob("*.jpg"))[0]
    cases = {
        "a.jpg": (b"this is a text file, not a photo\n" * 10, "not an image"),
        "b.jpg": (photo.read_bytes()[: photo.stat().st_size // 3], "truncated"),
        "c.png": (_png_bytes(9000, 8000), "72,000,000 pixels"),
        "d.jpg": (  # over every cap: gradio_client checks the page's own cap before sending it
            os.urandom((MAX_UPLOAD_MB + 1) * 1024 * 1024),
            f"exceeds the maximum file size of {MAX_UPLOAD_MB * 1024 * 1024}",
        ),
        # Under Gradio's cap (a submission this size passes) but over the photos' own cap.
        "e.jpg": (os.urandom((MAX_PHOTO_MB + 1) * 1024 * 1024), f"more than the cap of {MAX_PHOTO_MB} mb"),
    }
    for name, (data, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(Exception) as caught:
            predict(client, path)
        assert words in str(caught.value).lower(), (name, str(caught.value))
    _, payload = predict(client, photo)
    assert len(payload["faces"]) == 1


def test_leaderboard_endpoint_filters_the_stored_results(client, board_dir):
    from leaderboard.display.columns import board_frame
    from leaderboard.storage.results import ResultsStore

    expected = board_frame(ResultsStore(board_dir).snapshot())
    assert sorted(expected["model"]) == sorted(BOARD_MODELS)
    table = client.predict("", "all", api_name="/leaderboard")
    frame = pd.DataFrame(table["data"], columns=table["headers"])
    frame = frame[frame["source"] == "measured here"]  # the papers' numbers follow (test below)
    assert list(frame["model"]) == list(expected["model"])
    assert frame["mean"].astype(float).tolist() == pytest.approx(expected["mae"].round(2).tolist(), abs=1e-9)
    assert list(frame["rank"]) == [1, 2] and all(n == "16 ⚠" for n in frame["n"])  # 16 samples: flagged
    only = client.predict("SSRNET", "aflw2000", api_name="/leaderboard")
    assert [row[only["headers"].index("model")] for row in only["data"]] == ["ssrnet_md.300w_lp"]
    biwi = client.predict("", "biwi", api_name="/leaderboard")  # no results there: only the papers' numbers
    assert {row[biwi["headers"].index("source")] for row in biwi["data"]} == {"reported"}
    wide = client.predict("", "aflw2000", True, ["weights", "geodesic"], api_name="/leaderboard")
    assert wide["headers"][-2:] == ["weights", "geodesic"]
    weights = [row[-2] for row in wide["data"] if row[wide["headers"].index("source")] == "measured here"]
    assert sorted(weights) == sorted(w[:12] for w in expected["weights_identity"])


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_results_download(client, board_dir, fmt):
    from leaderboard.display.columns import board_frame
    from leaderboard.protocol.reported import reported_rows
    from leaderboard.storage.results import ResultsStore

    path = Path(client.predict(fmt, api_name="/results"))
    assert path.suffix == f".{fmt}"
    frame = pd.read_csv(path) if fmt == "csv" else pd.DataFrame(json.loads(path.read_text()))
    expected = board_frame(ResultsStore(board_dir).snapshot())
    measured, papers = frame[frame["kind"] == "measured"], frame[frame["kind"] == "reported"]
    assert list(measured["model"]) == list(expected["model"]) and list(measured["rank"]) == [1, 2]
    assert measured["mae"].tolist() == expected["mae"].tolist()  # every digit: rounding is for the screen
    assert measured["n"].tolist() == [16, 16]  # a number, not "16 ⚠"
    assert len(papers) == len(reported_rows()) and "measured_minus_reported" in frame.columns
    assert papers["rank"].isna().all() and papers["n"].isna().all()  # the papers' numbers: never ranked


def test_the_board_shows_the_papers_numbers_unranked_and_set_apart(client, board_dir):
    """The Leaderboard tab's table (as the page receives it): each benchmark's measured rows ranked, then
    the numbers its papers report, unranked, styled apart."""
    from leaderboard.protocol.reported import reported_rows

    table = client.predict("", "aflw2000", api_name="/leaderboard")
    frame = pd.DataFrame(table["data"], columns=table["headers"])
    papers = [row for row in reported_rows() if row.benchmark == "aflw2000"]
    assert list(frame["source"]) == ["measured here"] * len(BOARD_MODELS) + ["reported"] * len(papers)
    reported = frame[frame["source"] == "reported"]
    assert sorted(reported["model"]) == sorted(row.model_name for row in papers)
    assert {"TriNet", "img2pose", "SynergyNet", "6DRepNet", "HopeNet", "WHENet"} <= set(reported["method"])
    assert frame["rank"].tolist()[: len(BOARD_MODELS)] == [1, 2] and reported["rank"].isna().all()
    styles = table["metadata"]["styling"]  # per cell: what the page draws
    first = len(BOARD_MODELS)
    assert "italic" in styles[first][0] and not any("italic" in cell for cell in styles[0])


@pytest.mark.slow
def test_eight_clients_times_25_predictions_in_parallel(app_url):

    photo = sorted(require_shared(SAMPLES).glob("*.jpg"))[1]

    def one_client(index: int) -> list[int]:
        client = client_at(app_url, f"198.51.100.{index + 1}")
        return [len(predict(client, photo)[1]["faces"]) for _ in range(25)]

    with ThreadPoolExecutor(8) as pool:
        counts = [n for result in pool.map(one_client, range(8)) for n in result]
    assert counts == [1] * 200


def test_submit_validates_at_once_and_queues(client, tmp_path):
    from gradio_client import handle_file

    import fsanet

    variant = fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), tmp_path / "variant")
    files = [handle_file(str(variant / "config.json")), handle_file(str(variant / "model.safetensors"))]

    with pytest.raises(Exception, match="missing model.safetensors"):
        client.predict(files[:1], "only_config", "", "", api_name="/submit")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_bytes((variant / "config.json").read_bytes())
    (broken / "model.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(Exception, match="(?i)safetensors"):
        client.predict(
            [handle_file(str(broken / n)) for n in ("config.json", "model.safetensors")],
            "broken_variant", "", "", api_name="/submit",
        )  # fmt: skip
    with pytest.raises(Exception, match="cannot fetch"):
        client.predict([], "", "nobody/no-such-repo", "main", api_name="/submit")
    for path in (
        "/etc",
        "../../etc",
        ".",
        "/proc/self",
    ):  # a Hub id only: the server's folders are never read
        with pytest.raises(Exception, match="is not a Hub repo id") as caught:
            client.predict([], "", path, "", api_name="/submit")
        assert "Traceback" not in str(caught.value)
    with pytest.raises(Exception, match="official model name"):
        client.predict(files, "ssrnet_md.300w_lp", "", "", api_name="/submit")

    request, message = client.predict(files, "my_ssrnet", "", "", "300W-LP", "protocol 1", api_name="/submit")
    assert request["model_name"] == "my_ssrnet" and request["status"] == "pending"
    assert (request["trained_on"], request["protocol"]) == ("300W-LP", "protocol 1")  # the form's, recorded
    assert request["id"] in message and "my_ssrnet" in message
    identity = fsanet.model_identity(fsanet.load_model(str(variant)))
    assert request["identity"] == {"weights": identity.weights, "config": identity.config}
    listed = client.predict(api_name="/requests")
    assert [row[0] for row in listed["data"]] == [request["id"]]
    # The Space runs no worker here: the queue says what the request waits for.
    assert listed["data"][0][listed["headers"].index("status")] == (
        "pending: waiting for a worker (python -m leaderboard worker --watch)"
    )
    with pytest.raises(Exception, match=f"already submitted as request {request['id']}"):
        client.predict(files, "my_ssrnet_again", "", "", api_name="/submit")


def test_offline_without_weights_starts_and_says_how_to_provide_them(tmp_path):
    """No network, no cached weights, no mirror: every tab renders and /predict explains what to set."""
    from gradio_client import Client

    env = {
        "FSANET_CACHE": str(tmp_path / "empty-cache"),
        "FSANET_OFFICIAL_MIRROR": str(tmp_path / "no-mirror"),
    }
    with serve_app(tmp_path / "board", tmp_path / "app.log", **env) as url:
        client = Client(url, verbose=False)
        photo = sorted(require_shared(SAMPLES).glob("*.jpg"))[0]
        with pytest.raises(Exception) as caught:
            predict(client, photo)
        for hint in ("FSANET_OFFICIAL_MIRROR", "FSANET_CACHE", "FSANET_HUB_REPO"):
            assert hint in str(caught.value)
        board = client.predict("", "all", api_name="/leaderboard")  # no results: only the papers' numbers
        assert {row[board["headers"].index("source")] for row in board["data"]} == {"reported"}
        with urllib.request.urlopen(url + "config", timeout=10) as response:
            config = response.read().decode()
        assert all(tab in config for tab in ("Photo", "Webcam", "Leaderboard", "Submit"))
        assert "No benchmark data" in config and "LEADERBOARD_DATA_AFLW2000" in config  # what to set


@pytest.mark.slow
def test_the_readmes_client_example_runs_against_the_space(tmp_path):
    """The README's gradio_client block as written, against ``python app.py`` with a fake Hub holding
    ``user/fsanet-variant``: every call succeeds and the video arrives named after the upload."""
    import threading

    import torch

    import fsanet
    from tests.test_hub_push import FakeHub
    from tests.test_readme import EXAMPLES

    (block,) = [e for e in EXAMPLES if "from gradio_client import" in e.code]
    work = tmp_path / "work"
    work.mkdir()
    photo = sorted(require_shared(SAMPLES).glob("*.jpg"))[0]
    (work / "photo.jpg").write_bytes(photo.read_bytes())
    _clip(work / "clip.mp4", [np.asarray(Image.open(photo).convert("RGB").resize((224, 224)))] * 3)
    for seed, folder in ((1, work), (2, tmp_path / "hub-variant")):  # two variants: two identities
        torch.manual_seed(seed)
        fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), folder)
    hub = FakeHub()
    threading.Thread(target=hub.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    hub.add_repo(
        "user/fsanet-variant",
        {
            name: (tmp_path / "hub-variant" / name).read_bytes()
            for name in ("config.json", "model.safetensors")
        },
    )
    hub_env = {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
    }
    try:
        with serve_app(tmp_path / "board", tmp_path / "app.log", **hub_env) as url:
            code = block.code.replace("http://127.0.0.1:7860/", url)
            result = subprocess.run(
                [sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=600
            )
    finally:
        hub.shutdown()
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert "clip_pose.mp4 3 frames" in result.stdout
    assert "my_variant" in result.stdout and "my_hub_variant" in result.stdout  # both queued


def _readme_endpoints() -> list[str]:
    """The endpoints of the README's table (its rows start with | `/name` |)."""
    return re.findall(r"^\| `(/\w+)` \|", (ROOT / "README.md").read_text(), flags=re.MULTILINE)


def test_view_api_offers_exactly_the_readme_endpoints_with_named_outputs(client):
    from space.ui import PUBLIC_ENDPOINTS

    api = client.view_api(print_info=False, return_format="dict")
    assert sorted(api["named_endpoints"]) == sorted(_readme_endpoints()) == sorted(PUBLIC_ENDPOINTS)
    assert not api["unnamed_endpoints"]
    for name, endpoint in api["named_endpoints"].items():
        for value in endpoint["returns"] + endpoint["parameters"]:
            assert value["label"] and not re.fullmatch(r"(value|parameter)_\d+", value["label"]), (
                name,
                value,
            )
    with pytest.raises(Exception, match="webcam"):  # browser-only: refused at once, no hang
        client.predict(None, api_name="/webcam")


def test_view_api_describes_the_parameters_as_the_readme_does(client):
    from space.ui import VIDEO_API_HELP

    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    technical = endpoints["/leaderboard"]["parameters"][3]
    readme_row = next(
        line
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("| `/leaderboard` |")
    )
    listed = re.search(r"technical columns \(`\[\]`; any of (.*?)\)", readme_row).group(1)
    assert re.findall(r"`([^`]+)`", listed) == technical["type"]["items"]["enum"]
    (video,) = endpoints["/video"]["parameters"][:1]
    assert video["python_type"]["description"] == VIDEO_API_HELP  # not Gradio's FileData docstring
    assert "FileData" not in json.dumps(video["python_type"])


def _clip(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    from fsanet.pipeline.video import H264Writer

    with H264Writer(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def test_every_endpoint_works_with_only_its_required_arguments(client, tmp_path):
    from gradio_client import handle_file

    photo = sorted(require_shared(SAMPLES).glob("*.jpg"))[0]
    _, faces = client.predict(handle_file(str(photo)), api_name="/predict")
    assert len(faces["faces"]) == 1
    frame = np.asarray(Image.open(photo).convert("RGB").resize((224, 224)))
    video = _clip(tmp_path / "clip.mp4", [frame] * 3)
    annotated, frames = client.predict(handle_file(str(video)), api_name="/video")
    assert isinstance(annotated, str) and Path(annotated).name == "clip_pose.mp4"  # as the CLI names it
    assert [f["frame"] for f in frames["frames"]] == [0, 1, 2]
    assert all(len(f["faces"]) == 1 for f in frames["frames"])
    import av

    with av.open(annotated) as written:
        stream = written.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.frames == 3  # what browsers play
    assert client.predict(api_name="/leaderboard")["headers"]
    assert len(client.predict(api_name="/plots")) == 5
    assert Path(client.predict(api_name="/results")).read_text().startswith("rank,model,")
    with pytest.raises(Exception, match="upload config.json and model.safetensors, or give a Hub repo id"):
        client.predict(api_name="/submit")  # nothing to submit: the project's message
    assert "data" in client.predict(api_name="/requests")


def test_cli_and_space_video_give_the_same_faces_in_every_frame(client, tmp_path, capsys):
    from gradio_client import handle_file

    from fsanet.cli.main import main

    video = two_astronauts_clip(tmp_path / "two.mp4")
    assert main(["predict", str(video), "--json"]) == 0
    cli = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    _, space = client.predict(handle_file(str(video)), api_name="/video")
    assert [f["frame"] for f in space["frames"]] == [line["frame"] for line in cli] == [0, 1, 2]
    for got, want in zip(space["frames"], cli, strict=True):
        assert len(got["faces"]) == len(want["faces"]) == 2
        for got_face, want_face in zip(got["faces"], want["faces"], strict=True):
            assert got_face["box"] == pytest.approx(want_face["box"], abs=0.11)  # both rounded to 0.1
            assert [got_face[k] for k in ("yaw", "pitch", "roll")] == pytest.approx(
                [want_face[k] for k in ("yaw", "pitch", "roll")], abs=0.01
            )


def test_hostile_images_get_the_same_outcome_from_the_cli_and_the_space(
    client, app_url, tmp_path, monkeypatch, capsys
):

    from fsanet.cli.main import main
    from tests.hostile_images import FACES, hostile_set

    photo = sorted(require_shared(SAMPLES).glob("*.jpg"))[0]
    expected = hostile_set(photo, tmp_path)
    predict(client, photo)  # warm: the baseline below includes the model and one normal photo
    baseline_kb = _peak_rss_kb(app_url.pid)
    monkeypatch.chdir(tmp_path)  # the CLI names files as given: relative, like the Space's upload names
    log_start = len(app_url.log.read_text())
    refused = []
    for name, outcome in expected.items():
        assert main(["predict", name, "--json"]) == (0 if outcome == FACES else 2)
        out, err = capsys.readouterr()
        try:
            _, payload = predict(client, tmp_path / name)
        except Exception as error:  # noqa: BLE001 (gradio_client raises AppError)
            space = str(error)
            assert outcome != FACES, (name, space)
            assert outcome in space and str(tmp_path) not in space and "/tmp/" not in space, (name, space)
            assert err.strip() == f"error: {space}", name  # the CLI's message, word for word, naming it once
            assert space.count(name) == 1, space
            refused.append(space)
            continue
        assert outcome == FACES, (name, payload)
        cli = json.loads(out)
        assert len(payload["faces"]) == len(cli["faces"]) >= 1, name
        for got, want in zip(payload["faces"], cli["faces"], strict=True):
            assert [got[k] for k in ("yaw", "pitch", "roll")] == pytest.approx(
                [want[k] for k in ("yaw", "pitch", "roll")], abs=0.01
            ), name
    _, payload = predict(client, photo)
    assert len(payload["faces"]) == 1, "the server keeps serving"
    # Decoding either bomb (or the 7999² PNG as RGB, or the 8000x7999 JPEG) would cost 190 MB to 2.7 GB more
    # than a 450² photo.
    assert _peak_rss_kb(app_url.pid) - baseline_kb < 100_000
    # The server's log: one line per refused upload, no traceback.
    assert _log_lines_since(app_url, log_start) == [f"/predict refused: {message}" for message in refused]


def _log_lines_since(app_url: ServedApp, start: int) -> list[str]:
    """The server's log lines written after ``start`` characters, once the last one is flushed."""
    time.sleep(0.5)
    return app_url.log.read_text()[start:].splitlines()


def _peak_rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))


def test_group_photo_faces_are_numbered_left_to_right_in_image_and_json(client):
    from fsanet.pipeline.drawing import face_labels
    from fsanet.pipeline.estimate import FacePose, PoseResult
    from space.examples import example_images

    group = next(p for p in example_images() if Path(p).name == "group.jpg")
    annotated, payload = predict(client, group)
    lefts = [face["box"][0] for face in payload["faces"]]
    assert len(lefts) == 3 and lefts == sorted(lefts)
    yaws = [face["yaw"] for face in payload["faces"]]
    assert yaws[0] < -20 and yaws[2] > 20, "the cameraman, then his mirror image: opposite yaws"
    faces = [FacePose(tuple(f["box"]), f["score"], 0, 0, 0, "m") for f in payload["faces"]]
    drawn = np.asarray(Image.open(annotated).convert("RGB"))
    for number, (text, (x1, y1, x2, y2), _) in enumerate(
        face_labels(PoseResult(faces, (1536, 512), 3), drawn.shape), 1
    ):
        assert text == str(number)
        patch = drawn[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1].astype(int)
        assert (patch.max(axis=2) < 40).mean() > 0.4 and (patch.min(axis=2) > 180).any(), number


def test_results_downloads_leave_no_folder_behind(client):
    before = set(Path(tempfile.gettempdir()).iterdir())
    paths = {client.predict("csv", api_name="/results") for _ in range(3)}
    created = set(Path(tempfile.gettempdir()).iterdir()) - before
    assert not [p for p in created if p.name.startswith("fsanet-results-")], created
    assert len({Path(p).read_text() for p in paths}) == 1


def _heavy_png(path: Path) -> Path:
    """A cheap 64 MP upload (8000x8000 gray, ~70 kB) that costs a full decode."""
    Image.new("L", (8000, 8000), 128).save(path)
    return path


def test_an_upload_over_what_the_inputs_accept_is_refused_before_it_is_read(app_url):
    """The server's own bound on Gradio's upload route, from the request's size alone."""
    import httpx

    size = (MAX_UPLOAD_MB + 1) * 2**20
    answer = httpx.post(f"{app_url}gradio_api/upload", files=[("files", ("big.jpg", b"\0" * size))])
    assert answer.status_code == 413
    assert f"more than the {MAX_UPLOAD_MB} MB this Space accepts" in answer.text


@pytest.mark.slow
def test_one_client_cannot_hold_more_than_its_share_from_many_sessions(app_url, tmp_path):
    """Five sessions of one client (one address) send huge photos: one is served, the others are refused at
    once; a session id is the client's own choice, so it counts for nothing."""
    from gradio_client import handle_file

    heavy = _heavy_png(tmp_path / "heavy.png")
    sessions = [client_at(app_url, "198.51.100.77") for _ in range(5)]
    jobs = [session.submit(handle_file(str(heavy)), api_name="/predict") for session in sessions]
    outcomes = []
    for job in jobs:
        try:
            job.result()
            outcomes.append("done")
        except Exception as error:  # noqa: BLE001
            outcomes.append(str(error))
    refused = [o for o in outcomes if "already have a large photo or a video being processed" in o]
    assert outcomes.count("done") >= 1 and len(refused) >= 3, outcomes
    assert len(predict(sessions[0], sorted(require_shared(SAMPLES).glob("*.jpg"))[0])[1]["faces"]) == 1


@pytest.mark.slow
def test_sixteen_huge_uploads_do_not_starve_a_normal_photo(app_url, tmp_path):
    """16 clients send 64 MP uploads; a normal photo sent after them is answered while most of them wait or
    have been turned away (the heavy lane keeps one running and SPACE_HEAVY_QUEUE waiting)."""
    from gradio_client import handle_file

    from space.settings import heavy_queue

    heavy = _heavy_png(tmp_path / "heavy.png")
    photo = sorted(require_shared(SAMPLES).glob("*.jpg"))[0]
    clients = [client_at(app_url, f"203.0.113.{i + 1}") for i in range(17)]
    jobs = [c.submit(handle_file(str(heavy)), api_name="/predict") for c in clients[:16]]
    time.sleep(0.5)  # the huge ones are uploaded and waiting
    _, payload = predict(clients[16], photo)
    served_before = sum(job.done() and job.exception() is None for job in jobs)
    assert len(payload["faces"]) == 1
    assert served_before <= 8, f"{served_before} of 16 huge uploads were served before the normal photo"
    outcomes = []
    for job in jobs:
        try:
            outcomes.append(len(job.result()[1]["faces"]))
        except Exception as error:  # noqa: BLE001
            outcomes.append(str(error))
    busy = [o for o in outcomes if isinstance(o, str) and "busy with other large photos and videos" in o]
    assert len(busy) >= 16 - 1 - heavy_queue() - 2, outcomes  # at most the lane's places were taken
    assert len(busy) + outcomes.count(0) == 16, outcomes  # the others ran (a gray square has no face)


def test_video_over_the_duration_cap_is_refused_before_any_frame_is_processed(client, tmp_path):
    from gradio_client import handle_file

    from space.settings import max_video_seconds

    frames = [np.full((64, 64, 3), i, np.uint8) for i in range(int(2 * (max_video_seconds() + 1)))]
    video = _clip(tmp_path / "long.mp4", frames, fps=2.0)  # tiny file, too long
    with pytest.raises(Exception, match=rf"long.mp4 lasts .* more than the cap of {max_video_seconds():g} s"):
        client.predict(handle_file(str(video)), api_name="/video")
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_bytes(b"not a video at all" * 100)
    with pytest.raises(Exception, match="notes.mp4 is not a video FFmpeg can read") as caught:
        client.predict(handle_file(str(not_a_video)), api_name="/video")
    assert str(tmp_path) not in str(caught.value)


def _raw_call(app_url: str, api: str, data: list) -> dict:
    """What a plain HTTP client (curl) gets from ``/gradio_api/call/<api>``: the final event's data."""
    request = urllib.request.Request(
        f"{app_url}gradio_api/call/{api}",
        data=json.dumps({"data": data}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        event_id = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{app_url}gradio_api/call/{api}/{event_id}", timeout=60) as response:
        lines = response.read().decode().splitlines()
    return json.loads([line for line in lines if line.startswith("data:")][-1][len("data:") :])


def test_requests_gradio_refuses_carry_a_message_and_log_one_line(app_url):
    """Gradio's own checks (a file never uploaded, a payload that is not a file, missing inputs) answer
    ``{"error": null}`` with a traceback in the log unless the Space turns them into its one-line refusal."""
    not_uploaded = {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}
    cases = [
        ("predict", [not_uploaded, "fsanet_fusion.300w_lp", "mtcnn"], "was not uploaded to this Space"),
        ("predict", ["not a file", "fsanet_fusion.300w_lp", "mtcnn"], "does not fit this endpoint's inputs"),
        ("video", [not_uploaded], "didn't receive enough input values (needed: 3, got: 1)"),
        ("submit", [[not_uploaded], "x", "", "", "", "not stated"], "was not uploaded to this Space"),
    ]
    start = len(app_url.log.read_text())
    messages = []
    for api, data, words in cases:
        answer = _raw_call(app_url, api, data)
        assert answer["error"] and words in answer["error"], (api, answer)
        assert "/etc" not in answer["error"] and "/tmp" not in answer["error"], answer
        messages.append(f"/{api} refused: {answer['error']}")
    assert _log_lines_since(app_url, start) == messages


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _joined(app_url: str, fn_index: int, data: list) -> dict:
    """What the page's way in (``queue/join``, then the event stream) answers an event: its last message."""
    status, answer = _post(
        f"{app_url}gradio_api/queue/join", {"fn_index": fn_index, "session_hash": "hostile", "data": data}
    )
    assert status == 200, answer
    with urllib.request.urlopen(f"{app_url}gradio_api/queue/data?session_hash=hostile", timeout=60) as stream:
        for line in stream:
            message = json.loads(line[len(b"data:") :]) if line.startswith(b"data:") else {}
            if message.get("msg") == "process_completed" and message.get("event_id") == answer["event_id"]:
                return message
    raise AssertionError(f"no answer to event {fn_index}")


def test_unknown_events_and_misshapen_page_events_get_the_one_line_refusal(app_url):
    """``fn_index`` 99 or -1, and the page's private events sent what the page never sends: a one-line
    answer and one log line each, never Gradio's KeyError (HTTP 500) or an "Internal error" traceback."""
    from space.refusals import BROWSER_ONLY, MISFIT

    with urllib.request.urlopen(f"{app_url}config", timeout=10) as response:
        events = json.load(response)["dependencies"]
    by_name = {event["api_name"]: event["id"] for event in events if event.get("api_name")}
    browser_only = next(event["id"] for event in events if not event["backend_fn"])
    start = len(app_url.log.read_text())
    for index in (99, -1):
        for route in ("queue/join", "run/predict"):
            body = {"fn_index": index, "session_hash": "hostile", "data": []}
            status, answer = _post(f"{app_url}gradio_api/{route}", body)
            assert status == 404, answer
            assert answer["detail"] == f"This Space has no event {index}: call a named endpoint"
    cases = [
        (by_name["faces_rows"], ["not a result"], f"{MISFIT}: a result JSON object was expected"),
        (by_name["stale_status"], [{"faces": "abc"}], f"{MISFIT}: a result JSON object was expected (faces:"),
        (by_name["video_status"], [{"frames": 7}], f"{MISFIT}: a result JSON object was expected (frames:"),
        (by_name["load_example"], [None], MISFIT),  # Gradio's own loader of the Examples
        (browser_only, ["fsanet_fusion.300w_lp", "mtcnn"], BROWSER_ONLY),
    ]
    refused = []
    for index, data, words in cases:
        answer = _joined(app_url, index, data)
        assert not answer["success"] and answer["output"]["error"].startswith(words), (index, answer)
        assert answer["output"]["title"] == "Request refused"
        refused.append(answer["output"]["error"])
    lines = _log_lines_since(app_url, start)
    assert "Traceback" not in "\n".join(lines) and not [line for line in lines if "failed" in line], lines
    messages = [line.partition(" refused: ")[2] for line in lines if " refused: " in line]
    assert messages[-len(refused) :] == refused
    assert sum("fn_index" in line and "no such event" in line for line in lines) == 4


def test_a_damaged_video_gives_its_readable_frames_and_the_clis_line(client, tmp_path, capsys, monkeypatch):
    from gradio_client import handle_file

    from fsanet.cli.main import main
    from tests.videos import damaged_clip

    damaged_clip(tmp_path / "holiday.mp4", frames=12, damaged=range(4, 6))
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "holiday.mp4", "--json"]) == 2
    cli = capsys.readouterr()
    _, payload = client.predict(handle_file(str(tmp_path / "holiday.mp4")), api_name="/video")
    assert [frame["frame"] for frame in payload["frames"]] == list(range(10))
    assert len(cli.out.splitlines()) == 10
    assert payload["unreadable_frames"] == 2
    assert cli.err.strip() == f"error: {payload['message']}"
    assert (
        payload["message"]
        == "holiday.mp4 is damaged: 2 of its 12 frames could not be decoded (the other 10 were estimated)"
    )


def test_board_endpoints_refuse_badly_shaped_input_in_one_line(app_url):
    """``/plots`` with a 2 MB search and ``/submit`` with every field ``None`` were "Internal error" with a
    traceback in the log: each board endpoint answers what it was sent, or refuses it in one line."""
    from leaderboard.display.views import MAX_SEARCH

    huge = "(" * 2_000_000
    refused = [
        ("plots", ["all", huge, False], f"a search is at most {MAX_SEARCH} characters"),
        ("leaderboard", [huge, "all", False, []], f"a search is at most {MAX_SEARCH} characters"),
        ("submit", [None] * 6, "upload config.json and model.safetensors, or give a Hub repo id"),
        ("submit", [[], None, "../../etc", None, None, None], "'../../etc' is not a Hub repo id"),
        ("results", [None], "unknown format None"),
        ("leaderboard", ["", "all", False, ["secret"]], "not in the list of choices"),
    ]
    start = len(app_url.log.read_text())
    for api, data, words in refused:
        answer = _raw_call(app_url, api, data)
        assert answer["error"] and words in answer["error"] and "\n" not in answer["error"], (api, answer)
    for api, data in (("leaderboard", [None, None, None, []]), ("plots", [None, None, None])):
        answer = _raw_call(app_url, api, data)  # None is what an empty field sends: the board as it is
        assert isinstance(answer, list) and answer, (api, answer)
    lines = _log_lines_since(app_url, start)
    assert "Traceback" not in "\n".join(lines) and not [line for line in lines if " failed" in line], lines
    assert len([line for line in lines if " refused: " in line]) == len(refused)
