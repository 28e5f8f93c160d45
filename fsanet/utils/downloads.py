"""sha256-checked downloads."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request

from fsanet.errors import WeightsUnavailableError

DOWNLOAD_TIMEOUT_S = 30
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024


class ChecksumMismatchError(WeightsUnavailableError):
    """A fetched file is not the one pinned: refused, never cached."""


def download_verified(url: str, sha256: str, max_bytes: int = MAX_DOWNLOAD_BYTES) -> bytes:
    """The bytes at ``url`` if their sha256 is ``sha256``; :class:`WeightsUnavailableError` otherwise."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read(max_bytes + 1)
    except (urllib.error.URLError, OSError) as error:
        raise WeightsUnavailableError(f"{url} could not be fetched ({error})") from error
    if len(data) > max_bytes:
        raise WeightsUnavailableError(f"{url} is larger than {max_bytes} bytes: refused")
    verify_sha256(data, sha256, url)
    return data


def verify_sha256(data: bytes, sha256: str, origin: str) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ChecksumMismatchError(f"{origin} has sha256 {digest}, expected {sha256}: refused")
