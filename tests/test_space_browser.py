"""The Space in Debian's chromium driven by playwright: photo upload, fake webcam, leaderboard."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from tests.conftest import BOARD_MODELS, OFFICIAL, ROOT, require_shared
from tests.test_space_api import SAMPLES, serve_app

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def app_url(board_dir, tmp_path_factory) -> Iterator[str]:
    with serve_app(board_dir, tmp_path_factory.mktemp("app") / "app.log") as url:
        yield url


@pytest.fixture(scope="module")
def playwright():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: run scripts/install-system-deps.sh (scripts/test.sh does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright):
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(browser, app_url, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    context.grant_permissions(["camera"], origin=app_url.rstrip("/"))
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app_url)
    yield page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{request.node.name}.png", full_page=True)
    context.close()


def test_photo_upload_shows_annotated_image_and_angles(page, tmp_path):
    photo = sorted(require_shared(SAMPLES).glob("*.jpg"))[0]
    upload = tmp_path / photo.name  # the browser uploads a copy; ../shared stays untouched
    shutil.copyfile(photo, upload)
    page.locator("#photo-input input[type=file]").set_input_files(str(upload))
    page.locator("#photo-run").click()
    page.locator("#photo-output img").wait_for()
    rows = page.locator("#photo-faces [role=row]:has([role=gridcell])")
    rows.first.wait_for()
    assert rows.count() == 1
    cells = rows.first.locator("[role=gridcell]").all_inner_texts()
    yaw, pitch, roll = (float(c) for c in cells[1:4])
    from fsanet.pipeline.estimate import estimate

    face = estimate(photo).faces[0]
    assert (yaw, pitch, roll) == pytest.approx((face.yaw, face.pitch, face.roll), abs=0.01)


def _stream_to_the_server(page) -> None:
    """Pick a detector that runs on the server only: the Webcam tab shows the server stream."""
    from space.choices import DETECTORS

    page.get_by_role("tab", name="Webcam").click()
    page.locator("#webcam-detector input").click()
    page.get_by_role("option", name=DETECTORS["mtcnn"], exact=True).click()
    page.wait_for_function("document.getElementById('inpage-panel').dataset.mode === 'server'")


def test_webcam_streams_annotated_frames_back(page):
    _stream_to_the_server(page)
    webcam = page.locator("#webcam-input")
    webcam.get_by_text("Click to Access Webcam").click()
    webcam.locator("button[aria-label='capture photo']").click()  # "Record": starts streaming
    angles = page.locator("#webcam-angles textarea")
    page.wait_for_function(
        "() => /frame ([3-9]|\\d\\d+):/.test(document.querySelector('#webcam-angles textarea').value)",
        timeout=TIMEOUT_MS,
    )
    assert re.search(r"frame \d+: \d+ face\(s\)", angles.input_value())
    assert page.locator("#webcam-output img").count() == 1


def test_leaderboard_renders_filters_and_downloads(page, board_dir):
    from leaderboard.display.columns import board_frame
    from leaderboard.storage.results import ResultsStore

    page.get_by_role("tab", name="Leaderboard").click()
    rows = page.locator("#board-table [role=row]:has([role=gridcell])")
    rows.first.wait_for()
    expected = board_frame(ResultsStore(board_dir).snapshot())
    assert rows.filter(has_text="measured here").count() == len(expected) == len(BOARD_MODELS)
    # The papers' numbers follow, set apart: italic (and tinted), as the page draws them.
    reported = rows.filter(has_text="reported").first
    reported.wait_for()
    italic = "row => [...row.querySelectorAll('*')].some(e => getComputedStyle(e).fontStyle === 'italic')"
    assert reported.evaluate(italic) and not rows.first.evaluate(italic)
    assert "number(s) the papers report" in page.locator("#board-status").inner_text()
    page.locator("#board-search input, #board-search textarea").first.fill("ssrnet")
    page.wait_for_function(
        "() => document.querySelectorAll('#board-table [role=row]:has([role=gridcell])').length === 1"
    )
    assert "ssrnet_md.300w_lp" in rows.first.inner_text()
    page.locator("#board-download").click()
    link = page.locator("#board-file a").first
    link.wait_for()
    with page.expect_download() as download:
        link.click()
    text = Path(download.value.path()).read_text()
    assert text.splitlines()[0].startswith("rank,model,method,trained_on")
    assert all(model in text for model in expected["model"])
    # per axis, by |yaw|, cumulative MAE and geodesic, robustness (redrawn after the search)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length === 5")


# The example: AFLW2000 image02616, labelled yaw +38.0, pitch -13.5, roll -13.1 (degrees).
WEBCAM_SAMPLE = "image02616.jpg"


def write_y4m(rgb: np.ndarray, path: Path, frames: int = 10, fps: int = 10) -> Path:
    """A still ``.y4m`` clip of ``rgb`` (I420) at ``fps``: what Chromium's fake camera plays from a file."""
    height, width = rgb.shape[:2]
    planes = cv2.cvtColor(
        np.ascontiguousarray(rgb[: height // 2 * 2, : width // 2 * 2]), cv2.COLOR_RGB2YUV_I420
    )
    header = f"YUV4MPEG2 W{width // 2 * 2} H{height // 2 * 2} F{fps}:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + (b"FRAME\n" + planes.tobytes()) * frames)
    return path


def _label(photo: Path) -> tuple[float, float, float]:
    from scipy.io import loadmat

    pitch, yaw, roll = np.degrees(loadmat(str(photo.with_suffix(".mat")))["Pose_Para"][0][:3])
    return yaw, pitch, roll


@contextlib.contextmanager
def camera_space(board_dir: Path, work: Path) -> Iterator[tuple[str, Path, Path]]:
    """The Space, and a fake camera clip of a labelled AFLW2000 photo: yields (URL, clip, photo).

    The server has the authors' 300W-LP weights only (a mirror without ``BIWI_models`` and an empty
    cache): every ``.biwi`` model is offered but fails to load, the "broken choice" of the issue.
    """
    mirror = work / "mirror" / "pre-trained"
    mirror.mkdir(parents=True)
    (mirror / "300W_LP_models").symlink_to(require_shared(OFFICIAL) / "pre-trained" / "300W_LP_models")
    env = {"FSANET_OFFICIAL_MIRROR": str(mirror.parent), "FSANET_CACHE": str(work / "cache")}
    photo = require_shared(SAMPLES) / WEBCAM_SAMPLE
    clip = write_y4m(np.asarray(Image.open(photo).convert("RGB")), work / "face.y4m")
    with serve_app(board_dir, work / "app.log", **env) as url:
        yield url, clip, photo


@pytest.fixture(scope="module")
def camera_page(playwright, board_dir, tmp_path_factory):
    """A page in a chromium whose fake camera films a labelled AFLW2000 photo (see :func:`camera_space`)."""
    with camera_space(board_dir, tmp_path_factory.mktemp("camera")) as (url, clip, photo):
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*ARGS, f"--use-file-for-fake-video-capture={clip}"]
        )
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.grant_permissions(["camera"], origin=url.rstrip("/"))
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        yield page, photo
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "webcam_fake_camera.png", full_page=True)
        browser.close()


def _pick(page, elem_id: str, name: str) -> None:
    """Choose the option whose label starts with ``name``'s description in a gr.Dropdown."""
    from space.choices import model_label

    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=model_label(name), exact=True).click()


def _webcam_angles(page) -> str:
    return page.locator("#webcam-angles textarea").input_value()


def _wait_for_frames(page, at_least: int, text: str = "1 face") -> None:
    page.wait_for_function(
        """([n, text]) => {
            const m = /frame (\\d+): (.*)/.exec(document.querySelector('#webcam-angles textarea').value);
            return m && Number(m[1]) >= n && m[2].startsWith(text);
        }""",
        arg=[at_least, text],
        timeout=TIMEOUT_MS,
    )


def test_webcam_reports_the_labels_signs_and_the_photo_tabs_angles(camera_page, tmp_path):
    page, photo = camera_page
    upload = tmp_path / photo.name
    shutil.copyfile(photo, upload)
    page.locator("#photo-input input[type=file]").set_input_files(str(upload))
    page.locator("#photo-run").click()
    row = page.locator("#photo-faces [role=row]:has([role=gridcell])").first
    row.wait_for()
    photo_yaw, _, photo_roll = (float(c) for c in row.locator("[role=gridcell]").all_inner_texts()[1:4])

    _stream_to_the_server(page)
    webcam = page.locator("#webcam-input")
    webcam.get_by_text("Click to Access Webcam").click()
    webcam.locator("button[aria-label='capture photo']").click()  # "Record": starts streaming
    _wait_for_frames(page, 3)
    found = re.search(r"face 1: yaw ([-+\d.]+)°\s+pitch ([-+\d.]+)°\s+roll ([-+\d.]+)°", _webcam_angles(page))
    assert found, _webcam_angles(page)
    yaw, _, roll = (float(v) for v in found.groups())
    label_yaw, _, label_roll = _label(photo)
    assert np.sign(yaw) == np.sign(label_yaw) and np.sign(roll) == np.sign(label_roll), (yaw, roll)
    assert yaw == pytest.approx(photo_yaw, abs=2.0) and roll == pytest.approx(photo_roll, abs=2.0)

    # A choice that cannot work here (no BIWI weights) -> one message in the box, no pop-up flood...
    frames_before = int(re.search(r"frame (\d+)", _webcam_angles(page)).group(1))
    _pick(page, "webcam-model", "fsanet_fusion.biwi")
    page.wait_for_function("() => document.querySelector('#webcam-angles textarea').value.startsWith('⚠️')")
    assert "fsanet_caps_1x1.biwi" in _webcam_angles(page)
    page.wait_for_timeout(1500)  # a dozen more frames are refused meanwhile
    assert page.locator(".toast-body").count() == 0, "the message is in the box, not one pop-up per frame"
    # ...and the stream recovers as soon as a working model is picked again.
    _pick(page, "webcam-model", "fsanet_fusion.300w_lp")
    _wait_for_frames(page, frames_before + 2)


def test_a_photo_result_stays_marked_out_of_date_when_the_new_choice_fails(camera_page, tmp_path):
    page, photo = camera_page
    page.reload()  # no camera stream from the test before
    upload = tmp_path / photo.name
    shutil.copyfile(photo, upload)
    page.locator("#photo-input input[type=file]").set_input_files(str(upload))
    page.locator("#photo-run").click()
    page.locator("#photo-status").get_by_text("1 face(s)").wait_for()
    _pick(page, "photo-model", "fsanet_fusion.biwi")  # no BIWI weights on this server
    page.locator(".toast-body").filter(has_text="fsanet_caps_1x1.biwi").wait_for()
    assert "Out of date" in page.locator("#photo-status").inner_text()
    assert "fsanet_fusion.300w_lp" in page.locator("#photo-json").inner_text(), "the old result, marked"


def test_group_example_runs_on_click_numbered_left_to_right_and_no_face_is_visible(page, tmp_path):
    page.locator(".gallery-item").first.click()  # the group scene, cached on first use
    rows = page.locator("#photo-faces [role=row]:has([role=gridcell])")
    page.wait_for_function(
        "() => document.querySelectorAll('#photo-faces [role=row]:has([role=gridcell])').length === 3"
    )
    table = [row.locator("[role=gridcell]").all_inner_texts() for row in rows.all()]
    assert [cells[0] for cells in table] == ["1", "2", "3"]
    lefts = [float(re.findall(r"[-\d.]+", cells[5])[0]) for cells in table]
    assert lefts == sorted(lefts), "rows are the faces left to right"
    assert "3 face(s)" in page.locator("#photo-status").inner_text()
    page.locator("#photo-output img").wait_for()

    blank = tmp_path / "wall.png"
    Image.new("RGB", (320, 240), (200, 190, 180)).save(blank)
    page.reload()  # a fresh page: upload into an empty Photo input
    page.locator("#photo-input input[type=file]").set_input_files(str(blank))
    page.locator("#photo-run").click()
    page.locator("#photo-status").get_by_text("No face found").wait_for()
    assert rows.count() == 0


def test_video_tab_returns_an_annotated_clip_chromium_plays_downloaded_as_the_cli_names_it(page, tmp_path):
    from fsanet.pipeline.video import H264Writer

    photo = sorted(require_shared(SAMPLES).glob("*.jpg"))[0]
    frame = np.asarray(Image.open(photo).convert("RGB").resize((224, 224)))
    clip = tmp_path / "holiday.mp4"
    with H264Writer(clip, 5.0) as writer:
        for _ in range(5):
            writer.write(frame)
    page.get_by_role("tab", name="Video").click()
    page.locator("#video-input input[type=file]").set_input_files(str(clip))
    page.locator("#video-run").click()
    page.locator("#video-output video").wait_for()
    # Decoded by the browser itself: a playable H.264 stream has a size and a duration once loaded.
    page.wait_for_function(
        "() => { const v = document.querySelector('#video-output video');"
        " return v && v.readyState >= 1 && v.videoWidth === 224 && v.duration > 0.5; }"
    )
    assert page.get_by_text('"frame": 4').count() >= 1  # the per-frame JSON, five frames
    # Both downloads are named after the upload, as `fsanet predict --out` names its files.
    page.locator("#video-output video").hover()  # the download button shows on hover
    with page.expect_download() as video:
        page.locator("#video-output a[data-testid=download-link]").click()
    assert video.value.suggested_filename == "holiday_pose.mp4"
    with av.open(video.value.path()) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    with page.expect_download() as frames:
        page.locator("#video-json a[download]").click()
    assert frames.value.suggested_filename == "holiday_pose.json"
    payload = json.loads(Path(frames.value.path()).read_text())
    assert payload["video"] == "holiday.mp4" and [f["frame"] for f in payload["frames"]] == list(range(5))


def _labels_in_full(page, elem_id: str) -> tuple[str, bool]:
    """A dropdown's shown value, and whether it fits its box (an <input> cuts what does not)."""
    return tuple(page.eval_on_selector(f"#{elem_id} input", "e => [e.value, e.scrollWidth <= e.clientWidth]"))


@pytest.mark.parametrize("width", [1400, 1024])
def test_a_chosen_model_label_is_readable_in_full_on_every_tab(browser, app_url, width):
    from space.choices import model_choices, model_label

    context = browser.new_context(viewport={"width": width, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app_url)
    try:
        page.locator("#photo-model input").wait_for()
        widest = _widest_label(page, "#photo-model input", [label for label, _ in model_choices()])
        longest = next(name for label, name in model_choices() if label == widest)
        for tab in ("photo", "webcam", "video"):
            page.get_by_role("tab", name=tab.capitalize()).click()
            for name in (longest, "fsanet_fusion.biwi", "fsanet_fusion.300w_lp"):
                _pick(page, f"{tab}-model", name)
                assert _labels_in_full(page, f"{tab}-model") == (model_label(name), True), (tab, name)
    finally:
        context.close()
    assert model_label("fsanet_fusion.biwi") != model_label("fsanet_fusion.300w_lp")


def _widest_label(page, selector: str, labels: list[str]) -> str:
    """The label that takes the most room in the font of the element ``selector``."""
    return page.evaluate(
        """([selector, labels]) => {
            const context = document.createElement("canvas").getContext("2d");
            context.font = getComputedStyle(document.querySelector(selector)).font;
            const width = (label) => context.measureText(label).width;
            return labels.reduce((a, b) => (width(b) > width(a) ? b : a));
        }""",
        [selector, labels],
    )


def _status_history(page, elem_id: str) -> None:
    """Record every text ``#elem_id`` shows from now on in ``window.statusHistory``."""
    page.evaluate(
        """id => {
            window.statusHistory = [];
            const node = document.getElementById(id);
            new MutationObserver(() => window.statusHistory.push(node.innerText)).observe(
                node, {childList: true, subtree: true, characterData: true});
        }""",
        elem_id,
    )


def test_a_photo_result_is_marked_out_of_date_then_estimated_again_when_a_picker_changes(page, tmp_path):
    from space.choices import DETECTORS, model_label

    photo = sorted(require_shared(SAMPLES).glob("*.jpg"))[0]
    upload = tmp_path / photo.name
    shutil.copyfile(photo, upload)
    page.locator("#photo-input input[type=file]").set_input_files(str(upload))
    page.locator("#photo-run").click()
    status = page.locator("#photo-status")
    status.get_by_text("1 face(s)").wait_for()
    rows = page.locator("#photo-faces [role=row]:has([role=gridcell])")
    before = rows.first.locator("[role=gridcell]").all_inner_texts()

    for picker, label, changed in (
        ("photo-model", model_label("ssrnet_md.300w_lp"), slice(1, 4)),  # other angles
        ("photo-detector", DETECTORS["haar"], slice(5, 6)),  # another box
    ):
        _status_history(page, "photo-status")
        page.locator(f"#{picker} input").click()
        page.get_by_role("option", name=label, exact=True).click()
        page.wait_for_function(
            "() => window.statusHistory.some(t => t.includes('Out of date'))"
            " && document.querySelector('#photo-status').innerText.includes('1 face(s)')"
        )
        after = rows.first.locator("[role=gridcell]").all_inner_texts()
        assert after[changed] != before[changed], (picker, before, after)
        before = after
    assert "ssrnet_md.300w_lp" in page.locator("#photo-json").inner_text()


def _mp4v_clip(path: Path) -> Path:
    """A clip in OpenCV's mp4v (MPEG-4 Part 2): the server reads it, Chromium cannot play it."""
    photo = sorted(require_shared(SAMPLES).glob("*.jpg"))[0]
    frame = cv2.resize(cv2.imread(str(photo)), (224, 224))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (224, 224))
    for _ in range(5):
        writer.write(frame)
    writer.release()
    return path


def test_an_mp4v_clip_the_browser_cannot_play_gets_no_error_toast_and_is_processed(page, tmp_path):
    from space.choices import model_label

    page.get_by_role("tab", name="Video").click()
    page.locator("#video-input input[type=file]").set_input_files(str(_mp4v_clip(tmp_path / "clip.mp4")))
    page.locator("#video-clip").get_by_text("clip.mp4: 224×224, 5 fps, 1.0 s, mpeg4").wait_for()
    assert "the server reads it" in page.locator("#video-clip").inner_text()
    # The scenario itself: Chromium failed to load the clip (MEDIA_ERR_SRC_NOT_SUPPORTED)...
    page.wait_for_function("() => document.querySelector('#video-input video')?.error?.code === 4")
    page.wait_for_timeout(1000)
    assert page.locator(".toast-body").count() == 0, page.locator(".toast-body").all_inner_texts()
    page.locator("#video-run").click()
    page.locator("#video-status").get_by_text("5 frame(s)").wait_for()
    page.wait_for_function(
        "() => { const v = document.querySelector('#video-output video');"
        " return v && v.readyState >= 1 && v.videoWidth === 224; }"
    )
    assert page.locator(".toast-body").count() == 0, page.locator(".toast-body").all_inner_texts()
    # A picker changed: the annotated clip is marked out of date (redone only when asked).
    page.locator("#video-model input").click()
    page.get_by_role("option", name=model_label("ssrnet_md.300w_lp"), exact=True).click()
    page.locator("#video-status").get_by_text("Out of date").wait_for()


def test_a_submission_made_in_the_browser_reaches_the_board_by_itself(browser, tmp_path):
    """Local mode with the Space's own background worker (the default): upload, submit, and the row appears on
    the board, with the queue going pending -> ... -> finished, and no other command."""
    import torch

    import fsanet
    from tests.test_leaderboard_submissions import synthetic_benchmark

    torch.manual_seed(1)
    variant = fsanet.save_pretrained(fsanet.create_model("fsanet_caps_var"), tmp_path / "variant")
    env = {
        "LEADERBOARD_WORKER": "1",
        "LEADERBOARD_POLL_S": "1",
        "LEADERBOARD_DATA_AFLW2000": str(synthetic_benchmark(tmp_path / "aflw2000", 32)),
    }
    with serve_app(tmp_path / "board", tmp_path / "app.log", **env) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(url)
            page.get_by_role("tab", name="Submit").click()
            files = [str(variant / "config.json"), str(variant / "model.safetensors")]
            page.locator("#submit-files input[type=file]").set_input_files(files)
            page.get_by_label("Variant name").fill("browser/caps-var")
            page.get_by_label("Trained on").fill("300W-LP")  # stated: ranked among protocol-1 models
            page.get_by_label("Trained for").click()
            page.get_by_role("option", name="protocol 1: trained without BIWI (300W-LP, ...)").click()
            page.locator("#submit-button").click()
            message = page.locator("#submit-message")
            message.get_by_text("Accepted").wait_for()
            assert "browser/caps-var" in message.inner_text()
            page.wait_for_function(  # the queue refreshes itself until the worker is done
                "() => document.querySelector('#submit-queue').innerText.includes('finished')",
                timeout=2 * TIMEOUT_MS,
            )
            followed = page.locator("#submit-followed")  # said in words, not the request's JSON
            followed.get_by_text("(browser/caps-var) is finished: aflw2000 MAE").wait_for()
            assert not page.locator("#submit-request").is_visible()

            page.get_by_role("tab", name="Leaderboard").click()
            row = page.locator("#board-table [role=row]:has([role=gridcell])").filter(
                has_text="browser/caps-var"
            )
            row.first.wait_for()
            assert "aflw2000" in row.first.inner_text()
            assert "Last updated" in page.locator("#board-status").inner_text()
            page.wait_for_function(  # the figures are redrawn once the store holds the new result
                "() => [...document.querySelectorAll('.js-plotly-plot')].some("
                "p => p.textContent.includes('browser/caps-var'))"
            )
        finally:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=SCREENSHOTS / "submission_reaches_the_board.png", full_page=True)
            context.close()


def test_technical_columns_toggle(page):
    page.get_by_role("tab", name="Leaderboard").click()
    headers = page.locator("#board-table thead th, #board-table [role=columnheader]")
    page.locator("#board-table [role=row]:has([role=gridcell])").first.wait_for()
    assert "weights" not in " ".join(headers.all_inner_texts())
    assert "rank" in " ".join(headers.all_inner_texts()) and "GFLOPs" in " ".join(headers.all_inner_texts())
    page.locator("#board-technical").get_by_label("weights").check()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#board-table thead th, #board-table [role=columnheader]')]"
        ".some(cell => cell.innerText.trim() === 'weights')"
    )
    page.locator("#board-technical").get_by_label("weights").uncheck()
    page.wait_for_function(
        "() => ![...document.querySelectorAll('#board-table thead th, #board-table [role=columnheader]')]"
        ".some(cell => cell.innerText.trim() === 'weights')"
    )


def test_about_tab_explains_the_board_and_shows_the_angle_figure(page):
    page.get_by_role("tab", name="About").click()
    about = page.locator("#about-text")
    about.get_by_text("Protocol 2", exact=False).first.wait_for()
    assert "geodesic" in about.inner_text() and "GFLOPs" in about.inner_text()
    text = about.inner_text()  # why a paper's number and the board's differ
    assert "Reported numbers" in text and "the face crop" in text
    assert "TriNet" in page.locator("#about-reported").inner_text()  # every number quoted, with its paper
    figure = page.locator("#about-angles img")
    figure.wait_for()
    page.wait_for_function("() => document.querySelector('#about-angles img').naturalWidth > 100")


def test_board_shows_two_decimals_says_no_results_and_keeps_the_queue_a_table(page, board_dir):
    """The newcomer's view: every angle with two decimals, a benchmark without results says so instead of
    empty axes, the count follows the search, a refused submission leaves the queue a table, and the About
    figure has no label badge over its first caption."""
    page.get_by_role("tab", name="Leaderboard").click()
    rows = page.locator("#board-table [role=row]:has([role=gridcell])")
    rows.first.wait_for()
    headers = page.locator("#board-table [role=columnheader]").all_inner_texts()
    mean = [h.strip() for h in headers].index("mean")
    for row in range(rows.count()):
        assert re.fullmatch(r"\d+\.\d\d", rows.nth(row).locator("[role=gridcell]").nth(mean).inner_text())
    status = page.locator("#board-status")
    assert "2 result(s)" in status.inner_text()
    page.locator("#board-search input, #board-search textarea").first.fill("ssrnet")
    page.wait_for_function("() => document.querySelector('#board-status').innerText.includes('1 result(s)')")

    page.locator("#board-search input, #board-search textarea").first.fill("")
    page.get_by_label("Benchmark").click()
    page.get_by_role("option", name="biwi", exact=True).click()
    page.get_by_text("No results for biwi").first.wait_for()  # in the figures, not empty axes
    status.get_by_text("No benchmark data for biwi").wait_for()  # and what to set, where it looked
    assert "LEADERBOARD_DATA_BIWI" in status.inner_text() and "Looked in: biwi: " in status.inner_text()

    page.get_by_role("tab", name="Submit").click()
    queue = page.locator("#submit-queue")
    queue.locator("table").first.wait_for()
    page.locator("#submit-button").click()  # nothing to submit: refused
    page.get_by_text("upload config.json and model.safetensors").first.wait_for()
    assert queue.locator("table").count() >= 1 and "Error" not in queue.inner_text()

    page.get_by_role("tab", name="About").click()
    page.locator("#about-angles img").wait_for()
    assert (
        page.locator("#about-angles label").count() == 0
        or not page.locator("#about-angles label").first.is_visible()
    )


def test_an_example_is_estimated_with_the_model_and_detector_picked(page):
    """WHENet and BlazeFace picked, then an example clicked: its faces are those two's, not a result cached
    with the default model and detector."""
    from fsanet.pipeline.estimate import estimate
    from space.choices import DETECTORS
    from space.examples import example_images

    _pick(page, "photo-model", "whenet.300w_lp_panoptic")
    page.locator("#photo-detector input").click()
    page.get_by_role("option", name=DETECTORS["blazeface"], exact=True).click()
    page.locator(".gallery-item").nth(2).click()  # the frontal face (astronaut.jpg)
    page.locator("#photo-status").get_by_text("1 face(s)").wait_for()
    assert "whenet.300w_lp_panoptic" in page.locator("#photo-json").inner_text()
    assert "Out of date" not in page.locator("#photo-status").inner_text()
    cells = page.locator("#photo-faces [role=row]:has([role=gridcell])").first.locator("[role=gridcell]")
    shown = [float(c) for c in cells.all_inner_texts()[1:4]]
    astronaut = next(p for p in example_images() if p.endswith("astronaut.jpg"))
    face = estimate(astronaut, model="whenet.300w_lp_panoptic", detector="blazeface").faces[0]
    assert shown == pytest.approx([face.yaw, face.pitch, face.roll], abs=0.01)


def test_the_model_pickers_help_is_short_and_the_details_are_said_once_in_the_about_tab(page):
    from space.choices import model_info

    assert len(model_info().split()) <= 25
    for tab in ("Photo", "Webcam", "Video"):
        page.get_by_role("tab", name=tab).click()
        picker = page.locator(f"#{tab.lower()}-model")
        picker.get_by_text(model_info()).wait_for()
        assert "the aggregation" not in picker.inner_text()
    page.get_by_role("tab", name="About").click()
    about = page.locator("#about-models")
    about.get_by_text("The models").wait_for()
    assert about.inner_text().count("the aggregation") == 1 and "WHENet" in about.inner_text()
    # Every tab visited: the story of the variants is in the page once, under About.
    assert page.evaluate("document.body.textContent").count("the aggregation") == 1


# Words of the board's table split across lines ("ran k", "inpu t"), and cells whose text overflows them.
BROKEN_WORDS_JS = """() => {
  const broken = [];
  const cells = document.querySelectorAll(
    '#board-table [role=columnheader] span.header, #board-table [role=gridcell] span');
  for (const span of cells) {
    for (const node of span.childNodes) {
      if (node.nodeType !== Node.TEXT_NODE) continue;
      for (const match of node.textContent.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        if (range.getClientRects().length > 1) broken.push(match[0]);
      }
    }
  }
  const all = '#board-table [role=columnheader], #board-table [role=gridcell]';
  const clipped = [...document.querySelectorAll(all)]
    .filter(cell => cell.scrollWidth > cell.clientWidth + 1).map(cell => cell.innerText.trim());
  return {broken, clipped};
}"""
# Visible elements of a figure's block (Gradio's label chip) over the figure's own title.
COVERED_TITLES_JS = """() => [...document.querySelectorAll('.board-plot')].flatMap(block => {
  const title = block.querySelector('.gtitle');
  if (!title) return ['(no title)'];
  const box = title.getBoundingClientRect();
  return [...block.querySelectorAll('label, [data-testid=block-label]')]
    .filter(el => el.checkVisibility() && (r => r.right > box.left && r.left < box.right &&
      r.bottom > box.top && r.top < box.bottom)(el.getBoundingClientRect()))
    .map(() => title.textContent);
})"""


def test_the_board_is_readable_at_1280_px(page):
    """At 1280 px with every technical column shown, no word of the table is split across lines and no
    cell is cut (once: "ran k", "inpu t", ``n``'s ⚠), and no label chip covers a figure's title (once:
    "tive mae error...")."""
    from leaderboard.display.columns import COLUMNS
    from leaderboard.display.views import TECHNICAL

    page.set_viewport_size({"width": 1280, "height": 1000})
    page.get_by_role("tab", name="Leaderboard").click()
    page.locator("#board-table [role=row]:has([role=gridcell])").first.wait_for()
    page.wait_for_function("() => document.querySelectorAll('.board-plot .gtitle').length === 5")
    assert page.evaluate(COVERED_TITLES_JS) == []
    assert page.evaluate(BROKEN_WORDS_JS) == {"broken": [], "clipped": []}
    for label in TECHNICAL:  # the widest table
        page.locator("#board-technical").get_by_label(label, exact=True).check()
    headers = 1 + len(COLUMNS)  # the rank, then every column (the benchmark's too: all benchmarks shown)
    page.wait_for_function(
        f"() => document.querySelectorAll('#board-table [role=columnheader]').length === {headers}"
    )
    assert page.evaluate(BROKEN_WORDS_JS) == {"broken": [], "clipped": []}
