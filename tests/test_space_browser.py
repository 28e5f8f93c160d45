"""The Space in Debian's chromium driven by playwright: photo upload, fake webcam, leaderboard."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BOARD_MODELS, ROOT, require_shared
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
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: run scripts/install-system-deps.sh (scripts/test.sh does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
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


def test_webcam_streams_annotated_frames_back(page):
    page.get_by_role("tab", name="Webcam").click()
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
    from leaderboard.store import ResultsStore

    page.get_by_role("tab", name="Leaderboard").click()
    rows = page.locator("#board-table [role=row]:has([role=gridcell])")
    rows.first.wait_for()
    expected = ResultsStore(board_dir).table()
    assert rows.count() == len(expected) == len(BOARD_MODELS)
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
    assert text.splitlines()[0].startswith("model,benchmark")
    assert all(model in text for model in expected["model"])
    assert page.locator(".js-plotly-plot").count() == 3
