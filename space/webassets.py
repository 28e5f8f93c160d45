"""onnxruntime-web for the Webcam tab: pinned, fetched from the npm registry at install, served by the Space.

``python -m space.webassets`` (run by ``scripts/install.sh`` when ``npm`` is there) downloads the pinned
tarball with ``npm pack``, checks it against :data:`ORT_WEB_INTEGRITY` (the registry's sha512), and keeps only
the smallest build that runs the models: the WebAssembly-only API bundle (``ort.wasm.min.mjs``), its
Emscripten loader and the SIMD binary, each with a gzip copy that the Space sends to browsers that accept
it. Nothing else is kept, nothing is committed (the folder is git-ignored), and nothing is fetched at run
time: without these files the Webcam tab says so and streams frames to the server as before.
"""

from __future__ import annotations

import gzip
import io
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from fsanet.errors import FSANetError
from fsanet.utils.downloads import npm_integrity as integrity
from fsanet.utils.downloads import npm_pack

ORT_WEB_VERSION = "1.30.0"
ORT_WEB_INTEGRITY = (
    "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
)
# The API bundle (wasm backend only), the Emscripten module it imports, and the binary that module loads.
ORT_WEB_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor" / f"onnxruntime-web-{ORT_WEB_VERSION}"
GZIPPED = (".mjs", ".wasm")


class AssetError(RuntimeError):
    """The pinned package could not be fetched or is not the pinned one."""


def ort_web_dir() -> Path | None:
    """The folder holding every file of :data:`ORT_WEB_FILES`, or ``None`` when any is missing."""
    return VENDOR_DIR if all((VENDOR_DIR / name).is_file() for name in ORT_WEB_FILES) else None


def unpack(tarball: bytes, target: Path = VENDOR_DIR) -> Path:
    """Check ``tarball`` against the pin and write the kept files (and their gzip copies) into ``target``."""
    found = integrity(tarball)
    if found != ORT_WEB_INTEGRITY:
        raise AssetError(
            f"onnxruntime-web {ORT_WEB_VERSION} has integrity {found}, expected {ORT_WEB_INTEGRITY}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
            for name in ORT_WEB_FILES:
                data = archive.extractfile(f"package/dist/{name}").read()
                (staging / name).write_bytes(data)
                if name.endswith(GZIPPED):
                    (staging / f"{name}.gz").write_bytes(gzip.compress(data, 9, mtime=0))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def fetch(target: Path = VENDOR_DIR) -> Path:
    """``npm pack`` the pinned version and :func:`unpack` it; a present, complete folder is kept."""
    if target == VENDOR_DIR and ort_web_dir() is not None:
        return target
    try:
        tarball = npm_pack(f"onnxruntime-web@{ORT_WEB_VERSION}", ORT_WEB_INTEGRITY)
    except FSANetError as error:
        raise AssetError(str(error)) from None
    return unpack(tarball, target)


def main() -> int:
    try:
        folder = fetch()
    except AssetError as error:
        print(f"space.webassets: {error}", file=sys.stderr)
        return 1
    print(f"onnxruntime-web {ORT_WEB_VERSION}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
