"""The Webcam tab's in-page mode: the server's routes, the page's ports of the Python arithmetic, and the tab
in Debian's chromium with a fake camera filming a labelled AFLW2000 photo (angles equal ``/predict``'s, the
processed-frames figure, no request per frame, the fallback to the server stream)."""

from __future__ import annotations

import base64
import gzip
import io
import re
import tarfile

import numpy as np
import pytest

from fsanet.detect.detectors import DEFAULT_DETECTOR as DETECTOR  # every tab's: it runs in the page
from tests.conftest import OFFICIAL, require_shared
from tests.test_space_browser import ARGS, CHROMIUM, SCREENSHOTS, TIMEOUT_MS, _label, camera_space

FUSION = "fsanet_fusion.300w_lp"


# ------------------------------------------------------------------------------------------ onnxruntime-web
def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_web_assets_are_refused_unless_they_are_the_pinned_package(tmp_path):
    from dataclasses import replace

    from space import pinned, webassets

    files = {f"package/dist/{name}": name.encode() * 100 for name in webassets.ORT_WEB_FILES}
    tarball = _tarball(files)
    with pytest.raises(pinned.AssetError, match="expected sha512-"):
        pinned.verified(webassets.ORT_WEB, tarball)
    entry = replace(webassets.ORT_WEB, integrity=pinned.integrity(tarball))
    pinned.write(entry, pinned.verified(entry, tarball), tmp_path)
    folder = tmp_path / webassets.VENDOR
    for name in webassets.ORT_WEB_FILES:
        assert (folder / name).read_bytes() == files[f"package/dist/{name}"]
        assert gzip.decompress((folder / f"{name}.gz").read_bytes()) == files[f"package/dist/{name}"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*webassets.ORT_WEB_FILES, *(f"{name}.gz" for name in webassets.ORT_WEB_FILES)]
    )  # nothing else of the package is kept


# ------------------------------------------------------------------------------------------------ the routes
@pytest.fixture(scope="module")
def client():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from space import inpage, webassets

    if webassets.ort_web_dir() is None:
        pytest.skip("onnxruntime-web is not fetched: run scripts/install.sh (it needs npm)")
    require_shared(OFFICIAL)
    app = FastAPI()
    inpage.add_routes(app)
    return TestClient(app)


def test_config_carries_the_servers_numbers_and_content_named_files(client):
    from fsanet import load_model
    from fsanet.data.recipes import resolved_recipe
    from fsanet.runtime.onnx_engine import export_onnx
    from space import runtime

    response = client.get("/fsanet/webcam/config", params={"model": FUSION, "detector": DETECTOR})
    assert response.status_code == 200, response.text
    config = response.json()
    estimator = runtime.estimator(FUSION, DETECTOR)
    assert config["model"]["recipe"] == resolved_recipe(estimator.recipe, estimator.protocol)
    assert config["detector"]["box_transform"] == list(estimator.detector.box_transform)
    model = client.get("/" + config["model"]["url"])
    assert model.status_code == 200 and "immutable" in model.headers["cache-control"]
    exported = runtime.pose_graph(FUSION)[0].with_name("exported.onnx")
    export_onnx(load_model(FUSION).eval(), exported)
    assert model.content == exported.read_bytes()  # what `python -m fsanet export` writes
    detector = client.get("/" + config["detector"]["url"])
    assert detector.content == estimator.detector.graph_file().read_bytes()


def test_server_only_choices_unknown_names_and_stale_files(client):
    answer = client.get("/fsanet/webcam/config", params={"model": FUSION, "detector": "mtcnn"})
    assert answer.status_code == 200 and answer.json() == {  # an answer: no error in the browser's console
        "error": "the mtcnn detector runs on the server only",
        "server_only": True,
    }
    answer = client.get(
        "/fsanet/webcam/config", params={"model": "../../etc/passwd", "detector": "blazeface"}
    )
    assert answer.status_code == 422 and answer.json()["server_only"] is False
    assert client.get(f"/fsanet/webcam/model/{FUSION}/{'0' * 64}.onnx").status_code == 404
    assert client.get("/fsanet/webcam/detector/mtcnn/abc.onnx").status_code == 404
    assert client.get("/fsanet/static/..%2F..%2Fapp.py").status_code == 404
    assert client.get("/fsanet/static/ort/1.30.0/ort.all.min.mjs").status_code == 404


def test_web_assets_are_sent_gzipped_with_their_media_types(client):
    from space import webassets

    wasm = client.get(
        "/fsanet/static/ort/1.30.0/ort-wasm-simd-threaded.wasm", headers={"Accept-Encoding": "gzip"}
    )
    assert wasm.headers["content-type"] == "application/wasm" and wasm.headers["content-encoding"] == "gzip"
    assert wasm.content == (webassets.ort_web_dir() / "ort-wasm-simd-threaded.wasm").read_bytes()  # decoded
    script = client.get("/fsanet/static/webcam.js")
    assert (
        script.headers["content-type"].startswith("text/javascript")
        and "no-cache" in script.headers["cache-control"]
    )


def test_every_answer_of_the_routes_tells_browsers_not_to_sniff():
    """Scripts, the runtime, graphs, the config and refusals alike: the media type sent is the one used."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from space import inpage, webassets

    app = FastAPI()
    inpage.add_routes(app)
    client = TestClient(app)
    answers = [client.get(f"/fsanet/static/{name}") for name in (*inpage.PAGE_FILES, "missing.js")]
    answers += [
        client.get(f"/fsanet/static/ort/{webassets.ORT_WEB_VERSION}/{webassets.ORT_WEB_FILES[0]}"),
        client.get("/fsanet/webcam/model/nope/0.onnx"),
        client.get("/fsanet/webcam/config?model=nope&detector=mtcnn"),
    ]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    for answer in answers:
        assert answer.headers.get("x-content-type-options") == "nosniff", (answer.url, answer.headers)


# ------------------------------------------------------------------------------------------------ in chromium
@pytest.fixture(scope="module")
def served(board_dir, tmp_path_factory):
    """The Space with the authors' 300W-LP weights only (every ``.biwi`` model fails to load) and a chromium
    whose fake camera films a labelled AFLW2000 photo."""
    from space import webassets

    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: run scripts/install-system-deps.sh (scripts/test.sh does)")
    if webassets.ort_web_dir() is None:
        pytest.skip("onnxruntime-web is not fetched: run scripts/install.sh (it needs npm)")
    from playwright.sync_api import sync_playwright

    space = camera_space(board_dir, tmp_path_factory.mktemp("inpage"))
    with space as (url, clip, photo), sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*ARGS, f"--use-file-for-fake-video-capture={clip}"]
        )
        yield url, browser, photo
        browser.close()


@pytest.fixture
def page(served, request):
    url, browser, _ = served
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.grant_permissions(["camera"], origin=url.rstrip("/"))
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{request.node.name}.png", full_page=True)
    context.close()


def _open_webcam_tab(page, url: str, mode: str = "inpage") -> None:
    page.goto(url)
    page.get_by_role("tab", name="Webcam").click()
    page.wait_for_function(f"document.getElementById('inpage-panel')?.dataset.mode === '{mode}'")


def _frames(page) -> int:
    return page.evaluate("window.fsanetWebcam.stats().frames")


def _wait_frames(page, at_least: int) -> None:
    page.wait_for_function(f"window.fsanetWebcam.stats().frames >= {at_least}")


def _start(page) -> None:
    page.locator("#inpage-start").click()
    _wait_frames(page, 3)


def _pick_detector(page, name: str) -> None:
    from space.choices import DETECTORS

    page.locator("#webcam-detector input").click()
    page.get_by_role("option", name=DETECTORS[name], exact=True).click()


ANGLES = r"face 1: yaw ([-+\d.]+)°\s+pitch ([-+\d.]+)°\s+roll ([-+\d.]+)°"


def test_in_page_angles_equal_predict_on_the_same_picture_with_the_labels_signs(served, page, tmp_path):
    from gradio_client import Client, handle_file

    url, _, photo = served
    _open_webcam_tab(page, url)
    _start(page)
    shown = re.search(ANGLES, page.locator("#inpage-angles").inner_text())
    assert shown, page.locator("#inpage-angles").inner_text()
    snapshot = page.evaluate("window.fsanetWebcam.snapshot()")  # the processed frame's pixels and faces
    picture = tmp_path / "frame.png"
    picture.write_bytes(base64.b64decode(snapshot["png"].split(",", 1)[1]))
    _, predicted = Client(url, verbose=False, ssl_verify=False).predict(
        handle_file(str(picture)), FUSION, DETECTOR, api_name="/predict"
    )
    assert len(predicted["faces"]) == len(snapshot["faces"]) == 1
    face, in_page = predicted["faces"][0], snapshot["faces"][0]
    for key in ("yaw", "pitch", "roll"):
        assert in_page[key] == pytest.approx(face[key], abs=0.5), (key, in_page, face)
    assert np.allclose(in_page["box"], face["box"], atol=1.0)
    shown_angles = [float(v) for v in shown.groups()]
    assert np.allclose(shown_angles, [in_page[k] for k in ("yaw", "pitch", "roll")], atol=2.0)  # frames alike
    assert list(np.sign(shown_angles)) == list(np.sign(_label(photo)[:3]))  # yaw +38, pitch -13.5, roll -13.1


def test_processed_frames_figure_and_stage_times_are_shown(served, page):
    _open_webcam_tab(page, served[0])
    _start(page)
    before = _frames(page)
    _wait_frames(page, before + 10)
    shown = page.locator("#inpage-stats").inner_text()
    found = re.match(r"([\d.]+) processed frames/s · grab [\d.]+ ms · detect [\d.]+ ms · crop [\d.]+ ms · "
                     r"model [\d.]+ ms · draw [\d.]+ ms", shown)  # fmt: skip
    assert found and float(found.group(1)) > 0, shown
    frame = int(re.match(r"frame (\d+): 1 face\(s\)", page.locator("#inpage-angles").inner_text()).group(1))
    assert frame >= before + 10
    assert page.locator("#inpage-canvas").evaluate("c => c.width") > 0


def test_no_request_reaches_the_server_per_frame(served, page):
    _open_webcam_tab(page, served[0])
    _start(page)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    before = _frames(page)
    _wait_frames(page, before + 20)
    assert requests == [], requests  # 20 frames detected, estimated and drawn: no request at all


def test_a_choice_that_fails_is_reported_and_the_page_recovers(served, page):
    from tests.test_space_browser import _pick

    _open_webcam_tab(page, served[0])
    _start(page)
    _pick(page, "webcam-model", "fsanet_fusion.biwi")  # its weights are not on this server
    page.wait_for_function("document.getElementById('inpage-angles').textContent.startsWith('⚠️')")
    assert "fsanet_caps_1x1.biwi" in page.locator("#inpage-angles").inner_text()
    assert page.locator(".toast-body").count() == 0
    _pick(page, "webcam-model", FUSION)
    page.wait_for_function("/^frame \\d+: 1 face/.test(document.getElementById('inpage-angles').textContent)")


def test_a_server_only_detector_switches_to_the_server_stream(served, page):
    _open_webcam_tab(page, served[0])
    _pick_detector(page, "mtcnn")
    page.wait_for_function("document.getElementById('inpage-panel').dataset.mode === 'server'")
    assert "the mtcnn detector runs on the server only" in page.locator("#inpage-mode").inner_text()
    assert page.locator("#webcam-input").is_visible() and not page.locator("#inpage-canvas").is_visible()
    _pick_detector(page, DETECTOR)
    page.wait_for_function("document.getElementById('inpage-panel').dataset.mode === 'inpage'")
    assert not page.locator("#webcam-input").is_visible()


# Counts the in-page video's pending requestVideoFrameCallbacks: one per live frame loop.
COUNT_FRAME_LOOPS = """(() => {
  const pending = new Set();
  const request = HTMLVideoElement.prototype.requestVideoFrameCallback;
  const cancel = HTMLVideoElement.prototype.cancelVideoFrameCallback;
  HTMLVideoElement.prototype.requestVideoFrameCallback = function (callback) {
    let key = null;
    const id = request.call(this, (...args) => { pending.delete(key); return callback(...args); });
    key = `${this.id}#${id}`;
    pending.add(key);
    return id;
  };
  HTMLVideoElement.prototype.cancelVideoFrameCallback = function (id) {
    pending.delete(`${this.id}#${id}`);
    return cancel.call(this, id);
  };
  window.frameLoops = () => [...pending].filter((key) => key.startsWith("inpage-video#")).length;
})();"""


def test_start_stop_start_leaves_one_processing_loop_whatever_the_clicks(served, page):
    page.add_init_script(COUNT_FRAME_LOOPS)
    _open_webcam_tab(page, served[0])
    button = page.locator("#inpage-start")
    _start(page)
    button.click()
    button.click()  # Start -> Stop -> Start
    page.wait_for_function("window.fsanetWebcam.state.running")  # the figures count from here
    _wait_frames(page, 10)
    assert page.evaluate("window.frameLoops()") == 1
    for _ in range(8):  # faster than the camera starts: each click while it starts stops it
        button.click()
    page.wait_for_function("window.fsanetWebcam.state.running")
    _wait_frames(page, 30)
    assert page.evaluate("window.frameLoops()") == 1 and button.inner_text() == "Stop the camera"
    stats = page.evaluate("window.fsanetWebcam.stats()")
    assert stats["frames"] <= stats["camera"], stats  # each camera frame processed at most once


def test_a_server_only_detector_and_back_leaves_a_clean_page_and_no_console_error(served, page):
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    _open_webcam_tab(page, served[0])
    _start(page)
    _wait_frames(page, 10)
    for server_only in ("mtcnn", "haar"):
        _pick_detector(page, server_only)
        page.wait_for_function("document.getElementById('inpage-panel').dataset.mode === 'server'")
        _pick_detector(page, DETECTOR)
        page.wait_for_function("document.getElementById('inpage-panel').dataset.mode === 'inpage'")
        assert page.locator("#inpage-start").inner_text() == "Start the camera"
        assert page.locator("#inpage-stats").inner_text() == "" == page.locator("#inpage-angles").inner_text()
        assert page.locator("#inpage-canvas").evaluate("canvas => canvas.width * canvas.height") == 0
        assert page.evaluate("window.fsanetWebcam.stats().frames") == 0
    assert errors == [], errors
    _start(page)  # and it runs again


@pytest.mark.parametrize("blocked", ["runtime", "webassembly"])
def test_without_webassembly_or_the_runtime_the_tab_streams_to_the_server(served, page, blocked):
    url = served[0]
    if blocked == "runtime":
        page.route("**/fsanet/static/ort/**", lambda route: route.abort())
    else:
        page.add_init_script("delete window.WebAssembly")
    _open_webcam_tab(page, url, mode="server")
    reason = {"runtime": "onnxruntime-web could not start", "webassembly": "this browser has no WebAssembly"}
    assert reason[blocked] in page.locator("#inpage-mode").inner_text()
    webcam = page.locator("#webcam-input")
    webcam.get_by_text("Click to Access Webcam").click()
    webcam.locator("button[aria-label='capture photo']").click()  # "Record": starts streaming
    page.wait_for_function(
        "() => /frame ([3-9]|\\d\\d+): 1 face/.test(document.querySelector('#webcam-angles textarea').value)"
    )


# ----------------------------------------------------------------------- the page's ports of the Python code
@pytest.fixture
def core(served, page):
    _open_webcam_tab(page, served[0])
    return lambda expression, *args: page.evaluate(
        f"([args]) => {{ const core = window.fsanetWebcam.core; return ({expression})(...args); }}",
        [list(args)],
    )


def test_box_transform_and_face_order_equal_the_servers(core):
    from fsanet.detect.detectors import Detection, create_detector
    from fsanet.pipeline.estimate import FacePose, left_to_right

    rng = np.random.default_rng(0)
    detector = create_detector(DETECTOR)
    raw = [Detection(tuple(map(float, b)), float(s)) for b, s in zip(
        np.sort(rng.uniform(-40, 700, (40, 2, 2)), axis=1).transpose(0, 2, 1).reshape(40, 4)[:, [0, 2, 1, 3]],
        rng.uniform(0.3, 1, 40), strict=True)]  # fmt: skip
    detector._detect = lambda image: raw
    expected = detector.detect(np.zeros((480, 640, 3), np.uint8))
    boxes = [v for d in raw for v in d.box]
    got = core(
        "(b, s, t, m) => core.adaptDetections(b, s, t, m, 640, 480)",
        boxes, [d.score for d in raw], list(detector.box_transform), detector.min_score,
    )  # fmt: skip
    assert [g["box"] for g in got] == [list(d.box) for d in expected]  # bit for bit
    faces = [FacePose(d.box, d.score, 0, 0, 0, "m") for d in expected]
    ordered = left_to_right(faces)  # the pipeline's one face order
    assert [g["box"] for g in core("(f) => core.leftToRight(f)", got)] == [list(f.box) for f in ordered]


@pytest.mark.parametrize("architecture", ["fsanet_fusion", "whenet", "facemesh"])
def test_crops_equal_crop_face_and_finish_face(core, architecture):
    from fsanet import create_model
    from fsanet.data.recipes import DEMO, crop_face, finish_face, resolved_recipe
    from fsanet.models.registry import recipe_of

    recipe = resolved_recipe(recipe_of(create_model(architecture).config), DEMO)
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    frame[20:70, 30:90] //= 3  # some structure, so the min-max stretch matters
    rgba = np.concatenate([frame, np.full((90, 120, 1), 255, np.uint8)], axis=2)
    boxes = [
        [10.3, 5.7, 60.2, 70.9],
        [-3.0, -2.0, 130.0, 95.0],
        [100.0, 80.0, 104.5, 83.0],
        [40.0, 30.0, 41.0, 31.0],
    ]
    got = core(
        """(data, boxes, recipe) => { const rgba = Uint8ClampedArray.from(data); const size = recipe.size;
            const batch = new Float32Array(boxes.length * 3 * size * size);
            boxes.forEach((box, i) => core.cropFace(rgba, 120, 90, box, recipe, batch, i));
            return Array.from(batch); }""",
        rgba.ravel().tolist(), boxes, recipe,
    )  # fmt: skip
    size = recipe["size"]
    got = np.asarray(got, np.float32).reshape(len(boxes), 3, size, size)
    for box, mine in zip(boxes, got, strict=True):
        expected = finish_face(crop_face(frame, box, recipe), recipe).transpose(2, 0, 1)
        np.testing.assert_array_equal(mine, expected)  # OpenCV's INTER_LINEAR bit for bit, then the stretch


def test_axes_and_labels_are_placed_as_the_server_draws_them(core):
    from fsanet.data.geometry import project_axes
    from fsanet.pipeline.drawing import place_labels

    for yaw, pitch, roll in [(38.0, -13.5, -13.1), (-70.0, 20.0, 45.0), (0.0, 0.0, 0.0)]:
        np.testing.assert_allclose(
            core("(y, p, r) => core.projectAxes(y, p, r, 50)", yaw, pitch, roll),
            project_axes(yaw, pitch, roll, 50),
            atol=1e-9,
        )
    boxes = [
        [10.0, 40.0, 60.0, 90.0],
        [15.0, 42.0, 70.0, 100.0],
        [0.0, 0.0, 30.0, 20.0],
        [200.0, 5.0, 260.0, 60.0],
    ]
    sizes = [[20, 18], [20, 18], [30, 25], [12, 10]]
    assert core("(b, s) => core.placeLabels(b, s, 240, 120)", boxes, sizes) == [
        list(r) for r in place_labels(boxes, [tuple(s) for s in sizes], (120, 240))
    ]


def test_first_visit_downloads_are_the_small_runtime_build(served, page):
    """The runtime files fetched by a first visit: the wasm-only bundle, its loader and the SIMD binary,
    gzipped, and nothing from another origin."""
    url = served[0]
    responses = []
    page.on("response", lambda response: responses.append(response))
    _open_webcam_tab(page, url)
    ort = [r for r in responses if "/fsanet/static/ort/" in r.url]
    assert sorted(r.url.rsplit("/", 1)[1] for r in ort) == sorted(
        ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"]
    )
    assert all(r.headers.get("content-encoding") == "gzip" for r in ort)
    assert all(r.url.startswith(url) or r.url.startswith("data:") for r in responses)
