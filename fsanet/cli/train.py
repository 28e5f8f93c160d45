"""``python -m fsanet train``: the paper's recipe over canonical datasets, output fit for the leaderboard."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from fsanet.cli.args import device_name, non_negative_int, output_dir, positive_float, positive_int
from fsanet.errors import FSANetError
from fsanet.models.base import PoseModel
from fsanet.training.data import PROTOCOL_MAX_ANGLE, PoseData
from fsanet.training.loop import MODEL_DIR, TrainSettings, train
from fsanet.utils.files import check_regular


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    defaults = TrainSettings()
    parser = subparsers.add_parser(
        "train",
        help="train a model (paper recipe: Adam 1e-3, x0.1 every 30 epochs, 90 epochs, MAE)",
        description="Train on canonical pose datasets (local directories or Hub dataset repo ids). "
        "Writes model/ (config.json + model.safetensors), best/, metrics.{csv,json,html}, checkpoint/.",
    )
    parser.add_argument("--model", help="registry name, e.g. fsanet_caps_1x1 or fsanet_timm_resnet18")
    parser.add_argument("--train", nargs="+", required=True, metavar="DATASET", help="concatenated in order")
    parser.add_argument("--val", metavar="DATASET", help="validation set: MAE logged after every epoch")
    parser.add_argument("--out", required=True, type=Path, help="run folder (created)")
    parser.add_argument("--split", help="dataset split (default: train, else the only one / test)")
    parser.add_argument("--epochs", type=positive_int, default=defaults.epochs)
    parser.add_argument(
        "--batch-size", type=positive_int, default=defaults.batch_size, help="16: protocol 1, 8: protocol 2"
    )
    parser.add_argument("--lr", type=positive_float, default=defaults.lr)
    parser.add_argument(
        "--lr-step", type=positive_int, default=defaults.lr_step, help="epochs between lr decays"
    )
    parser.add_argument("--lr-gamma", type=positive_float, default=defaults.lr_gamma)
    parser.add_argument("--seed", type=non_negative_int, default=defaults.seed)
    parser.add_argument(
        "--no-augment", action="store_true", help="skip the authors' crop/border/zoom augmentation"
    )
    parser.add_argument(
        "--no-bn-recompute",
        action="store_true",
        help="keep the BatchNorm running averages of training instead of re-estimating them over the "
        "un-augmented training set after the last epoch and before each validation",
    )
    parser.add_argument(
        "--max-angle",
        type=float,
        default=PROTOCOL_MAX_ANGLE,
        help="drop samples with any |angle| above this (the authors' ±99°; <0 keeps all)",
    )
    parser.add_argument(
        "--workers", type=non_negative_int, default=defaults.num_workers, help="data-loading processes"
    )
    parser.add_argument(
        "--device",
        type=device_name,
        default=defaults.device,
        help="auto (CUDA when present), cpu, cuda:0, ...",
    )
    parser.add_argument(
        "--amp",
        choices=("auto", "fp16", "bf16", "off"),
        default=defaults.amp,
        help="mixed precision on CUDA (auto: fp16 with loss scaling)",
    )
    parser.add_argument(
        "--no-channels-last", action="store_true", help="keep NCHW-contiguous tensors on CUDA"
    )
    parser.add_argument(
        "--max-steps", type=positive_int, help="stop (and checkpoint) after this many steps in total"
    )
    parser.add_argument(
        "--checkpoint-every", type=non_negative_int, default=0, help="also checkpoint every N steps"
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out/checkpoint")
    parser.add_argument(
        "--aggregation", default="caps", choices=("caps", "netvlad", "metric"), help="fsanet_timm_* only"
    )
    parser.add_argument(
        "--scoring", default="1x1", choices=("1x1", "var", "uniform"), help="fsanet_timm_* only"
    )
    parser.add_argument(
        "--pretrained-backbone",
        metavar="FILE|imagenet",
        help="fsanet_timm_*: a local weights file, or 'imagenet' for timm's (needs the Hub)",
    )
    parser.add_argument(
        "--image-size", type=positive_int, help="fsanet_timm_*: backbone input size (default: its config)"
    )
    parser.add_argument("--push-to-hub", metavar="REPO", help="upload the final model to this Hub repo")
    parser.add_argument("--trained-on", help="the training data's name for the board, e.g. 300W-LP")
    parser.add_argument(
        "--protocol",
        choices=("protocol 1", "protocol 2"),
        help="the test protocol it is trained for (protocol 1: without BIWI; protocol 2: BIWI's 70%%)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def create_training_model(args: argparse.Namespace) -> PoseModel:
    """An untrained model for ``--model``, built by its family (with the training options if it takes any)."""
    from fsanet.models.catalogue import split_name
    from fsanet.models.pretrained import create_model

    family = split_name(args.model)[0]  # an unknown name: UnknownModelError lists the known
    if family.for_training is None:
        return create_model(args.model, pretrained=False)
    options = {
        "aggregation": args.aggregation,
        "scoring": args.scoring,
        "pretrained_backbone": args.pretrained_backbone,
        "image_size": args.image_size,
    }
    try:
        return family.for_training(args.model, options)
    except (ValueError, FileNotFoundError) as error:
        raise FSANetError(str(error)) from error


def run(args: argparse.Namespace) -> int:
    if not args.resume and not args.model:
        raise FSANetError("--model is required (unless --resume)")
    settings = TrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_step=args.lr_step,
        lr_gamma=args.lr_gamma,
        seed=args.seed,
        augment=not args.no_augment,
        num_workers=args.workers,
        device=args.device,
        amp=args.amp,
        channels_last=not args.no_channels_last,
        max_steps=args.max_steps,
        checkpoint_every=args.checkpoint_every,
        progress=not args.quiet,
        recompute_bn=not args.no_bn_recompute,
    )
    for flag, path in [("--train", p) for p in args.train] + [("--val", args.val)]:
        if path:
            check_regular(path, flag)
    if args.pretrained_backbone and args.pretrained_backbone != "imagenet":
        check_regular(args.pretrained_backbone, "--pretrained-backbone")
    output_dir(args.out)
    max_angle = None if args.max_angle < 0 else args.max_angle
    model = None
    if not args.resume:  # before reading any data: an unknown --model fails at once
        torch.manual_seed(args.seed)  # the initial weights are part of the seeded run
        model = create_training_model(args)
        # What the board needs to rank it (and save_pretrained writes): stated here, known to nobody else.
        model.config |= {k: v for k, v in (("trained_on", args.trained_on), ("protocol", args.protocol)) if v}
    train_data = PoseData.open(args.train, args.split, max_angle)
    val_data = PoseData.open([args.val], args.split, max_angle) if args.val else None
    result = train(
        model,
        train_data,
        args.out,
        settings,
        val_data,
        resume=args.resume,
        on_epoch_end=None if args.quiet else lambda row: print(json.dumps(row)),
    )
    if not result.finished:
        print(f"stopped after step {result.global_step}; continue with --resume")
        return 0
    model_dir = args.out / MODEL_DIR
    print(f"saved {model_dir} (config.json + model.safetensors)")
    if args.push_to_hub:
        from fsanet.models.hub import load_directory, push_to_hub

        print(push_to_hub(load_directory(model_dir), args.push_to_hub))
    return 0
