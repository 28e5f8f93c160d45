"""Shared test set-up: offline Hub, isolated caches, and the ../shared material."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Never let a test reach the network: a missing Hub file fails at once instead of retrying.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FSANET_SHARED_DIR", ROOT.parent / "shared"))
OFFICIAL = SHARED / "fsanet-official"
WHENET_OFFICIAL = SHARED / "whenet-official"
REFERENCE = SHARED / "reference"
DATA = SHARED / "data"


def require_shared(path: Path) -> Path:
    """Skip (with the reason) when a piece of ../shared is absent, as in a user's fresh clone."""
    if not path.exists():
        pytest.skip(f"{path} is absent: this test needs the project's ../shared material")
    return path


@pytest.fixture(scope="session", autouse=True)
def _session_weights(tmp_path_factory):
    """One weights cache for the whole run (never the user's), fed from the local official mirror.

    Tests of the cache and mirror logic themselves set their own values with monkeypatch.
    """
    saved = {
        k: os.environ.get(k) for k in ("FSANET_CACHE", "FSANET_OFFICIAL_MIRROR", "WHENET_OFFICIAL_MIRROR")
    }
    os.environ["FSANET_CACHE"] = str(tmp_path_factory.mktemp("fsanet-cache"))
    if OFFICIAL.exists():
        os.environ["FSANET_OFFICIAL_MIRROR"] = str(OFFICIAL)
    if WHENET_OFFICIAL.exists():
        os.environ["WHENET_OFFICIAL_MIRROR"] = str(WHENET_OFFICIAL)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# ------------------------------------------------------------------- a filled leaderboard (Space tests)
BOARD_MODELS = ("ssrnet_md.300w_lp", "fsanet_caps_1x1.300w_lp")


def fill_leaderboard(root: Path, models: tuple[str, ...]) -> None:
    """Score ``models`` on the 16 AFLW2000 samples with the leaderboard's own importer and runner."""
    from leaderboard.protocol.importers import prepare_aflw2000
    from leaderboard.service.evaluation import evaluate
    from leaderboard.storage.results import ResultsStore

    dataset = prepare_aflw2000(require_shared(DATA / "aflw2000-sample16"), root / "datasets" / "aflw2000")
    for model in models:
        evaluate(model, dataset, store=ResultsStore(root), robustness=False, progress=False)


@pytest.fixture(scope="module")
def board_dir(tmp_path_factory) -> Path:
    """A leaderboard directory holding the results of ``BOARD_MODELS``."""
    root = tmp_path_factory.mktemp("leaderboard")
    fill_leaderboard(root, BOARD_MODELS)
    return root


def write_result(
    store,
    name: str,
    scores: dict,
    benchmark: str = "aflw2000",
    namespace: str = "community",
    predictions=None,
    **config,
) -> None:
    """Store a row of ``scores`` for a made-up model ``name`` (its identity made from the name)."""
    import hashlib

    import pandas as pd

    from leaderboard.storage.rows import MeasuredRow

    digest = hashlib.sha256(name.encode()).hexdigest()
    row = MeasuredRow.model_validate(
        {
            "model_name": name,
            "namespace": namespace,
            "weights_identity": digest,
            "config_identity": digest[::-1],
            "benchmark": benchmark,
            "dataset_revision": "sha256:abc",
            "code_version": "2",
            **config,
            **scores,
        }
    )
    frame = predictions if predictions is not None else pd.DataFrame({"sample_id": ["s0"]})
    store.write(row, frame)
