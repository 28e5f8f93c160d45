"""The Gradio Blocks of the Space: Photo, Webcam, Leaderboard and Submit tabs, each action a named endpoint.

Only wiring lives here: the work is done by :mod:`space.inference` (on top of ``fsanet``) and
:mod:`space.board` (on top of ``leaderboard``).

Environment variables: ``FSANET_DEVICE`` (see :mod:`space.runtime`), ``SPACE_MAX_UPLOAD_MB``
(largest accepted upload, default 20), ``SPACE_CONCURRENCY`` (photo requests run at once,
default 2), plus Gradio's ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``.
"""

from __future__ import annotations

import os

import gradio as gr

from fsanet import list_models
from fsanet.detect.detectors import DEFAULT_DETECTOR, list_detectors
from fsanet.pipeline.estimate import DEFAULT_MODEL
from space import board, inference, runtime
from space.examples import example_images

TITLE = "FSA-Net head pose"
INTRO = (
    "Yaw, pitch and roll of every face in a photo or a webcam stream, with "
    "[FSA-Net](https://github.com/shamangary/FSA-Net) (CVPR 2019) in PyTorch with the authors' weights."
)


def max_upload_mb() -> float:
    return float(os.environ.get("SPACE_MAX_UPLOAD_MB", "20"))


def concurrency() -> int:
    return int(os.environ.get("SPACE_CONCURRENCY", "2"))


def _weights_banner() -> str:
    problem = runtime.weights_status(DEFAULT_MODEL)
    if problem is None:
        return ""
    if problem == "loading":
        return f"⏳ Loading `{DEFAULT_MODEL}`: the first photo may take a few seconds longer."
    return f"⚠️ **The default model's weights are not available.** {problem}"


def _model_choices() -> list[str]:
    models = list_models(pretrained=True)
    return [DEFAULT_MODEL] + [m for m in models if m != DEFAULT_MODEL]


def _photo_tab() -> None:
    gr.Markdown(_weights_banner, elem_id="weights-banner")
    with gr.Row():
        with gr.Column():
            image = gr.Image(
                label="Photo", type="filepath", sources=["upload", "clipboard"], elem_id="photo-input"
            )
            with gr.Row():
                model = gr.Dropdown(_model_choices(), value=DEFAULT_MODEL, label="Model")
                detector = gr.Dropdown(list_detectors(), value=DEFAULT_DETECTOR, label="Face detector")
            run = gr.Button("Estimate head pose", variant="primary", elem_id="photo-run")
            gr.Examples(example_images(), inputs=image, label="Examples")
        with gr.Column():
            annotated = gr.Image(label="Head poses", type="filepath", elem_id="photo-output")
            table = gr.Dataframe(
                headers=inference.FACE_COLUMNS,
                label="Faces (degrees)",
                interactive=False,
                elem_id="photo-faces",
            )
            faces = gr.JSON(label="Faces JSON (same schema as python -m fsanet predict --json)")
    run.click(
        inference.predict,
        [image, model, detector],
        [annotated, faces],
        api_name="predict",
        concurrency_limit=concurrency(),
        concurrency_id="inference",
    ).success(inference.faces_rows, faces, table, api_visibility="private", queue=False)


def _webcam_tab() -> None:
    gr.Markdown(
        "Allow the camera: frames are processed as fast as the server can, and frames captured while "
        "one is being processed are skipped (no backlog)."
    )
    with gr.Row():
        with gr.Column():
            camera = gr.Image(
                label="Camera", sources=["webcam"], streaming=True, type="numpy", elem_id="webcam-input"
            )
            model = gr.Dropdown(_model_choices(), value=DEFAULT_MODEL, label="Model")
        with gr.Column():
            annotated = gr.Image(label="Head poses", streaming=True, elem_id="webcam-output")
            angles = gr.Textbox(label="Angles per face", lines=4, elem_id="webcam-angles")
    frames = gr.State(0)
    camera.stream(
        inference.webcam_frame,
        [camera, model, frames],
        [annotated, angles, frames],
        api_name="webcam",
        stream_every=0.1,
        time_limit=600,
        concurrency_limit=concurrency(),
        concurrency_id="inference",
    )


def build_demo() -> gr.Blocks:
    """The whole Space; call once per process."""
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Tabs():
            with gr.Tab("Photo", id="photo"):
                _photo_tab()
            with gr.Tab("Webcam", id="webcam"):
                _webcam_tab()
            with gr.Tab("Leaderboard", id="leaderboard"):
                board.leaderboard_tab(demo)
            with gr.Tab("Submit", id="submit"):
                board.submit_tab()
    demo.queue(max_size=256, default_concurrency_limit=concurrency())
    return demo


def launch(demo: gr.Blocks, **options) -> None:
    """Serve ``demo`` with the Space's limits; host and port come from GRADIO_SERVER_NAME/PORT."""
    runtime.configure_threads(concurrency())
    runtime.preload(DEFAULT_MODEL, DEFAULT_DETECTOR)
    demo.launch(max_file_size=f"{max_upload_mb():g}mb", ssr_mode=False, show_error=True, **options)
