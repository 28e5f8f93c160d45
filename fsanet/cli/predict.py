"""``python -m fsanet predict IMAGE... [--model NAME] [--detector NAME] [--json] [--out DIR]``.

Images: one JSON object per image on stdout with ``--json`` (the :func:`fsanet.pipeline.estimate.to_json`
schema), else a short table. Videos (``.mp4``, ``.avi``, ...): one JSON line per frame (with a
``"frame"`` index; faces numbered left to right, as drawn), a progress bar on a terminal's stderr and,
with ``--out``, an annotated H.264 ``.mp4`` that browsers play. A bad input prints one line on
stderr (naming it once) and the run goes on with the next; the exit code is 2 when any input failed,
a video with unreadable frames included (its readable frames are still reported).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import cv2
from tqdm import tqdm

from fsanet.cli.args import output_dir, positive_int
from fsanet.data.imageio import is_video
from fsanet.detect.detectors import DEFAULT_DETECTOR, list_detectors
from fsanet.errors import FSANetError
from fsanet.pipeline.drawing import draw_poses
from fsanet.pipeline.estimate import DEFAULT_MODEL, MAX_FACES, PoseEstimator, PoseResult, to_json
from fsanet.pipeline.video import H264Writer, PosedFrame, estimate_video, probe_video
from fsanet.utils.files import annotated_name, check_regular


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "predict", help="head poses of every face in images or videos", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE", help="image or video files")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"registry name, folder or Hub id (default {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--detector", default=DEFAULT_DETECTOR, choices=list_detectors(), help="face detector"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per image (or video frame)"
    )
    parser.add_argument("--out", type=Path, help="write annotated images/videos into this folder")
    parser.add_argument(
        "--max-faces",
        type=positive_int,
        default=MAX_FACES,
        help=f"faces kept per image (default {MAX_FACES})",
    )
    parser.add_argument("--cube", action="store_true", help="also draw a head-aligned cube")
    parser.add_argument(
        "--smooth",
        type=float,
        metavar="ALPHA",
        help="videos: exponential smoothing of angles, weight of the new frame",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.smooth is not None and not 0 < args.smooth <= 1:
        raise FSANetError("--smooth must be in (0, 1]")
    if args.out:
        output_dir(args.out)  # before loading anything: a bad --out fails at once
    check_regular(args.model, "--model")  # a model folder, never a named pipe or a device
    estimator = PoseEstimator(args.model, args.detector, max_faces=args.max_faces)
    failed = 0
    for name in args.inputs:
        try:
            check_regular(name)  # a named pipe would block the run, a device never ends
            if is_video(name):
                _predict_video(name, estimator, args)
            else:
                _predict_image(name, estimator, args)
        except (FSANetError, OSError) as error:  # this input's fault: say so, go on with the next
            print(f"error: {naming(name, error)}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0


def naming(name: str, error: Exception) -> str:
    """The error's line naming the input once: the library's messages about a file already start with it."""
    message = str(error)
    return message if name in message else f"{name}: {message}"


def _report(name: str, result: PoseResult, args: argparse.Namespace, frame: int | None = None) -> None:
    where = name if frame is None else f"{name} frame {frame}"
    if result.message:
        print(f"{where}: {result.message}", file=sys.stderr)
    if args.json:
        payload = to_json(result, name)
        if frame is not None:
            payload["frame"] = frame
        print(json.dumps(payload), flush=True)
        return
    for face in result.faces:
        box = ",".join(f"{v:.0f}" for v in face.box)
        print(
            f"{where}\tbox={box}\tscore={face.score:.3f}\tyaw={face.yaw:.1f}\tpitch={face.pitch:.1f}\troll={face.roll:.1f}"
        )


def _predict_image(name: str, estimator: PoseEstimator, args: argparse.Namespace) -> None:
    image = estimator.load(name)
    result = estimator.estimate_rgb(image)
    _report(name, result, args)
    if args.out:
        target = args.out / annotated_name(name, ".png")
        cv2.imwrite(str(target), cv2.cvtColor(draw_poses(image, result, cube=args.cube), cv2.COLOR_RGB2BGR))


def _predict_video(name: str, estimator: PoseEstimator, args: argparse.Namespace) -> None:
    info = probe_video(name)
    writer = H264Writer(args.out / annotated_name(name, ".mp4"), info.fps) if args.out else None
    progress = tqdm(total=info.frames or None, desc=Path(name).name, unit="frame", disable=None)

    def report(frame: PosedFrame) -> None:
        progress.update()
        _report(name, frame.result, args, frame=frame.index)

    with progress, writer if writer is not None else contextlib.nullcontext():
        run = estimate_video(name, estimator, report, writer=writer, smoothing=args.smooth, cube=args.cube)
    if run.problem:  # the readable frames are out; the damage still fails this input
        raise FSANetError(run.problem)
