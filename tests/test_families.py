"""One catalogue: a model family is one module, and everything else learns of it from the registry.

A toy family written into a temporary folder (never into this repository) shows up in ``list_models``, the
CLI, submission validation, the board's method column and the Space's pickers, registered by importing its
module or, in a fresh interpreter, through an ``fsanet.families`` entry point of an installed distribution.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap

import pytest
import torch

import fsanet
from fsanet.errors import InvalidWeightsError
from fsanet.models import family as family_module
from fsanet.models import registry
from tests.conftest import ROOT

TOY_MODULE = textwrap.dedent(
    '''
    """A toy head-pose family: the mean colour of the crop through one linear layer."""

    from typing import Annotated, Literal

    from pydantic import Field
    from torch import nn

    from fsanet import register_family
    from fsanet.data.recipes import fsanet_recipe
    from fsanet.models.base import PoseModel
    from fsanet.models.family import ModelConfig, ModelEntry, Pretrained, TrainingSet

    class ToyConfig(ModelConfig):
        architecture: Literal["toy_pose"]
        width: Annotated[int, Field(ge=1, le=8)]
        image_size: Literal[32]

    def toy_config():
        return {"architecture": "toy_pose", "name": "toy", "width": 3, "image_size": 32}

    TOY_DATA = TrainingSet("300W-LP", "protocol 1", "a toy: for tests only")

    @register_family(
        architecture="toy_pose",
        method="Toy pose",
        schema=ToyConfig,
        recipe=lambda config: fsanet_recipe(32),
        models=(ModelEntry("toy", "Toy pose (linear)", toy_config, (Pretrained("demo", TOY_DATA, "mit"),)),),
        tags=("toy",),
    )
    class ToyPose(PoseModel):
        def __init__(self, config):
            super().__init__(config)
            self.head = nn.Linear(3, config["width"])

        def forward(self, x):
            return self.head(x.mean(dim=(2, 3)))
    '''
)


@pytest.fixture
def toy_family(tmp_path, monkeypatch):
    """The toy family's module on the import path, imported (so registered); unregistered afterwards."""
    (tmp_path / "toy_family.py").write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.families()  # the built-in families first, as in any process
    module = importlib.import_module("toy_family")
    yield module
    family_module._REGISTERED.pop("toy_pose", None)
    sys.modules.pop("toy_family", None)


def test_a_family_module_is_all_it_takes(toy_family, tmp_path, monkeypatch, capsys):
    from fsanet.cli.main import main as fsanet_main
    from leaderboard.display.columns import board_frame
    from leaderboard.errors import SubmissionError
    from leaderboard.protocol.data import write_dataset
    from leaderboard.service.evaluation import evaluate
    from leaderboard.service.submission import submit_directory
    from leaderboard.service.validation import validate_submission
    from leaderboard.storage.results import ResultsStore
    from space.choices import model_choices
    from tests.test_leaderboard_submissions import synthetic_rows

    assert "toy" in fsanet.list_models() and "toy.demo" in fsanet.list_models(pretrained=True)
    assert fsanet_main(["list", "--pretrained"]) == 0 and "toy.demo" in capsys.readouterr().out.split()
    assert dict((value, label) for label, value in model_choices())["toy.demo"].startswith("Toy pose")

    model = fsanet.create_model("toy")
    assert isinstance(model, toy_family.ToyPose) and model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    saved = fsanet.save_pretrained(model, tmp_path / "saved")
    assert "Toy pose" in (saved / "README.md").read_text()  # the model card knows the family
    assert isinstance(toy_family.ToyPose.from_pretrained(str(saved)), toy_family.ToyPose)
    assert validate_submission(saved).params == 3 * 3 + 3

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((saved / "model.safetensors").read_bytes())
    (bad / "config.json").write_text(json.dumps({**model.config, "width": 1000}))
    with pytest.raises(SubmissionError, match="width"):  # the family's own schema bounds it
        validate_submission(bad)

    monkeypatch.setenv("LEADERBOARD_DIR", str(tmp_path / "board"))
    request = submit_directory(saved, name="my-toy")
    assert request.architecture == "toy_pose"
    benchmark = write_dataset(synthetic_rows(8), tmp_path / "aflw2000", {"benchmark": "aflw2000"})
    store = ResultsStore(tmp_path / "board", repo="")
    model.name = "my-toy"  # a community model: "toy" is the registry's own name
    evaluate(model, benchmark, store, progress=False, robustness=False)
    assert board_frame(store.snapshot())["method"].tolist() == ["Toy pose"]  # the board's family column


def test_a_family_from_an_installed_distribution_entry_point(tmp_path):
    """A separate package adds a family by declaring it: a fresh interpreter finds it through its
    ``fsanet.families`` entry point, and the CLI and the Space's pickers offer it."""
    (tmp_path / "toy_family.py").write_text(TOY_MODULE)
    dist = tmp_path / "toy_family-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-family\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[fsanet.families]\ntoy = toy_family\n")
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    listed = subprocess.run(
        [sys.executable, "-m", "fsanet", "list", "--pretrained"], env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0 and "toy.demo" in listed.stdout.split(), listed.stderr
    script = "from space.choices import model_choices; print([v for _, v in model_choices()])"
    offered = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert "'toy.demo'" in offered.stdout, offered.stderr


@pytest.mark.parametrize(
    ("replace", "refusal"),
    [
        ('architecture="toy_pose"', "architecture 'whenet' is WHENet's"),  # a built-in's architecture
        ('ModelEntry("toy", ', "the name 'fsanet_caps_1x1' is FSA-Net's"),  # a built-in's registry name
    ],
)
def test_a_plug_in_never_replaces_a_built_in_family(tmp_path, monkeypatch, caplog, replace, refusal):
    """A plug-in claiming a built-in's architecture or name is refused with a message naming both, imported
    directly or through an entry point; the built-in keeps its place and its models."""
    from importlib.metadata import EntryPoint

    from fsanet.models import catalogue
    from fsanet.models.family import FamilyConflictError

    clash = 'architecture="whenet"' if "architecture" in replace else 'ModelEntry("fsanet_caps_1x1", '
    (tmp_path / "clashing_family.py").write_text(TOY_MODULE.replace(replace, clash))
    monkeypatch.syspath_prepend(str(tmp_path))
    whenet, caps = registry.family("whenet"), registry.model_entry("fsanet_caps_1x1")
    try:
        with pytest.raises(FamilyConflictError, match=refusal):
            importlib.import_module("clashing_family")
        sys.modules.pop("clashing_family", None)
        catalogue._load_entry_point(EntryPoint("clash", "clashing_family", catalogue.ENTRY_POINT_GROUP))
    finally:
        sys.modules.pop("clashing_family", None)
    assert refusal in caplog.text and "clashing_family" in caplog.text  # the entry point: logged, skipped
    assert registry.family("whenet") is whenet and registry.model_entry("fsanet_caps_1x1") is caps
    assert "toy_pose" not in registry.families() and "toy" not in fsanet.list_models()


def test_families_come_in_one_order_whatever_imported_them_first(toy_family):
    """``list_models`` and the pickers list the built-ins by module name, then plug-ins, in any process: a
    module a test or a user imported early (here: every one, in reverse) must not move its names up."""
    expected = list(registry.families())
    held = dict(family_module._REGISTERED)
    # Reordered in place (the toy_family fixture then unregisters the toy from the one real dict).
    family_module._REGISTERED.clear()
    family_module._REGISTERED.update(reversed(held.items()))
    try:
        assert list(registry.families()) == expected and expected[-1] == "toy_pose"
        modules = [fam.model_class.__module__ for fam in registry.families().values()]
        assert modules[:-1] == sorted(modules[:-1]) and all(
            m.startswith("fsanet.models.") for m in modules[:-1]
        )
    finally:
        family_module._REGISTERED.clear()
        family_module._REGISTERED.update(held)


def test_specs_are_explicit_and_a_mistyped_folder_never_asks_the_hub(tmp_path, monkeypatch):
    saved = fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), tmp_path / "runs" / "ssr")
    monkeypatch.chdir(tmp_path)

    def no_hub(*args, **kwargs):
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr("fsanet.models.hub.download_snapshot", no_hub)
    assert (
        registry.parse_spec("runs/ssr").kind == "local" and fsanet.load_model("runs/ssr").name == "ssrnet_md"
    )
    assert fsanet.load_model(f"local-dir:{saved}").name == "ssrnet_md"
    for typo in ("runs/ssr-typo", "./ssr", "~/nowhere/x", "local-dir:runs/nope", "a/b/c"):
        with pytest.raises(InvalidWeightsError, match="no such folder"):
            fsanet.load_model(typo)
    assert registry.parse_spec("hf-hub:owner/name@v1") == registry.ModelSpec("hub", "owner/name", "v1")
    assert registry.parse_spec("fsanet_caps_1x1.biwi").kind == "registry"
    with pytest.raises(InvalidWeightsError, match="hf-hub:owner/name"):
        registry.parse_spec("hf-hub:../etc")


def test_a_family_class_loads_only_its_own_models(tmp_path):
    from fsanet.models.families.fsanet import FSANet
    from fsanet.models.families.ssrnet_md import SSRNetMD

    folder = fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), tmp_path / "ssr")
    assert isinstance(SSRNetMD.from_pretrained(folder), SSRNetMD)
    assert isinstance(fsanet.from_pretrained(folder), SSRNetMD)  # the base class takes any family
    with pytest.raises(InvalidWeightsError, match="holds a SSR-Net-MD model .* not a FSANet"):
        FSANet.from_pretrained(folder)


def test_outside_its_modules_one_source_file_names_a_family():
    """WHENet's name is in its family's modules, and in the Webcam page's port of its crop (JavaScript
    cannot ask the registry) only."""
    own = {ROOT / "fsanet/models/families/whenet.py"}
    naming = sorted(
        str(path.relative_to(ROOT))
        for package in ("fsanet", "leaderboard", "space")
        for pattern in ("*.py", "*.js", "*.html")
        for path in (ROOT / package).rglob(pattern)
        if path not in own and "vendor" not in path.parts and "whenet" in path.read_text().lower()
    )
    assert naming == ["space/static/inpage.js"]
    assert "whenet" not in (ROOT / "app.py").read_text().lower()
