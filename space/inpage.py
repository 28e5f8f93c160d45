"""The Webcam tab's in-page mode, server side: the files and numbers the browser runs the estimator with.

Routes (GET, under :data:`PREFIX`, added to Gradio's FastAPI app by :func:`add_routes`):

* ``webcam/config?model=NAME&detector=NAME``: :func:`fsanet.pipeline.browser.browser_parameters` of the
  Space's own estimator for that pair (the one ``/predict`` uses), plus the URLs below; when the page cannot
  run the pair, ``{"error", "server_only": true}`` (a ``200``: an answer, not a failure, so picking a
  server-only detector logs no error in the browser's console; the page then streams to the server), and
  ``422`` with ``{"error", "server_only": false}`` when the choice fails anyway (weights not available);
* ``webcam/model/NAME/SHA256.onnx``: the pose model's ONNX file (``python -m fsanet export``'s bytes), and
  ``webcam/detector/NAME/SHA256.onnx``: the detector's graph; both named by content, cached for a year;
* ``static/webcam.js``, ``static/inpage.js`` (the page's code) and ``static/ort/VERSION/FILE``
  (onnxruntime-web, :mod:`space.webassets`; gzip when the browser accepts it).

Names are looked up in the pickers' lists and files in fixed tables: no path ever comes from a request.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from fsanet import FSANetError
from fsanet.pipeline.browser import ServerOnlyError, browser_parameters
from space import runtime, webassets
from space.choices import default_detector, detector_choices, model_choices

PREFIX = "fsanet"
STATIC = Path(__file__).resolve().parent / "static"
PAGE_FILES = ("webcam.js", "inpage.js")
IMMUTABLE = "public, max-age=31536000, immutable"
PANEL_HTML = (STATIC / "webcam.html").read_text()
HEAD_HTML = f'<script type="module" src="{PREFIX}/static/webcam.js"></script>'
# The pickers' values, handed to the page's code (no server call: a JavaScript-only event).
CHOICE_JS = """(model, detector) => {
  window.fsanetWebcamChoice = [model, detector];
  window.dispatchEvent(new CustomEvent("fsanet-webcam-choice", {detail: [model, detector]}));
}"""
# A visitor's words: what they get instead (the operator's fix is in the README: scripts/space_bundle.sh).
ORT_MISSING = "this Space cannot run the models in your browser: frames go to the server, a few per second"
MEDIA_TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm"}
# On every response of these routes: browsers use the media type sent, never one guessed from the bytes.
NOSNIFF = {"X-Content-Type-Options": "nosniff"}


def runs_in_page() -> bool:
    """Whether the Webcam tab can run in the page here: onnxruntime-web served and the pickers' detector one
    the page runs (BlazeFace's files installed)."""
    return (
        webassets.ort_web_dir() is not None and runtime.detector(default_detector()).graph_file() is not None
    )


def _ort_url() -> str:
    return f"{PREFIX}/static/ort/{webassets.ORT_WEB_VERSION}/"


def _file_digest(path: Path) -> str:
    return _digest(str(path), path.stat().st_mtime_ns)


@functools.cache
def _digest(path: str, _mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _model_file(name: str) -> tuple[Path, str]:
    return runtime.pose_graph(name)


def _detector_file(name: str) -> tuple[Path, str]:
    path = runtime.detector(name).graph_file()
    if path is None:
        raise FSANetError(f"the {name} detector runs on the server only")
    return path, _file_digest(path)


def page_config(model: str, detector: str) -> dict[str, Any]:
    """The parameters and URLs of ``(model, detector)`` for the page; FSANetError: see the docstring above."""
    if model not in {name for _, name in model_choices()}:
        raise FSANetError(f"unknown model {model!r}")
    if detector not in {name for _, name in detector_choices()}:
        raise FSANetError(f"unknown detector {detector!r}")
    if webassets.ort_web_dir() is None:
        raise ServerOnlyError(ORT_MISSING)
    if runtime.detector(detector).graph_file() is None:  # before loading a model the page will not run
        raise ServerOnlyError(f"the {detector} detector runs on the server only")
    parameters = browser_parameters(runtime.estimator(model, detector))
    model_digest = _model_file(model)[1]
    detector_digest = _detector_file(detector)[1]
    parameters["model"]["url"] = f"{PREFIX}/webcam/model/{model}/{model_digest}.onnx"
    parameters["detector"]["url"] = f"{PREFIX}/webcam/detector/{detector}/{detector_digest}.onnx"
    parameters["ort"] = {"base": _ort_url(), "entry": _ort_url() + webassets.ORT_WEB_FILES[0]}
    return parameters


def _config(model: str = "", detector: str = "") -> JSONResponse:
    try:
        return JSONResponse(page_config(model, detector), headers={"Cache-Control": "no-cache", **NOSNIFF})
    except ServerOnlyError as error:
        return JSONResponse(
            {"error": str(error), "server_only": True}, headers={"Cache-Control": "no-cache", **NOSNIFF}
        )
    except FSANetError as error:
        return JSONResponse({"error": str(error), "server_only": False}, status_code=422, headers=NOSNIFF)


def _served(path: Path, request: Request, cache: str) -> Response:
    """``path`` (or its gzip copy, for a browser that accepts gzip) with its media type and ``cache``."""
    headers = {"Cache-Control": cache, "Vary": "Accept-Encoding", **NOSNIFF}
    media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
    compressed = path.with_name(path.name + ".gz")
    if compressed.is_file() and "gzip" in request.headers.get("accept-encoding", ""):
        return FileResponse(
            compressed, media_type=media_type, headers={**headers, "Content-Encoding": "gzip"}
        )
    return FileResponse(path, media_type=media_type, headers=headers)


def _not_found() -> JSONResponse:
    return JSONResponse({"error": "not found"}, status_code=404, headers=NOSNIFF)


def _graph(lookup, names, name: str, digest: str, request: Request) -> Response:
    if name not in names:
        return _not_found()
    try:
        path, current = lookup(name)
    except FSANetError:
        return _not_found()
    return _served(path, request, IMMUTABLE) if digest == current else _not_found()


def _model(name: str, digest: str, request: Request) -> Response:
    return _graph(_model_file, {n for _, n in model_choices()}, name, digest, request)


def _detector(name: str, digest: str, request: Request) -> Response:
    return _graph(_detector_file, {n for _, n in detector_choices()}, name, digest, request)


def _page_file(name: str, request: Request) -> Response:
    if name not in PAGE_FILES:
        return _not_found()
    return _served(STATIC / name, request, "no-cache")  # revalidated (ETag): changes with the code


def _ort_file(version: str, name: str, request: Request) -> Response:
    folder = webassets.ort_web_dir()
    if folder is None or version != webassets.ORT_WEB_VERSION or name not in webassets.ORT_WEB_FILES:
        return _not_found()
    return _served(folder / name, request, IMMUTABLE)


def add_routes(app: FastAPI) -> None:
    """Serve the routes of the module docstring from ``app`` (Gradio's, once launched)."""
    app.add_api_route(f"/{PREFIX}/webcam/config", _config, methods=["GET"])
    app.add_api_route(f"/{PREFIX}/webcam/model/{{name}}/{{digest}}.onnx", _model, methods=["GET"])
    app.add_api_route(f"/{PREFIX}/webcam/detector/{{name}}/{{digest}}.onnx", _detector, methods=["GET"])
    app.add_api_route(f"/{PREFIX}/static/ort/{{version}}/{{name}}", _ort_file, methods=["GET"])
    app.add_api_route(f"/{PREFIX}/static/{{name}}", _page_file, methods=["GET"])
