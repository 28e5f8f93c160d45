"""The paper's training recipe: Adam (lr 1e-3), x0.1 every 30 epochs, 90 epochs, MAE on [yaw, pitch, roll].

:func:`train` writes into ``out``:

* ``model/``: ``config.json`` + ``model.safetensors`` of the latest epoch, loadable by
  ``fsanet.from_pretrained`` and a leaderboard submission as is; ``best/`` the same for the lowest
  validation MAE;
* ``metrics.csv`` / ``metrics.json`` (one row per epoch) and ``metrics.html`` (plotly curves);
* ``checkpoint/``: ``model.safetensors``, ``optimizer.safetensors`` (Adam's moment tensors) and
  ``state.json`` (epoch, batch, settings, history, scaler, RNG), no pickle. Resuming continues the
  same run exactly: batches and augmentation are functions of ``(seed, epoch, batch)``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from fsanet.errors import FSANetError
from fsanet.models.base import PoseModel
from fsanet.models.catalogue import build_model
from fsanet.models.hub import TRAINING_MODEL_DIR, save_pretrained
from fsanet.training.data import PoseData, batch_loader, epoch_batches, eval_loader
from fsanet.utils.settings import device as choose_device

CHECKPOINT_DIR = "checkpoint"
MODEL_DIR = TRAINING_MODEL_DIR  # config.json + model.safetensors + its card: a submission folder as it is
STATE_FILE = "state.json"
METRIC_FIELDS = (
    "epoch",
    "lr",
    "train_mae",
    "val_mae",
    "val_yaw",
    "val_pitch",
    "val_roll",
    "seconds",
    "images_per_s",
)


@dataclass
class TrainSettings:
    """The paper's defaults (protocol 1); protocol 2 (BIWI 70/30) used ``batch_size=8``."""

    epochs: int = 90
    batch_size: int = 16
    lr: float = 1e-3
    lr_step: int = 30
    lr_gamma: float = 0.1
    seed: int = 0
    augment: bool = True
    num_workers: int = 0
    device: str = "auto"
    amp: str = "auto"  # auto: fp16 with loss scaling on CUDA, off on CPU; or fp16 / bf16 / off
    channels_last: bool = True  # only on CUDA
    val_batch_size: int = 256
    max_steps: int | None = None  # stop (and checkpoint) after this many steps in total
    checkpoint_every: int = 0  # also checkpoint every N steps inside an epoch (0: at epoch ends only)
    progress: bool = True
    # Re-estimate BatchNorm statistics over the un-augmented training set after the last epoch and before
    # each validation: with the authors' momentum (0.99 in Keras) the running averages lag far behind the
    # weights, so the eval-mode model would not predict what it learned.
    recompute_bn: bool = True

    def lr_at(self, epoch: int) -> float:
        return self.lr * self.lr_gamma ** (epoch // self.lr_step)


@dataclass
class TrainResult:
    history: list[dict[str, float]]
    step_losses: list[float] = field(default_factory=list)  # training MAE of every step of this call
    global_step: int = 0
    finished: bool = False


def _amp_dtype(settings: TrainSettings, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or settings.amp == "off":
        return None
    return torch.bfloat16 if settings.amp == "bf16" else torch.float16


def to_input(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """uint8 NHWC -> float32 NCHW on ``device``; the permuted view already has channels_last strides."""
    x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    return x if channels_last else x.contiguous()


def mae_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Keras ``'mae'``: mean absolute error over the batch and the three angles (degrees)."""
    return (predicted.float() - target).abs().mean()


@torch.no_grad()
def evaluate(
    model: PoseModel, data: PoseData, device: torch.device, batch_size: int = 256, channels_last: bool = False
) -> dict[str, float]:
    """MAE per angle and their mean over ``data`` (no augmentation), in eval mode."""
    was_training = model.training
    model.eval()
    total = torch.zeros(3, dtype=torch.float64)
    for images, labels in eval_loader(data, batch_size):
        predicted = model(to_input(images, device, channels_last)).float().cpu()
        total += (predicted - labels).abs().sum(dim=0).double()
    model.train(was_training)
    yaw, pitch, roll = (total / len(data)).tolist()
    return {"val_yaw": yaw, "val_pitch": pitch, "val_roll": roll, "val_mae": (yaw + pitch + roll) / 3}


@torch.no_grad()
def recompute_batchnorm(
    model: PoseModel,
    data: PoseData,
    device: torch.device,
    batch_size: int = 256,
    channels_last: bool = False,
    num_workers: int = 0,
) -> int:
    """Replace every BatchNorm's running statistics by their average over ``data`` (no augmentation).

    Only the BatchNorm layers run in training mode, with a cumulative average (``momentum=None``), as
    ``torch.optim.swa_utils.update_bn`` does; weights are untouched. Returns the number of layers updated.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or len(data) < 2:  # one sample has no batch variance to estimate
        return 0
    was_training = model.training
    momenta = [norm.momentum for norm in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    # Equal-sized batches: the cumulative average weights each batch equally, so a short tail batch would
    # count as much as a full one; spreading the samples evenly keeps every sample's weight the same.
    batches = max(1, math.ceil(len(data) / batch_size))
    per_batch = math.ceil(len(data) / batches)
    try:
        for images, _ in eval_loader(data, per_batch, num_workers):
            if len(images) > 1:
                model(to_input(images, device, channels_last))
    finally:  # an interrupted pass must not leave the layers in cumulative mode
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.train(was_training)
    return len(norms)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in [*tensors.items(), *meta["scalars"].items()]:
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    directory: Path,
    model: PoseModel,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    state: dict[str, Any],
) -> None:
    """Write the checkpoint into a sibling folder, then swap it in (an interrupted save keeps the old one)."""
    staging = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        str(staging / "model.safetensors"),
    )
    tensors, optimizer_meta = _optimizer_tensors(optimizer)
    rng = {"torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng |= {f"cuda_rng.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    save_file(tensors | {f"rng.{k}": v for k, v in rng.items()}, str(staging / "optimizer.safetensors"))
    full_state = {**state, "config": model.config, "optimizer": optimizer_meta, "scaler": scaler.state_dict()}
    (staging / STATE_FILE).write_text(json.dumps(full_state, indent=1))
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    staging.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint_model(directory: Path) -> tuple[PoseModel, dict[str, Any]]:
    """The model (weights loaded) and ``state.json`` of a checkpoint folder."""
    state = json.loads((directory / STATE_FILE).read_text())
    model = build_model(state["config"])
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    return model, state


def write_metrics(out: Path, history: list[dict[str, float]]) -> None:
    with open(out / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METRIC_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    (out / "metrics.json").write_text(json.dumps(history, indent=1))
    import plotly.graph_objects as go

    figure = go.Figure()
    epochs = [row["epoch"] for row in history]
    for key in ("train_mae", "val_mae", "val_yaw", "val_pitch", "val_roll"):
        values = [row.get(key) for row in history]
        if any(v is not None and not math.isnan(v) for v in values):
            figure.add_scatter(x=epochs, y=values, name=key, mode="lines+markers")
    figure.update_layout(xaxis_title="epoch", yaxis_title="MAE (degrees)", title="FSA-Net training")
    figure.write_html(out / "metrics.html", include_plotlyjs="directory")  # plotly.min.js once, works offline


def train(
    model: PoseModel | None,
    train_data: PoseData,
    out: str | Path,
    settings: TrainSettings,
    val_data: PoseData | None = None,
    resume: bool = False,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train ``model`` (with ``resume``: the one in ``out/checkpoint``) and write ``out`` (see module doc)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / CHECKPOINT_DIR
    device = choose_device(settings.device)
    state: dict[str, Any] = {
        "epoch": 0,
        "batch": 0,
        "global_step": 0,
        "history": [],
        "best_val_mae": None,
        "loss_sum": 0.0,
        "loss_steps": 0,
        "settings": dataclasses.asdict(settings),
    }
    if resume:
        if not (checkpoint / STATE_FILE).is_file():
            raise FSANetError(f"nothing to resume: {checkpoint} holds no {STATE_FILE}")
        model, saved = load_checkpoint_model(checkpoint)
        for key in ("seed", "batch_size", "lr", "lr_step", "lr_gamma", "augment"):
            if saved["settings"][key] != getattr(settings, key):
                raise FSANetError(
                    f"--{key.replace('_', '-')} {getattr(settings, key)} differs from the "
                    f"checkpoint's {saved['settings'][key]}: the resumed run would not be the same"
                )
        state.update({k: saved[k] for k in state if k != "settings"})
    elif model is None:
        raise ValueError("train() needs a model unless it resumes")
    elif (checkpoint / STATE_FILE).is_file():
        raise FSANetError(
            f"{checkpoint} exists: pass resume to continue it, or choose another output directory"
        )

    model.to(device).train()
    if device.type == "cuda" and settings.channels_last:
        model.to(memory_format=torch.channels_last)
    channels_last = device.type == "cuda" and settings.channels_last
    amp_dtype = _amp_dtype(settings, device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=settings.lr_at(state["epoch"]), eps=1e-8, fused=device.type == "cuda"
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    if resume:
        tensors = load_file(str(checkpoint / "optimizer.safetensors"))
        _load_optimizer(
            optimizer, {k: v for k, v in tensors.items() if not k.startswith("rng.")}, saved["optimizer"]
        )
        torch.set_rng_state(tensors["rng.torch_rng"])
        if device.type == "cuda":
            cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda_rng.")]
            if cuda_states:
                torch.cuda.set_rng_state_all(cuda_states)
        if saved["scaler"]:  # empty when loss scaling is off
            scaler.load_state_dict(saved["scaler"])

    result = TrainResult(history=state["history"], global_step=state["global_step"])
    batches_per_epoch = len(epoch_batches(len(train_data), settings.batch_size, settings.seed, 0))
    if batches_per_epoch == 0:
        raise FSANetError(f"{len(train_data)} training samples make no full batch of {settings.batch_size}")

    def checkpoint_now() -> None:
        state["global_step"] = result.global_step
        save_checkpoint(checkpoint, model, optimizer, scaler, state)

    while state["epoch"] < settings.epochs:
        epoch = state["epoch"]
        for group in optimizer.param_groups:
            group["lr"] = settings.lr_at(epoch)
        loader = batch_loader(
            train_data,
            settings.batch_size,
            settings.seed,
            epoch,
            state["batch"],
            settings.augment,
            settings.num_workers,
            pin_memory=device.type == "cuda",
        )
        started, images_seen = time.perf_counter(), 0
        bar = tqdm(
            loader,
            total=batches_per_epoch,
            initial=state["batch"],
            desc=f"epoch {epoch + 1}/{settings.epochs}",
            disable=not settings.progress,
            unit="batch",
        )
        for images, labels in bar:
            x = to_input(images, device, channels_last)
            y = labels.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                loss = mae_loss(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            value = float(loss.detach())  # one sync per step: cheap next to the progress bar's needs
            result.step_losses.append(value)
            result.global_step += 1
            state["batch"] += 1
            state["loss_sum"] += value
            state["loss_steps"] += 1
            images_seen += len(labels)
            bar.set_postfix(mae=f"{state['loss_sum'] / state['loss_steps']:.2f}")
            stop = settings.max_steps is not None and result.global_step >= settings.max_steps
            if stop or (settings.checkpoint_every and result.global_step % settings.checkpoint_every == 0):
                if state["batch"] < batches_per_epoch:
                    checkpoint_now()
            if stop:
                break
        bar.close()
        if state["batch"] < batches_per_epoch:  # stopped by max_steps inside the epoch
            return result
        seconds = time.perf_counter() - started
        row = {
            "epoch": epoch + 1,
            "lr": settings.lr_at(epoch),
            "train_mae": state["loss_sum"] / state["loss_steps"],
            "seconds": seconds,
            "images_per_s": images_seen / seconds if seconds else math.nan,
        }
        last_epoch = epoch + 1 == settings.epochs
        if settings.recompute_bn and (val_data is not None or last_epoch):
            recompute_batchnorm(
                model, train_data, device, settings.val_batch_size, channels_last, settings.num_workers
            )
        if val_data is not None:
            row |= evaluate(model, val_data, device, settings.val_batch_size, channels_last)
        state["history"].append(row)
        state.update(epoch=epoch + 1, batch=0, loss_sum=0.0, loss_steps=0)
        save_pretrained(model, out / MODEL_DIR)
        if val_data is not None and (state["best_val_mae"] is None or row["val_mae"] < state["best_val_mae"]):
            state["best_val_mae"] = row["val_mae"]
            save_pretrained(model, out / "best")
        write_metrics(out, state["history"])
        checkpoint_now()
        if on_epoch_end is not None:
            on_epoch_end(row)
        if settings.max_steps is not None and result.global_step >= settings.max_steps:
            return result
    result.finished = True
    return result
