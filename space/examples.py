"""Example photos safe to ship: scikit-image's public-domain astronaut (NASA), written at start-up."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data


def example_images(directory: Path | None = None) -> list[str]:
    """Paths of the example photos (the astronaut, and the same photo tilted 20° for roll)."""
    directory = directory or Path(tempfile.gettempdir()) / "fsanet-space-examples"
    directory.mkdir(parents=True, exist_ok=True)
    astronaut = Image.fromarray(np.ascontiguousarray(data.astronaut()))
    images = {
        "astronaut.jpg": astronaut,
        "astronaut_tilted.jpg": astronaut.rotate(
            20, resample=Image.Resampling.BICUBIC, fillcolor=(255, 255, 255)
        ),
    }
    paths = []
    for name, image in images.items():
        path = directory / name
        if not path.exists():  # write then rename: processes starting together never see half a file
            with tempfile.NamedTemporaryFile(dir=directory, suffix=".jpg", delete=False) as handle:
                image.save(handle, format="JPEG", quality=92)
            os.replace(handle.name, path)
        paths.append(str(path))
    return paths
