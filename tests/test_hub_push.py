"""Hub round trips over real HTTP, against a minimal fake Hub on 127.0.0.1: push_to_hub and
from_pretrained (model repos), and the leaderboard's RESULTS_REPO mirror (a dataset repo).

The fake Hub implements only the routes ``huggingface_hub`` (2.4) calls, with Xet disabled, for
``HfApi.create_repo`` + ``HfApi.upload_folder`` / ``upload_file`` / ``create_commit`` of small files (a
stale ``parent_commit`` gets the Hub's 412), ``model_info`` / ``dataset_info`` (with siblings),
``list_repo_tree`` (of a folder) and ``hf_hub_download`` / ``snapshot_download`` at ``main`` or any past
commit. Its preupload answer puts every file in the
"regular" upload mode, so file contents travel base64-encoded inside the NDJSON commit and no LFS
or Xet transfer is involved. Uploaded files are kept in memory, one dict per repo.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import huggingface_hub.constants
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

import fsanet
from fsanet.errors import InvalidWeightsError, WeightsUnavailableError

TOKEN = "hf_fake_token_for_tests"
REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
# Model repos are stored under their id, dataset repos under "datasets/<id>" (the Hub's URL prefix).
API = rf"/api/(?P<kind>models|datasets)/{REPO}"
RESOLVE = rf"/(?P<prefix>datasets/)?{REPO}/resolve/(?P<revision>[^/]+)/(?P<filename>.+)"


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file, which the Hub serves as the ETag of non-LFS files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


INITIAL_COMMIT = hashlib.sha1(b"initial commit").hexdigest()  # 40 hex digits, like a git commit id


@dataclass
class FakeRepo:
    files: dict[str, bytes] = field(default_factory=dict)
    commit: str = INITIAL_COMMIT
    # Every commit's tree, as on the Hub: a file can be read at any past commit, not only at the head.
    history: dict[str, dict[str, bytes]] = field(default_factory=lambda: {INITIAL_COMMIT: {}})

    def commit_files(self, files: dict[str, bytes]) -> str:
        """Add or replace ``files`` in one new commit; returns its id."""
        self.files = {**self.files, **files}
        digest = hashlib.sha1(self.commit.encode())  # parent commit, then the changes
        for name, data in sorted(files.items()):
            digest.update(name.encode() + b"\0" + data)
        self.commit = digest.hexdigest()
        self.history[self.commit] = self.files
        return self.commit

    def tree(self, revision: str) -> dict[str, bytes]:
        return self.files if revision == "main" else self.history[revision]


class FakeHub(http.server.ThreadingHTTPServer):
    """The server, its repos (``repo_id -> FakeRepo``) and a log of ``(method, path, authorization)``."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeHubHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.refused_commits = 0  # commits refused because their parent_commit was stale
        self.commits: list[tuple[str, list[str]]] = []  # (repo key, paths) of every accepted commit
        self.lock = threading.Lock()

    def add_repo(self, repo_id: str, files: dict[str, bytes]) -> None:
        """Put a repo straight into storage, as if someone else had pushed it."""
        repo = self.repos.setdefault(repo_id, FakeRepo())
        repo.commit_files(files)


class FakeHubHandler(http.server.BaseHTTPRequestHandler):
    server: FakeHub

    # --------------------------------------------------------------------------------- plumbing
    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload: object, status: int = 200) -> None:
        self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    def _error(self, status: int, code: str | None = None) -> None:
        # huggingface_hub maps X-Error-Code to its typed errors (RepositoryNotFoundError, ...).
        headers = {"X-Error-Code": code} if code else {}
        self._send(status, json.dumps({"error": code or "not found"}).encode(), headers)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _route(self, pattern: str) -> re.Match[str] | None:
        return re.fullmatch(pattern, unquote(urlsplit(self.path).path))

    def _repo_at(self, match: re.Match[str]) -> FakeRepo | None:
        """The matched repo if it exists and the revision is ``main`` or its head, else an error is sent."""
        dataset = match.groupdict().get("kind") == "datasets" or match.groupdict().get("prefix")
        repo = self.server.repos.get(("datasets/" if dataset else "") + match["repo"])
        revision = match["revision"]
        if repo is None:
            self._error(404, "RepoNotFound")
        elif revision != "main" and revision not in repo.history:
            self._error(404, "RevisionNotFound")
            repo = None
        return repo

    def _log(self) -> None:
        with self.server.lock:
            self.server.requests.append((self.command, self.path, self.headers.get("Authorization")))

    # ----------------------------------------------------------------------------------- routes
    def do_POST(self) -> None:
        self._log()
        if self._route("/api/repos/create"):
            # HfApi.create_repo: 409 when the repo exists, still with its url (exist_ok=True reads it).
            payload = json.loads(self._body())
            repo_id = f"{payload['organization']}/{payload['name']}"
            with self.server.lock:
                exists = repo_id in self.server.repos
                self.server.repos.setdefault(repo_id, FakeRepo())
            return self._json({"url": f"{self.server.url}/{repo_id}"}, status=409 if exists else 200)
        if self._route("/api/validate-yaml"):
            # HfApi checks a README.md's YAML front matter before uploading it (a model card).
            content = json.loads(self._body())["content"]
            front = content.split("---")[1] if content.startswith("---") else ""
            try:
                valid = isinstance(yaml.safe_load(front) or {}, dict)
            except yaml.YAMLError:
                valid = False
            return self._json({"errors": [], "warnings": []}) if valid else self._error(400, "InvalidYaml")
        if match := self._route(rf"{API}/preupload/(?P<revision>[^/]+)"):
            # HfApi.preupload_lfs_files (_commit_api._fetch_upload_modes): everything goes inline.
            if not self._repo_at(match):
                return
            files = json.loads(self._body())["files"]
            modes = [{"path": file["path"], "uploadMode": "regular", "shouldIgnore": False} for file in files]
            return self._json({"files": modes})
        if match := self._route(rf"{API}/commit/(?P<revision>[^/]+)"):
            # HfApi.create_commit (_commit_api._send_commit): NDJSON, a header line then one line per file.
            repo = self._repo_at(match)
            if not repo:
                return
            lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
            if lines[0]["key"] != "header" or any(line["key"] != "file" for line in lines[1:]):
                return self._error(422)  # only inline base64 files are expected here (no LFS, no deletions)
            files = {line["value"]["path"]: base64.b64decode(line["value"]["content"]) for line in lines[1:]}
            parent = lines[0]["value"].get("parentCommit")
            with self.server.lock:
                if parent is not None and parent != repo.commit:
                    # The Hub's answer to a commit whose parent is no longer the branch's head.
                    self.server.refused_commits += 1
                    return self._send(
                        412,
                        json.dumps(
                            {"error": "A commit has happened since. Please refresh and try again."}
                        ).encode(),
                        {"Content-Type": "application/json"},
                    )
                commit = repo.commit_files(files)
                self.server.commits.append((self.path, sorted(files)))
            return self._json(
                {"commitUrl": f"{self.server.url}/{match['repo']}/commit/{commit}", "commitOid": commit}
            )
        self._error(404)

    def do_GET(self) -> None:
        self._log()
        if match := self._route(rf"{API}/revision/(?P<revision>[^/]+)"):
            # HfApi.model_info / dataset_info (repo_info in snapshot_download): the revision's commit.
            if repo := self._repo_at(match):
                tree = repo.tree(match["revision"])
                siblings = [{"rfilename": path, "size": len(data)} for path, data in sorted(tree.items())]
                sha = repo.commit if match["revision"] == "main" else match["revision"]
                self._json({"id": match["repo"], "sha": sha, "private": False, "siblings": siblings})
            return
        if match := self._route(rf"{API}/tree/(?P<revision>[^/]+)(?:/(?P<folder>.+))?"):
            # HfApi.list_repo_tree (snapshot_download): one page, so no "Link: next" header.
            if repo := self._repo_at(match):
                prefix = f"{match['folder']}/" if match["folder"] else ""
                self._json(
                    [
                        {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}
                        for path, data in sorted(repo.tree(match["revision"]).items())
                        if path.startswith(prefix)
                    ]
                )
            return
        if match := self._route(RESOLVE):
            # hf_hub_download: HEAD (get_hf_file_metadata) then GET (http_get) of the same URL.
            if repo := self._repo_at(match):
                data = repo.tree(match["revision"]).get(match["filename"])
                if data is None:
                    return self._error(404, "EntryNotFound")
                # X-Repo-Commit and ETag are required; Content-Length is the size checked after the GET.
                commit = repo.commit if match["revision"] == "main" else match["revision"]
                headers = {"X-Repo-Commit": commit, "ETag": f'"{git_blob_sha1(data)}"'}
                self._send(200, data, {**headers, "Content-Type": "application/octet-stream"})
            return
        self._error(404)

    do_HEAD = do_GET


@pytest.fixture
def fake_hub(monkeypatch, tmp_path) -> Iterator[FakeHub]:
    """A running fake Hub, with huggingface_hub pointed at it and its caches and token in ``tmp_path``."""
    hub = FakeHub()
    thread = threading.Thread(target=hub.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    home = tmp_path / "hf-home"
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # tests/conftest.py sets it for every other test
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    for key, value in {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_DISABLE_XET": "1",
        "HF_TOKEN": TOKEN,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
    }.items():
        monkeypatch.setenv(key, value)
    # huggingface_hub read those variables when it was imported: set the derived constants too.
    constants = huggingface_hub.constants
    for name, value in {
        "ENDPOINT": hub.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "AGENT_HARNESSES_PATH": str(home / ".agent_harnesses.json"),
    }.items():
        monkeypatch.setattr(constants, name, value)
    yield hub
    hub.shutdown()
    hub.server_close()


def state_dicts_equal(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> bool:
    return left.keys() == right.keys() and all(torch.equal(left[key], right[key]) for key in left)


def test_push_to_hub_then_from_pretrained_round_trip(fake_hub: FakeHub, tmp_path):
    model = fsanet.create_model("fsanet_caps_1x1").eval()
    url = model.push_to_hub("alice/fsanet-test")

    repo = fake_hub.repos["alice/fsanet-test"]
    assert url == f"{fake_hub.url}/alice/fsanet-test/commit/{repo.commit}"
    assert sorted(repo.files) == ["README.md", "config.json", "model.safetensors"]  # the card in one commit
    card = repo.files["README.md"].decode()
    assert "library_name: fsanet" in card and "FSA-Net" in card and '"box": "margin"' in card
    assert json.loads(repo.files["config.json"]) == model.config
    assert state_dicts_equal(load_safetensors_bytes(repo.files["model.safetensors"]), model.state_dict())
    commits = [auth for method, path, auth in fake_hub.requests if "/commit/" in path and method == "POST"]
    assert commits == [f"Bearer {TOKEN}"]

    loaded = fsanet.from_pretrained("alice/fsanet-test")
    assert loaded.name == "alice/fsanet-test"
    x = torch.rand(2, 3, 64, 64) * 255
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert (tmp_path / "hf-home" / "hub" / "models--alice--fsanet-test").is_dir()  # the test's cache, not ~

    # A second push (the module-level function this time) replaces the weights; the repo already
    # exists (create_repo gets a 409) and from_pretrained follows main to the new commit.
    retrained = fsanet.create_model("fsanet_caps_1x1").eval()
    first_commit = repo.commit
    fsanet.push_to_hub(retrained, "alice/fsanet-test")
    assert repo.commit != first_commit
    reloaded = fsanet.from_pretrained("alice/fsanet-test")
    with torch.no_grad():
        assert torch.equal(reloaded(x), retrained(x))
        assert not torch.equal(reloaded(x), model(x))


def test_from_pretrained_refuses_a_repo_with_wrong_shapes(fake_hub: FakeHub):
    model = fsanet.create_model("fsanet_caps_1x1")
    tensors = {key: value.clone() for key, value in model.state_dict().items()}
    key = next(key for key, value in tensors.items() if value.ndim >= 2)
    tensors[key] = torch.zeros(*tensors[key].shape[:-1], tensors[key].shape[-1] + 1)
    fake_hub.add_repo(
        "alice/broken",
        {
            "config.json": json.dumps(model.config).encode(),
            "model.safetensors": save_safetensors_bytes(tensors),
        },
    )
    with pytest.raises(InvalidWeightsError, match=rf"{re.escape(key)}: shape"):
        fsanet.from_pretrained("alice/broken")


def test_from_pretrained_of_a_missing_repo_names_the_hub(fake_hub: FakeHub):
    with pytest.raises(WeightsUnavailableError, match="alice/missing"):
        fsanet.from_pretrained("alice/missing")
    assert any("/api/models/alice/missing/" in path for _, path, _ in fake_hub.requests)


def test_results_mirror_to_results_repo_and_pull_back(fake_hub: FakeHub, tmp_path, monkeypatch):
    """RESULTS_REPO: every stored result (JSON + predictions) is uploaded, and a fresh leaderboard
    directory pulls the same table back."""
    from leaderboard.display.columns import board_frame
    from leaderboard.storage.results import ResultsStore

    from .conftest import fill_leaderboard

    fake_hub.add_repo("datasets/alice/results", {})
    monkeypatch.setenv("RESULTS_REPO", "alice/results")
    fill_leaderboard(tmp_path / "board", ("ssrnet_md.300w_lp",))
    stored = ResultsStore(tmp_path / "board")
    uploaded = sorted(fake_hub.repos["datasets/alice/results"].files)
    local = sorted(p.relative_to(stored.root).as_posix() for p in stored.root.glob("[rp]*/*/*.*"))
    assert uploaded == local and len(uploaded) == 2  # results/official/<stem>.json, predictions/official/...

    fresh = ResultsStore(tmp_path / "fresh")
    fresh.pull()
    pd.testing.assert_frame_equal(board_frame(fresh.snapshot()), board_frame(stored.snapshot()))
