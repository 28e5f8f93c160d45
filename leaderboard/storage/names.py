"""The name rule: what a display name may be, and when two names are the same name.

A name is 1-80 letters, digits and ``. _ / + -`` after Unicode NFKC (so full-width letters become plain
ones). Two names are the same when their :func:`name_key` is: NFKC, case-folded, every separator and
punctuation mark left out (``fsanet_caps_1x1.300w_lp/``, ``FSANET-CAPS-1X1.300W-LP`` and
``fsanet_caps_1x1.300w_lp`` are one name). The registry's names are reserved: a look-alike is refused with
the name it imitates, and a name already held by a request or a row is refused with its holder.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import fsanet
from fsanet.models.registry import is_repo_id, is_revision

from ..errors import SubmissionError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]{0,79}")


def name_key(name: str) -> str:
    """What makes two names the same name: NFKC, case-folded, letters and digits only."""
    return "".join(c for c in unicodedata.normalize("NFKC", name).casefold() if c.isalnum())


def official_names() -> dict[str, str]:
    """``{name key: registry name}`` of every name the registry owns: architectures and their tags."""
    names = (*fsanet.list_models(), *fsanet.list_models(pretrained=True, include_unusable=True))
    return {name_key(name): name for name in names}


def validate_name(name: str, taken: Iterable[tuple[str, str]] = ()) -> str:
    """A display name for the board, or SubmissionError: malformed, imitating a registry name, or the same
    name as one in ``taken`` (``(name, who holds it)`` pairs: requests and rows)."""
    name = unicodedata.normalize("NFKC", name).strip()
    if not NAME_PATTERN.fullmatch(name):
        raise SubmissionError(
            "a name is 1-80 letters, digits and . _ / + - (starting with a letter or a digit)"
        )
    key = name_key(name)
    official = official_names().get(key)
    if official is not None:
        raise SubmissionError(
            f"{name!r} is the official model name {official!r} (or looks like it): choose another name"
        )
    for other, holder in taken:
        if name_key(other) == key:
            raise SubmissionError(f"the name {name!r} is already taken by {holder} ({other!r})")
    return name


def validate_repo_id(repo_id: str) -> str:
    """A Hub model repo id ``owner/name`` by the Hub's rules; never a path (nothing is looked up)."""
    repo_id = repo_id.strip()
    if not is_repo_id(repo_id):
        raise SubmissionError(f"{repo_id[:60]!r} is not a Hub repo id (owner/name)")
    return repo_id


def validate_revision(revision: str) -> str:
    revision = revision.strip()
    if not is_revision(revision):
        raise SubmissionError(f"{revision[:60]!r} is not a revision (a commit, tag or branch name)")
    return revision
