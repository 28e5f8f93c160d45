"""Files handed to Gradio: atomic, content-named or in folders of their own, pruned, never while in use."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from space import outputs


def test_an_old_copy_of_the_same_image_survives_pruning(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "output_dir", lambda: tmp_path)
    monkeypatch.setattr(outputs, "_last_prune", 0.0)  # prune on this call
    image = np.full((8, 8, 3), 200, np.uint8)
    first = Path(outputs.save_jpeg(image))
    stale = time.time() - 2 * outputs.MAX_AGE_S
    os.utime(first, (stale, stale))  # as left by a run hours ago
    other = tmp_path / "unrelated.jpg"
    other.write_bytes(b"x")
    os.utime(other, (stale, stale))
    monkeypatch.setattr(outputs, "_last_prune", 0.0)
    again = Path(outputs.save_jpeg(image))
    assert again == first and again.is_file()  # the returned file is still there for Gradio to serve
    assert not other.exists()  # other stale files are pruned
    assert not list(tmp_path.glob(".*.jpg"))  # no temporary files left behind


def test_a_stale_download_folder_is_pruned_with_its_files(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "output_dir", lambda: tmp_path)
    monkeypatch.setattr(outputs, "_last_prune", 0.0)
    old = outputs.new_folder()  # a video and its JSON, named after the upload
    (old / "clip_pose.mp4").write_bytes(b"x")
    stale = time.time() - 2 * outputs.MAX_AGE_S
    os.utime(old, (stale, stale))
    monkeypatch.setattr(outputs, "_last_prune", 0.0)
    fresh = outputs.new_folder()
    assert fresh.is_dir() and not old.exists()
