"""onnxruntime-web for the Webcam tab: pinned, fetched from the npm registry, served by the Space.

``python -m space.webassets`` (run by ``scripts/install.sh`` when ``npm`` is there; the Space bundle,
:mod:`space.bundle`, fetches the same entry) downloads the pinned tarball with ``npm pack``, checks it against
:data:`ORT_WEB_INTEGRITY` (the registry's sha512), and keeps only the smallest build that runs the models:
the WebAssembly-only API bundle (``ort.wasm.min.mjs``), its Emscripten loader and the SIMD binary, each with
a gzip copy that the Space sends to browsers that accept it. Nothing else is kept, nothing is committed (the
folder is git-ignored), and nothing is fetched at run time: without these files the Webcam tab says so and
streams frames to the server as before.
"""

from __future__ import annotations

import sys
from pathlib import Path

from space.pinned import ROOT, AssetError, Pinned, fetch

ORT_WEB_VERSION = "1.30.0"
ORT_WEB_INTEGRITY = (
    "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
)
# The API bundle (wasm backend only), the Emscripten module it imports, and the binary that module loads.
ORT_WEB_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
VENDOR = f"space/static/vendor/onnxruntime-web-{ORT_WEB_VERSION}"  # under the repository (or the bundle)
VENDOR_DIR = ROOT / VENDOR
ORT_WEB = Pinned(
    "npm",
    "onnxruntime-web",
    ORT_WEB_VERSION,
    {f"package/dist/{name}": f"{VENDOR}/{name}" for name in ORT_WEB_FILES},
    integrity=ORT_WEB_INTEGRITY,
    gzip=(".mjs", ".wasm"),
)


def ort_web_dir() -> Path | None:
    """The folder holding every file of :data:`ORT_WEB_FILES`, or ``None`` when any is missing."""
    return VENDOR_DIR if all((VENDOR_DIR / name).is_file() for name in ORT_WEB_FILES) else None


def main() -> int:
    if ort_web_dir() is None:
        try:
            fetch(ORT_WEB, ROOT)
        except AssetError as error:
            print(f"space.webassets: {error} (the Webcam tab will stream to the server)", file=sys.stderr)
            return 1
    print(f"onnxruntime-web {ORT_WEB_VERSION}: {VENDOR_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
