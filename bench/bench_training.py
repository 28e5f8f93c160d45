"""Training throughput (images/s): the full step (upload, AMP on CUDA, MAE, backward, Adam) and the data
pipeline (Arrow decode + the authors' augmentation), separately, so the slower one is visible.

    python -m bench.bench_training --models fsanet_caps_1x1 fsanet_timm_mobilenetv3_small_100 \
        --batch-sizes 8 16 256 --steps 20 --pipeline-workers 0 4

Prints one JSON object per measurement and the projected protocol-1 epoch time (122,450 crops).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
import torch

from fsanet.models.registry import create_model
from fsanet.training.data import PoseData, batch_loader
from fsanet.training.loop import TrainSettings, _amp_dtype, mae_loss, to_input
from fsanet.utils.settings import device as choose_device

PROTOCOL1_IMAGES = 122_450


def step_throughput(
    name: str, batch_size: int, steps: int, device: torch.device, settings: TrainSettings
) -> float:
    torch.manual_seed(0)
    model = create_model(name).to(device).train()
    channels_last = device.type == "cuda" and settings.channels_last
    if channels_last:
        model.to(memory_format=torch.channels_last)
    amp_dtype = _amp_dtype(settings, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    images = torch.randint(0, 256, (batch_size, 64, 64, 3), dtype=torch.uint8)
    labels = torch.rand(batch_size, 3) * 60 - 30
    if device.type == "cuda":
        images, labels = images.pin_memory(), labels.pin_memory()

    def step() -> None:
        x = to_input(images, device, channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = mae_loss(model(x), labels.to(device, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss.item()  # the training loop syncs once per step for its log, so the benchmark does too

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch_size * steps / (time.perf_counter() - started)


def pipeline_throughput(n: int, batch_size: int, workers: int) -> float:
    """Decode + augment from a PNG-encoded canonical dataset of ``n`` random 64x64 crops."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as directory:
        features = datasets.Features(
            {
                "image": datasets.Image(),
                "yaw": datasets.Value("float64"),
                "pitch": datasets.Value("float64"),
                "roll": datasets.Value("float64"),
            }
        )
        rows = {
            "image": [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(n)],
            "yaw": rng.uniform(-90, 90, n),
            "pitch": rng.uniform(-60, 60, n),
            "roll": rng.uniform(-60, 60, n),
        }
        datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(Path(directory) / "d"))
        data = PoseData.open([Path(directory) / "d"])
        started = time.perf_counter()
        seen = sum(len(y) for _, y in batch_loader(data, batch_size, 0, 0, num_workers=workers))
        return seen / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["fsanet_caps_1x1"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[8, 16, 256])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="auto", choices=("auto", "fp16", "bf16", "off"))
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--pipeline-images", type=int, default=2048)
    parser.add_argument("--pipeline-workers", nargs="*", type=int, default=[0])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = choose_device(args.device)
    settings = TrainSettings(amp=args.amp)
    name_of_device = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    )
    for name in args.models:
        for batch_size in args.batch_sizes:
            rate = step_throughput(name, batch_size, args.steps, device, settings)
            print(
                json.dumps(
                    {
                        "what": "train_step",
                        "model": name,
                        "batch_size": batch_size,
                        "device": name_of_device,
                        "amp": str(_amp_dtype(settings, device)),
                        "images_per_s": round(rate, 1),
                        "protocol1_epoch_s": round(PROTOCOL1_IMAGES / rate, 1),
                    }
                ),
                flush=True,
            )
    for workers in args.pipeline_workers:
        rate = pipeline_throughput(args.pipeline_images, 16, workers)
        print(
            json.dumps(
                {
                    "what": "data_pipeline",
                    "workers": workers,
                    "batch_size": 16,
                    "images_per_s": round(rate, 1),
                    "protocol1_epoch_s": round(PROTOCOL1_IMAGES / rate, 1),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
