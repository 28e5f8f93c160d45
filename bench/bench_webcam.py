"""The Webcam tab in headless Chromium: processed frames/s reaching the page, in the page and via the server.

    .venv/bin/python bench/bench_webcam.py [--seconds 15] [--models NAME ...] [--json artifacts/webcam.json]
        [--bundle OUT --python OUT_VENV/bin/python]

Chromium's fake camera plays a 640x480, 30 fps clip of one face (scikit-image's astronaut, as in
bench_pipeline.py). The Space runs as users start it (``python app.py``, tests/test_space_api.py's
``serve_app``); with ``--bundle``, from the Space bundle (``bash scripts/space_bundle.sh OUT``) with the
interpreter of a virtualenv installed from its ``requirements.txt`` alone, ``SPACE_ID`` and ``SYSTEM=spaces``
set, as Hugging Face runs it. Reported, side by side from one run:

* in the page (the default detector, BlazeFace scan, + the fusion model, or each of ``--models`` in turn, on
  onnxruntime-web): processed frames/s over the window beside the frames/s the camera presented (every frame
  kept: the two equal), the mean milliseconds per stage (grab the frame, detect, crop, model, draw) and the
  frames the page skipped; then the same with BlazeFace short range (the tab's default before the scan), for
  the ratio;
* streamed to the server (MTCNN, the Photo tab's default, as the tab worked before): processed frames/s read
  from the tab's own frame counter;
* the bytes a first visit downloads (on the wire: encoded, with headers), in all and for the in-page mode's
  files (onnxruntime-web, the two ONNX files, the page's scripts).

The load average is printed with the figures: the machine is shared.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_pipeline import scenes  # noqa: E402
from tests.test_space_api import serve_app  # noqa: E402
from tests.test_space_browser import ARGS, CHROMIUM, _pick, write_y4m  # noqa: E402

FPS = 30


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def in_page(page, url: str, seconds: float, model: str | None = None, detector: str | None = None) -> dict:
    configs: list[str] = []  # the pair the page runs, as it asked the server for its numbers
    page.on(
        "request", lambda r: configs.append(r.url.split("?", 1)[1]) if "/webcam/config?" in r.url else None
    )
    page.goto(url)
    page.get_by_role("tab", name="Webcam").click()
    if model is not None:
        _pick(page, "webcam-model", model)
    if detector:  # another than the tab's default
        from space.choices import DETECTORS

        page.locator("#webcam-detector input").click()
        page.get_by_role("option", name=DETECTORS[detector], exact=True).click()
        page.wait_for_function(
            f"window.fsanetWebcam.state.config?.detector.name === '{detector}'", timeout=120_000
        )
    page.wait_for_function(
        "document.getElementById('inpage-panel')?.dataset.mode === 'inpage'", timeout=120_000
    )
    page.locator("#inpage-start").click()
    page.wait_for_function("window.fsanetWebcam.stats().frames >= 30", timeout=60_000)  # warm
    first = page.evaluate("window.fsanetWebcam.stats()")
    start = time.perf_counter()
    page.wait_for_timeout(seconds * 1000)
    last = page.evaluate("window.fsanetWebcam.stats()")
    elapsed = time.perf_counter() - start
    frames = last["frames"] - first["frames"]
    stages = {k: round((last["totals"][k] - first["totals"][k]) / frames, 2) for k in last["totals"]}
    camera = last["camera"] - first["camera"]
    return {
        "processed_fps": round(frames / elapsed, 1),
        "camera_fps": round(camera / elapsed, 1),
        "processed_of_camera_frames": f"{frames}/{camera}",
        "stage_ms": stages,
        "skipped_frames": last["dropped"] - first["dropped"],
        "faces": len(page.evaluate("window.fsanetWebcam.snapshot()")["faces"]),
        "ran": configs[-1] if configs else None,
        "loadavg": loadavg(),
    }


def server_stream(page, url: str, seconds: float) -> dict:
    from space.choices import DETECTORS

    page.goto(url)
    page.get_by_role("tab", name="Webcam").click()
    page.locator("#webcam-detector input").click()
    page.get_by_role("option", name=DETECTORS["mtcnn"], exact=True).click()
    page.wait_for_function("document.getElementById('inpage-panel').dataset.mode === 'server'")
    webcam = page.locator("#webcam-input")
    webcam.get_by_text("Click to Access Webcam").click()
    webcam.locator("button[aria-label='capture photo']").click()

    def counter() -> int:
        found = re.match(r"frame (\d+):", page.locator("#webcam-angles textarea").input_value())
        return int(found.group(1)) if found else 0

    page.wait_for_function(
        "() => /frame ([1-9]\\d+):/.test(document.querySelector('#webcam-angles textarea').value)",
        timeout=60_000,
    )
    first, start = counter(), time.perf_counter()
    page.wait_for_timeout(seconds * 1000)
    return {
        "processed_fps": round((counter() - first) / (time.perf_counter() - start), 1),
        "loadavg": loadavg(),
    }


def first_visit_bytes(browser, url: str) -> dict:
    """Bytes on the wire until the in-page mode runs its first frames, in a fresh context (empty cache)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.grant_permissions(["camera"], origin=url.rstrip("/"))
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    urls: dict[str, str] = {}
    sizes: dict[str, int] = {}
    cdp.on("Network.requestWillBeSent", lambda e: urls.__setitem__(e["requestId"], e["request"]["url"]))
    cdp.on(
        "Network.loadingFinished", lambda e: sizes.__setitem__(e["requestId"], int(e["encodedDataLength"]))
    )
    in_page(page, url, 1)
    context.close()
    files = {urls.get(k, "?"): v for k, v in sizes.items()}
    own = {u: v for u, v in files.items() if "/fsanet/" in u}
    return {
        "total_bytes": sum(files.values()),
        "requests": len(files),
        "in_page_mode_bytes": sum(own.values()),
        "in_page_files": {u.split("/fsanet/", 1)[1][:60]: v for u, v in sorted(own.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument(
        "--models", nargs="+", help="in-page pose models, one after the other (default: the tab's)"
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--bundle", type=Path, help="a Space bundle to serve instead of this checkout")
    parser.add_argument("--python", default=sys.executable, help="the bundle's interpreter")
    args = parser.parse_args()
    where = {"app_dir": args.bundle, "python": args.python, "SYSTEM": "spaces", "SPACE_ID": "bench/fsanet"}
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="bench-webcam-"))
    frame = np.asarray(Image.open(io.BytesIO(scenes()["640x480 1 face"][0])).convert("RGB"))
    clip = write_y4m(frame, work / "face_640x480_30fps.y4m", frames=FPS, fps=FPS)
    figures: dict = {}
    served = serve_app(work / "leaderboard", work / "app.log", **(where if args.bundle else {}))
    with served as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*ARGS, f"--use-file-for-fake-video-capture={clip}"]
        )
        figures["first_visit"] = first_visit_bytes(browser, url)
        runs = [
            *(
                (f"in_page {model or ''}".strip(), in_page, {"model": model})
                for model in args.models or [None]
            ),
            ("in_page_blazeface_short", in_page, {"detector": "blazeface"}),  # the default before the scan
            ("server_stream", server_stream, {}),
        ]
        for name, measure, options in runs:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.grant_permissions(["camera"], origin=url.rstrip("/"))
            figures[name] = measure(context.new_page(), url, args.seconds, **options)
            context.close()
        browser.close()
    figures["served_from"] = str(args.bundle or ROOT)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
