"""The Gradio Blocks of the Space: Photo, Webcam, Video, Leaderboard, Submit and About tabs.

Only wiring lives here: the work is done by :mod:`space.inference` (on top of ``fsanet``) and
:mod:`space.board` (on top of ``leaderboard``). Only the endpoints in :data:`PUBLIC_ENDPOINTS` (the
README's table) are offered to API clients; every other event is private to the page.

Environment variables: ``FSANET_DEVICE`` (see :mod:`space.runtime`), the upload caps of
:mod:`space.uploads`, the fairness settings of :mod:`space.fairness`, ``LEADERBOARD_WORKER`` (``0``: no
background worker, see :mod:`leaderboard.settings`; ``LEADERBOARD_SEED``: ``0``, no seeding at start), plus
Gradio's ``GRADIO_SERVER_NAME`` /
``GRADIO_SERVER_PORT``.
"""

from __future__ import annotations

import signal
import sys

import gradio as gr
from starlette.middleware import Middleware

from fsanet.pipeline.estimate import DEFAULT_MODEL
from leaderboard import start_background_worker
from leaderboard.service.seed import start_background_seeding
from leaderboard.settings import worker_enabled
from space import board, clients, inference, inpage, refusals, runtime, settings, uploads
from space.choices import default_detector, detector_choices, model_choices, model_info, models_about
from space.examples import example_images
from space.settings import concurrency

TITLE = "FSA-Net head pose"
INTRO = (
    "Yaw, pitch and roll of every face in a photo, a webcam stream or a video, with "
    "[FSA-Net](https://github.com/shamangary/FSA-Net) (CVPR 2019) in PyTorch with the authors' weights."
)
# The README's endpoint table; tests/test_space_api.py checks Client.view_api() against both.
PUBLIC_ENDPOINTS = ("/predict", "/video", "/leaderboard", "/plots", "/results", "/submit", "/requests")
ANGLES_TEXT = (
    "Angles in degrees, in the authors' convention: **yaw** > 0 when the head turns to the image's "
    "left (the person's right), **pitch** > 0 when it tilts up, **roll** > 0 when it tilts "
    "clockwise on the image. Axes: red x, green y, blue z (out of the face)."
)
# Chromium and Firefox cannot play MPEG-4 Part 2 (OpenCV's "mp4v") and other codecs the server reads:
# the Video input's player then fires "error", and Gradio answers it with a red "Video not playable"
# toast before anything ran. The event is stopped on that one player, in the capture phase (before
# Gradio's own listener on the element); the line under it (inference.clip_status) says what the
# server reads instead. The annotated result is H.264, which browsers play.
PAGE_HEAD = """<script>
document.addEventListener("error", (event) => {
  if (event.target instanceof HTMLVideoElement && event.target.closest("#video-input")) {
    event.stopImmediatePropagation();
  }
}, true);
</script>"""
# What view_api says of the /video parameter (Gradio's own text is FileData's docstring, its internals).
VIDEO_API_HELP = "A video file (MP4, MOV, AVI...): gradio_client's handle_file(path) uploads it."
# Event workers: requests wait in space.fairness's lanes, not in Gradio's queue, so a long queue
# of big uploads cannot delay a small one (the lanes, not this number, bound the CPU work).
WORKERS = 32


def _weights_banner() -> str:
    problem = runtime.weights_status(DEFAULT_MODEL)
    if problem is None:
        return ""
    if problem == "loading":
        return f"⏳ Loading `{DEFAULT_MODEL}`: the first photo may take a few seconds longer."
    return f"⚠️ **The default model's weights are not available.** {problem}"


def _pickers(tab: str) -> tuple[gr.Dropdown, gr.Dropdown]:
    # One per row: a chosen label shows in full (a dropdown's value is one line that cannot wrap).
    model = gr.Dropdown(
        model_choices(), value=DEFAULT_MODEL, label="Model", info=model_info(), elem_id=f"{tab}-model"
    )
    detector = gr.Dropdown(
        detector_choices(), value=default_detector(), label="Face detector", elem_id=f"{tab}-detector"
    )
    return model, detector


def _inference(event, fn, inputs: list, outputs: list, api_name: str, **options) -> gr.events.Dependency:
    """Wire an inference event: all share the worker pool, :mod:`space.fairness` does the scheduling."""
    return event(
        fn,
        inputs,
        outputs,
        api_name=api_name,
        concurrency_limit=WORKERS,
        concurrency_id="inference",
        **options,
    )


def _photo_tab(demo: gr.Blocks) -> None:
    banner = gr.Markdown(elem_id="weights-banner")
    demo.load(_weights_banner, None, banner, api_visibility="private", queue=False)
    with gr.Row():
        with gr.Column():
            image = uploads.uploaded_image(
                label="Photo", type="filepath", sources=["upload", "clipboard"], elem_id="photo-input"
            )
            model, detector = _pickers("photo")
            run = gr.Button("Estimate head pose", variant="primary", elem_id="photo-run")
        with gr.Column():
            annotated = gr.Image(label="Head poses", type="filepath", elem_id="photo-output")
            status = gr.Markdown(elem_id="photo-status")
            table = gr.Dataframe(
                headers=inference.FACE_COLUMNS,
                label="Faces, left to right (degrees)",
                interactive=False,
                elem_id="photo-faces",
            )
            faces = gr.JSON(
                label="Faces JSON (the python -m fsanet predict --json schema, left to right)",
                elem_id="photo-json",
            )
    # Not cached: a click loads the photo, then estimates it with the model and detector picked now.
    examples = gr.Examples(
        example_images(),
        inputs=image,
        label="Examples (a group, a turned head, a frontal face)",
        api_visibility="private",
    )
    with gr.Accordion("How to read the angles", open=False):
        gr.Markdown(ANGLES_TEXT)
        gr.Image(str(board.ANGLES_FIGURE), label="Sign of each angle", interactive=False, show_label=False)
    estimated = _inference(
        run.click, inference.predict, [image, model, detector], [annotated, faces], "predict"
    )
    example = _inference(
        examples.load_input_event.then,
        inference.predict,
        [image, model, detector],
        [annotated, faces],
        "example",
        api_visibility="private",
    )
    # Also after an example: the table and the status follow the JSON, whoever filled it.
    faces.change(inference.faces_rows, faces, table, api_visibility="private", queue=False)
    faces.change(inference.faces_status, faces, status, api_visibility="private", queue=False)
    # A result equal to the last one changes nothing, yet its status must lose an "out of date" mark.
    for done in (estimated, example):
        done.success(inference.faces_status, faces, status, api_visibility="private", queue=False)
    for picker in (model, detector):  # a result on screen is marked out of date, then estimated again
        marked = picker.change(inference.stale_status, faces, status, api_visibility="private", queue=False)
        rerun = _inference(
            marked.then,
            inference.rerun,
            [image, model, detector, faces],
            [annotated, faces],
            "rerun",
            api_visibility="private",
        )
        rerun.success(inference.faces_status, faces, status, api_visibility="private", queue=False)


def _webcam_intro() -> str:
    alike = (
        "the result shows the camera's own view (not a mirror image), faces numbered left to right, and the "
        "angles are the Photo tab's for the same head. Browser only: `/webcam` is not offered to API "
        "clients (send frames to `/predict` instead)."
    )
    if inpage.runs_in_page():
        return (
            "With a BlazeFace detector, the page itself runs the detector and the model (WebAssembly): no "
            "frame leaves your computer. With another detector, or where the browser cannot, frames stream "
            f"to the server below. Either way {alike}"
        )
    return (
        "Frames stream to the server below, a few per second (this Space cannot run the models in your "
        f"browser): {alike}"
    )


def _webcam_tab(demo: gr.Blocks) -> None:
    gr.Markdown(_webcam_intro())
    model, detector = _pickers("webcam")
    gr.HTML(inpage.PANEL_HTML, elem_id="inpage")
    for event in (demo.load, model.change, detector.change):  # tells the page (space/static/webcam.js)
        event(None, [model, detector], None, js=inpage.CHOICE_JS, api_visibility="private", queue=False)
    with gr.Row(elem_id="webcam-server"):
        with gr.Column():
            camera = uploads.uploaded_image(
                label="Camera (server stream; the preview is mirrored, as in a mirror)",
                sources=["webcam"],
                streaming=True,
                type="filepath",
                webcam_options=gr.WebcamOptions(mirror=True),
                elem_id="webcam-input",
            )
        with gr.Column():
            annotated = gr.Image(label="Head poses", streaming=True, elem_id="webcam-output")
            angles = gr.Textbox(label="Angles per face", lines=4, elem_id="webcam-angles")
    frames = gr.State(0)
    _inference(
        camera.stream,
        inference.webcam_frame,
        [camera, model, detector, frames],
        [annotated, angles, frames],
        "webcam",
        api_visibility="private",
        stream_every=0.1,
        time_limit=600,
    )


def _video_tab() -> None:
    gr.Markdown(
        f"Upload a short video (at most {settings.max_video_seconds():g} s, "
        f"{settings.max_video_bytes() / 2**20:g} MB and Full HD frames): every frame is annotated, faces "
        "numbered left to right, and the per-frame angles come as JSON."
    )
    with gr.Row():
        with gr.Column():
            video = gr.Video(label="Video", sources=["upload"], format=None, elem_id="video-input")
            api_info = {**video.api_info(), "additional_description": VIDEO_API_HELP}
            video.api_info = lambda: api_info
            clip = gr.Markdown(elem_id="video-clip")
            model, detector = _pickers("video")
            run = gr.Button("Estimate head poses", variant="primary", elem_id="video-run")
        with gr.Column():
            annotated = gr.Video(label="Annotated video (H.264)", format=None, elem_id="video-output")
            status = gr.Markdown(elem_id="video-status")
            frames = gr.JSON(label="Faces per frame (JSON)")
            download = gr.File(label="Faces per frame (JSON file)", interactive=False, elem_id="video-json")
    # The JSON file's path stays on the server (a State is no API output): /video returns its two values.
    frames_file = gr.State()
    # What the server reads in the clip, at once: the browser may not preview its codec (see PAGE_HEAD).
    video.change(inference.clip_status, video, clip, api_visibility="private", queue=False)
    done = _inference(
        run.click,
        inference.predict_video,
        [video, model, detector],
        [annotated, frames, frames_file],
        "video",
    )
    done.success(inference.video_status, frames, status, api_visibility="private", queue=False)
    done.success(lambda path: path, frames_file, download, api_visibility="private", queue=False)
    for picker in (model, detector):  # a video is minutes of work: marked out of date, not redone unasked
        picker.change(inference.stale_video_status, frames, status, api_visibility="private", queue=False)


def _only_documented_endpoints_public(demo: gr.Blocks) -> None:
    for fn in demo.fns.values():
        if fn.api_visibility == "public" and f"/{fn.api_name}" not in PUBLIC_ENDPOINTS:
            fn.api_visibility = "private"


def build_demo() -> gr.Blocks:
    """The whole Space; call once per process."""
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Tabs():
            with gr.Tab("Photo", id="photo"):
                _photo_tab(demo)
            with gr.Tab("Webcam", id="webcam"):
                _webcam_tab(demo)
            with gr.Tab("Video", id="video"):
                _video_tab()
            with gr.Tab("Leaderboard", id="leaderboard"):
                board.leaderboard_tab(demo)
            with gr.Tab("Submit", id="submit"):
                board.submit_tab()
            with gr.Tab("About", id="about"):
                board.about_tab()
                gr.Markdown(models_about(), elem_id="about-models")  # the pickers' longer story, once
    _only_documented_endpoints_public(demo)
    refusals.install(demo)
    demo.queue(max_size=256, default_concurrency_limit=concurrency())
    return demo


def launch(demo: gr.Blocks, **options) -> None:
    """Serve ``demo`` with the Space's limits; host and port come from GRADIO_SERVER_NAME/PORT."""
    runtime.configure_threads(concurrency())
    runtime.preload(DEFAULT_MODEL, default_detector())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a stopped Space still runs its atexit cleanup
    if worker_enabled():  # submissions reach the board with no other action; evaluations run in children
        start_background_worker()
    start_background_seeding()  # the registry's models scored at start: a ranked board with no command
    clients.distrust_forwarded_headers()  # the client's address is space.clients', from the socket's peer
    demo.launch(
        max_file_size=uploads.max_upload_bytes(),
        app_kwargs={"middleware": [Middleware(uploads.UploadBound)]},  # inside Gradio's session middleware
        ssr_mode=False,
        show_error=False,
        head=PAGE_HEAD + inpage.HEAD_HTML,
        css=board.BOARD_CSS,
        prevent_thread_lock=True,
        **options,
    )
    inpage.add_routes(demo.app)  # Gradio builds its FastAPI app in launch(): the routes go onto the live app
    demo.block_thread()
