"""The Space through gradio_client, against ``python app.py`` launched on a free loopback port."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
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

SAMPLES = DATA / "aflw2000-sample16"
MAX_UPLOAD_MB = 4
READY_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_app(leaderboard_dir: Path, log: Path, **extra_env: str) -> Iterator[str]:
    """``python app.py`` as users start it, on a free port; yields its URL once it answers."""
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "LEADERBOARD_DIR": str(leaderboard_dir),
        "SPACE_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB),
        **extra_env,
    }
    url = f"http://127.0.0.1:{port}/"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=out)
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


def predict(client, path: Path | str, model: str = "fsanet_fusion.300w_lp", detector: str = "mtcnn"):
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), model, detector, api_name="/predict")


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
        "a.jpg": (b"this is a text file, not a photo\n" * 10, "cannot identify image file"),
        "b.jpg": (photo.read_bytes()[: photo.stat().st_size // 3], "truncated"),
        "c.png": (_png_bytes(9000, 8000), "72,000,000 pixels"),
        "d.jpg": (
            os.urandom((MAX_UPLOAD_MB + 1) * 1024 * 1024),
            f"exceeds the maximum file size of {MAX_UPLOAD_MB * 1024 * 1024}",
        ),
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
    from leaderboard.store import ResultsStore

    expected = ResultsStore(board_dir).table()
    assert sorted(expected["model"]) == sorted(BOARD_MODELS)
    table = client.predict("", "all", api_name="/leaderboard")
    frame = pd.DataFrame(table["data"], columns=table["headers"])
    assert list(frame["model"]) == list(expected["model"])
    assert frame["mae"].astype(float).tolist() == pytest.approx(expected["mae"].tolist(), abs=1e-6)
    only = client.predict("SSRNET", "aflw2000", api_name="/leaderboard")
    assert [row[0] for row in only["data"]] == ["ssrnet_md.300w_lp"]
    assert client.predict("", "biwi", api_name="/leaderboard")["data"] == []


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_results_download(client, board_dir, fmt):
    from leaderboard.store import ResultsStore

    path = Path(client.predict(fmt, api_name="/results"))
    assert path.suffix == f".{fmt}"
    frame = pd.read_csv(path) if fmt == "csv" else pd.read_json(path, orient="records")
    expected = ResultsStore(board_dir).table()
    assert list(frame["model"]) == list(expected["model"])
    assert frame["mae"].tolist() == pytest.approx(expected["mae"].tolist(), abs=1e-6)


@pytest.mark.slow
def test_eight_clients_times_25_predictions_in_parallel(app_url):
    from gradio_client import Client

    photo = sorted(require_shared(SAMPLES).glob("*.jpg"))[1]

    def one_client(_: int) -> list[int]:
        client = Client(app_url, verbose=False)
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

    request, queue = client.predict(files, "my_ssrnet", "", "", api_name="/submit")
    assert request["model_name"] == "my_ssrnet" and request["status"] == "pending"
    assert request["weights_sha256"] == fsanet.weights_sha256(fsanet.load_model(str(variant)))
    listed = client.predict(api_name="/requests")
    assert [row[0] for row in listed["data"]] == [request["id"]] == [row[0] for row in queue["data"]]


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
        assert client.predict("", "all", api_name="/leaderboard")["data"] == []
        with urllib.request.urlopen(url + "config", timeout=10) as response:
            config = response.read().decode()
        assert all(tab in config for tab in ("Photo", "Webcam", "Leaderboard", "Submit"))
        assert "No benchmark results yet" in config and "python -m leaderboard seed" in config
