"""``python -m fsanet list | convert | bench`` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import fsanet
import fsanet.models.base
from fsanet.cli.main import main
from tests.conftest import OFFICIAL, ROOT, require_shared


def test_list(capsys):
    assert main(["list", "--pretrained"]) == 0
    listed = capsys.readouterr().out.split()
    assert listed == fsanet.list_models(pretrained=True)
    assert "fsanet_netvlad_var.300w_lp" not in listed  # shipped with NaN weights: refused on load
    assert "fsanet_netvlad_var.biwi" in listed and "fsanet_fusion.300w_lp" in listed


def test_convert_writes_a_loadable_directory(tmp_path, capsys):
    h5 = require_shared(OFFICIAL / "pre-trained/BIWI_models/ssrnet_mt/ssrnet_mt.h5")
    assert main(["convert", str(h5), str(tmp_path / "out")]) == 0
    assert json.loads(capsys.readouterr().out)["architecture"] == "ssrnet_md"
    reference = fsanet.create_model("ssrnet_md.biwi", pretrained=True)
    assert fsanet.model_identity(fsanet.load_model(str(tmp_path / "out"))) == fsanet.model_identity(reference)


def test_convert_of_a_non_h5_file_is_one_clear_line(tmp_path):
    bogus = tmp_path / "weights.h5"
    bogus.write_bytes(b"not hdf5 at all")
    result = subprocess.run(
        [sys.executable, "-m", "fsanet", "convert", str(bogus), str(tmp_path / "o")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_bench_writes_a_report(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "--models",
                "fsanet_caps_1x1",
                "--batches",
                "1",
                "2",
                "--repeats",
                "2",
                "--no-official",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    rows = {(r["backend"], r["batch"]) for r in report["results"]}
    engines = ("torch", "torch-optimized", "onnxruntime")
    assert rows == {(engine, batch) for engine in engines for batch in (1, 2)}
    assert all(r["images_per_s"] > 0 for r in report["results"])
    # Work done per row (the model's FLOPs x faces/s) and the machine's float32 ceiling from the same run.
    flops = fsanet.models.base.gflops_per_face(fsanet.create_model("fsanet_caps_1x1"), 64)
    for row in report["results"]:
        assert row["gflop_per_s"] == pytest.approx(flops * row["images_per_s"], abs=0.06)  # rounded to 0.1
    assert report["machine"]["sgemm_gflop_per_s"] > 0
    assert "GFLOP/s" in capsys.readouterr().out
