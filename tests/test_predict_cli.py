"""``python -m fsanet predict``: JSON lines, annotated images and videos, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from fsanet.cli.main import main

from .conftest import DATA, OFFICIAL, ROOT, require_shared
from .videos import two_astronauts_clip


@pytest.fixture(autouse=True)
def _weights():
    require_shared(OFFICIAL)


@pytest.fixture
def astronaut(tmp_path):
    path = tmp_path / "astronaut.jpg"
    Image.fromarray(skimage.data.astronaut()).save(path)
    return path


def test_json_lines_and_annotated_images(astronaut, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 150), (120, 120, 120)).save(blank)
    assert main(["predict", str(astronaut), str(blank), "--json", "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [line["image"] for line in lines] == [str(astronaut), str(blank)]
    face = lines[0]["faces"][0]
    assert len(lines[0]["faces"]) == 1 and len(face["box"]) == 4
    assert {"score", "yaw", "pitch", "roll"} <= set(face) and abs(face["yaw"]) < 30
    assert lines[1]["faces"] == [] and "no face found" in captured.err
    drawn = cv2.imread(str(tmp_path / "out" / "astronaut_pose.png"))
    assert drawn.shape == (512, 512, 3)
    assert not np.array_equal(drawn[:, :, ::-1], np.asarray(Image.open(astronaut)))


def test_bad_inputs_print_one_line_and_the_run_goes_on(astronaut, tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    code = main(["predict", str(text), str(tmp_path / "missing.jpg"), str(astronaut)])
    captured = capsys.readouterr()
    assert code == 2
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors)
    assert "Traceback" not in captured.err
    assert "astronaut.jpg\tbox=" in captured.out


def test_invalid_options_are_one_line_errors(astronaut, capsys):
    assert main(["predict", str(astronaut), "--max-faces", "0"]) == 2
    assert main(["predict", str(astronaut), "--model", "no_such_model"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_blazeface_detector_from_the_command_line(astronaut, capsys):
    from fsanet import estimate

    assert main(["predict", str(astronaut), "--detector", "blazeface", "--json"]) == 0
    (face,) = json.loads(capsys.readouterr().out)["faces"]
    expected = estimate(astronaut, detector="blazeface").faces[0]
    assert face["yaw"] == round(expected.yaw, 2) and face["box"] == [round(v, 1) for v in expected.box]


def test_video_is_annotated_frame_by_frame_with_smoothing(tmp_path, capsys):
    folder = require_shared(DATA / "aflw2000-sample16")
    frames = [
        np.asarray(Image.open(folder / name).convert("RGB").resize((320, 320)))
        for name in ("image00050.jpg", "image00081.jpg")
    ]
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (320, 320))
    for frame in [frames[0]] * 3 + [frames[1]] * 2:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    assert main(["predict", str(video), "--json", "--smooth", "0.5", "--out", str(tmp_path / "out")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["frame"] for line in lines] == [0, 1, 2, 3, 4]
    assert all(len(line["faces"]) == 1 for line in lines)
    capture = cv2.VideoCapture(str(tmp_path / "out" / "clip_pose.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    capture.release()
    with av.open(str(tmp_path / "out" / "clip_pose.mp4")) as written:  # what browsers play
        stream = written.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"


def test_video_faces_are_numbered_left_to_right_in_every_frame(tmp_path, capsys):
    video = two_astronauts_clip(tmp_path / "two.mp4")
    assert main(["predict", str(video), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["frame"] for line in lines] == [0, 1, 2]
    for line in lines:
        first, second = line["faces"]
        assert first["box"][2] < second["box"][0], "face 1 is the leftmost"
        assert first["score"] < second["score"], "the detector's own order (best first) is the other way"


def test_unreadable_video_is_a_one_line_error(tmp_path, capsys):
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"\x00" * 100)
    assert main(["predict", str(video)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_numbers_the_group_photo_as_the_library_and_the_space_do(tmp_path, capsys):
    """One face order (left to right, decided in the pipeline): ``predict --json``, ``fsanet.estimate`` and
    the Space's JSON (tests/test_space_api.py) list the example group's faces the same way."""
    import fsanet
    from space.examples import example_images

    group = next(p for p in example_images(tmp_path) if p.endswith("group.jpg"))
    assert main(["predict", group, "--json"]) == 0
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    lefts = [face["box"][0] for face in line["faces"]]
    assert len(lefts) == 3 and lefts == sorted(lefts)
    assert line["faces"] == fsanet.to_json(fsanet.estimate(group), group)["faces"]


def test_a_damaged_video_prints_its_readable_frames_then_one_line_and_exits_2(tmp_path, capsys):
    from .videos import damaged_clip

    video = damaged_clip(tmp_path / "clip.mp4", frames=20, damaged=range(5, 8))
    assert main(["predict", str(video), "--json"]) == 2
    captured = capsys.readouterr()
    assert [json.loads(line)["frame"] for line in captured.out.splitlines()] == list(range(17))
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {video} is damaged: 3 of its 20 frames could not be decoded (the other 17 were estimated)"
    ]


def test_errors_name_the_input_once_and_every_input_is_tried(astronaut, tmp_path, capsys, monkeypatch):
    from .hostile_images import png_with_compressed_chunk

    monkeypatch.chdir(tmp_path)
    Path("empty.jpg").touch()
    Image.new("RGB", (8, 8)).save("small.png")
    Path("bomb.png").write_bytes(png_with_compressed_chunk(Path("small.png").read_bytes(), b"zTXt"))
    Path("bad.ppm").write_bytes(b"P6\n64 abc\n255\n" + bytes(100))
    assert main(["predict", "empty.jpg", "bomb.png", "bad.ppm", str(astronaut)]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "error: empty.jpg is empty (0 bytes)",
        "error: bomb.png is refused as a decompression bomb: a compressed text or colour-profile chunk "
        "inflates past Pillow's limit",
        "error: bad.ppm could not be read: invalid literal for int() with base 10: b'abc'",
    ]
    assert "astronaut.jpg\tbox=" in captured.out, "the inputs after the bad ones are still tried"


def test_ssd_without_network_names_the_setting_for_local_files(astronaut, tmp_path):
    """The command as typed, online mode but no network (every connection goes to a proxy that refuses it):
    the one line names ``FSANET_SSD_DIR``, not only the URL that failed."""
    proxy = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused at once
    env = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE", "FSANET_SSD_DIR")}
    env |= {"FSANET_CACHE": str(tmp_path / "cache"), "https_proxy": proxy, "HTTPS_PROXY": proxy}
    argv = ["predict", str(astronaut), "--model", "ssrnet_md.300w_lp", "--detector", "ssd"]
    result = subprocess.run(
        [sys.executable, "-m", "fsanet", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "could not be downloaded" in result.stderr and "FSANET_SSD_DIR" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
