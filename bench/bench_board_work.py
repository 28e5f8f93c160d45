"""The leaderboard's work per request, per page load and per timer tick, and what one evaluation needs.

    .venv/bin/python bench/bench_board_work.py [--n 32] [--peaks resnet50:224 resnet50:448 ...]

1. One submission of a fresh ``fsanet_caps_1x1`` and its evaluation by a worker, the isolated child included
   (counted there by a ``sitecustomize`` on its path): model builds, weight hashes, config validations and
   dataset loads per process (``tests/work_counters.py``; the targets: <= 3, <= 2, <= 2, 1 per process).
2. The Space's page as ``app.py`` builds it, on a board of two rows: board reads, results tables made and
   registry listings for every function a page load runs, then for each timer tick.
3. The peak address space (``VmPeak``: what the evaluation's ``RLIMIT_AS`` caps) and resident memory of one
   evaluation (the isolated child's code, in a fresh process) of each ``--peaks`` model, beside what
   :func:`leaderboard.service.budget.evaluation_bytes` estimates for it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import fsanet  # noqa: E402
from tests.test_leaderboard_submissions import synthetic_benchmark  # noqa: E402
from tests.work_counters import children_counts, count_in_children, counting  # noqa: E402

WORK = ("model builds", "weight hashes", "config validations", "dataset loads")


def per_request(tmp: Path, n: int) -> None:
    from leaderboard.service.submission import submit_directory
    from leaderboard.service.worker import run_worker

    os.environ["LEADERBOARD_DATA_AFLW2000"] = str(synthetic_benchmark(tmp / "aflw2000", n))
    folder = count_in_children(tmp / "counts", ROOT)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    submits = []
    for index in range(2):
        model = fsanet.save_pretrained(fsanet.create_model("fsanet_caps_1x1"), tmp / f"caps{index}")
        with counting(*WORK) as submit:
            submit_directory(model, name=f"bench/caps{index}")
        submits.append(submit)
    with counting(*WORK) as worker:  # one worker, two requests
        done = run_worker()
    children = children_counts(folder)
    print(f"two requests ({', '.join(r.status for r in done)}), each: submit  child  total")
    for what in WORK:
        each = "   ".join(
            f"{s[what]:6} {c[what]:6} {s[what] + c[what]:6}" for s, c in zip(submits, children, strict=True)
        )
        print(f"  {what:34} {each}")
    print(f"  the worker's own process, both requests: {dict(worker)}")


def page_work(tmp: Path) -> None:
    from gradio.components import Timer

    from leaderboard.storage.results import ResultsStore
    from space import runtime, ui
    from tests.conftest import write_result

    scores = {"mae": 3.0, "mae_yaw": 2.0, "mae_pitch": 3.0, "mae_roll": 4.0, "n": 200, "n_dropped": 0}
    for name in ("a", "b"):
        write_result(ResultsStore(tmp / "board", repo=""), name, scores, model_protocol="protocol 1")
    runtime.weights_status = lambda name: None  # the Photo tab's banner would load weights: not the board's
    demo = ui.build_demo()

    def run(event: str, block: int | None = None) -> dict[str, int]:
        before = dict(counts)
        for function in demo.fns.values():
            if function.fn is not None and any(
                name == event and block in (None, target) for target, name in function.targets
            ):
                function.fn(*[component.value for component in function.inputs])
        return {what: counts[what] - before[what] for what in counts}

    with counting("board reads", "tables made", "registry listings") as counts:  # one count: caches hold
        print(f"page load: {run('load')}")
        for timer in (block for block in demo.blocks.values() if isinstance(block, Timer)):
            print(f"timer tick (every {timer.value:g} s): {run('tick', timer._id)}")
        write_result(ResultsStore(tmp / "board", repo=""), "c", scores, model_protocol="protocol 1")
        print(f"page load after a new row: {run('load')}")


PEAK = """
import json, os, sys
sys.path.insert(0, {root!r})
from leaderboard.service.isolation import _main
job = json.loads(sys.argv[1])
code = _main(job)
lines = open("/proc/self/status").read().splitlines()
wanted = [line for line in lines if line.startswith(("VmPeak", "VmHWM"))]
peaks = {{line.split(":")[0]: int(line.split()[1]) // 1024 for line in wanted}}
print(json.dumps({{"code": code, **peaks}}))
"""


def peaks(tmp: Path, models: list[str], n: int) -> None:
    import torch

    from fsanet.models.families.timm_head import timm_config
    from fsanet.models.registry import build_model
    from leaderboard.service.validation import validate_submission

    data = synthetic_benchmark(tmp / "peaks-data", n)
    for spec in models:
        name, _, size = spec.partition(":")
        torch.manual_seed(0)
        model = build_model(timm_config(name, image_size=int(size))) if size else fsanet.create_model(name)
        folder = fsanet.save_pretrained(model, tmp / "peaks" / spec.replace(":", "-"))
        valid = validate_submission(folder)
        identity = {"weights": valid.identity.weights, "config": valid.identity.config}
        job = {
            "submission": str(folder),
            "request": {"id": "bench", "model_name": "bench", "identity": identity},
            "benchmarks": ["aflw2000"],
            "data_root": str(tmp / "peaks-board"),
            "results_root": str(tmp / "peaks-staging" / spec.replace(":", "-")),
            "out": str(tmp / "peaks-out.json"),
            "progress": str(tmp / "peaks-progress.txt"),
        }
        env = {
            **os.environ,
            "LEADERBOARD_DATA_AFLW2000": str(data),
            "LEADERBOARD_EVAL_MEMORY_MB": "0",
            "ARROW_DEFAULT_MEMORY_POOL": "system",  # as the isolated child runs
            "MALLOC_ARENA_MAX": "2",
            "FSANET_CACHE": str(tmp / "peaks-cache"),  # every export happens, as on a fresh worker
        }
        script = PEAK.format(root=str(ROOT))
        result = subprocess.run(
            [sys.executable, "-c", script, json.dumps(job)], env=env, cwd=ROOT, capture_output=True, text=True
        )
        if result.returncode != 0:
            print(f"{spec}: failed: {result.stderr.strip().splitlines()[-1:]}")
            continue
        measured = json.loads(result.stdout.strip().splitlines()[-1])
        print(
            f"{spec:16} {valid.params / 1e6:6.1f} M params: peak address space {measured['VmPeak']} MB "
            f"(estimated {valid.memory_bytes // 2**20} MB), peak resident {measured['VmHWM']} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=32, help="crops in the synthetic benchmark")
    parser.add_argument(
        "--peaks",
        nargs="*",
        default=["fsanet_caps_1x1", "whenet", "resnet18:224", "resnet50:224", "resnet50:448"],
        help="models whose evaluation's memory to measure: a registry architecture or timm_backbone:size",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.update(LEADERBOARD_DIR=str(tmp / "board"), LEADERBOARD_WORKER="0", LEADERBOARD_SEED="0")
        for name in ("LEADERBOARD_DATA_BIWI", "LEADERBOARD_DATA_BIWI_70_30", "REQUESTS_REPO", "RESULTS_REPO"):
            os.environ.pop(name, None)
        per_request(tmp, args.n)
        page_work(tmp)
        peaks(tmp, args.peaks, args.n)


if __name__ == "__main__":
    main()
