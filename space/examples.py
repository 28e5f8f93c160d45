"""Example scenes safe to ship, made at start-up from scikit-image's public-domain photos.

* ``group.jpg``: three people side by side (the cameraman, the astronaut, the cameraman mirrored),
  so numbering left to right and opposite yaw signs can be seen at once;
* ``turned.jpg``: the cameraman, head turned about 45° (yaw < 0) and tilted;
* ``astronaut.jpg``: a frontal face.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data


def _scenes() -> dict[str, Image.Image]:
    astronaut = Image.fromarray(np.ascontiguousarray(data.astronaut()))
    cameraman = Image.fromarray(data.camera()).convert("RGB")
    mirrored = cameraman.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    group = Image.new("RGB", (3 * 512, 512), (255, 255, 255))
    for i, person in enumerate((cameraman, astronaut, mirrored)):
        group.paste(person, (512 * i, 0))
    return {"group.jpg": group, "turned.jpg": cameraman, "astronaut.jpg": astronaut}


def example_images(directory: Path | None = None) -> list[str]:
    """Paths of the example scenes (group, turned head, frontal), written once per machine."""
    directory = directory or Path(tempfile.gettempdir()) / "fsanet-space-examples"
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, image in _scenes().items():
        path = directory / name
        if not path.exists():  # write then rename: processes starting together never see half a file
            with tempfile.NamedTemporaryFile(dir=directory, suffix=".jpg", delete=False) as handle:
                image.save(handle, format="JPEG", quality=92)
            os.replace(handle.name, path)
        paths.append(str(path))
    return paths
