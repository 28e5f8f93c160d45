"""``python -m fsanet export NAME|DIR|REPO_ID --format onnx --out FILE [--opset N]``.

Writes the model as one ONNX graph (the fusion too): float32 ``(N, 3, S, S)`` RGB in [0, 255] in,
``(N, 3)`` [yaw, pitch, roll] degrees out, dynamic batch, with the model's name, config and identity
in the file's metadata (see :mod:`fsanet.runtime.onnx_engine`). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json

from fsanet.cli.args import output_file
from fsanet.models.specs import load_model
from fsanet.runtime.onnx_engine import OPSET, export_onnx
from fsanet.utils.files import check_regular


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a model to ONNX", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("model", help="registry name[.tag], a saved model's folder, or hf-hub:owner/name")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="file format (only onnx)")
    parser.add_argument("--out", required=True, help="the file to write, e.g. model.onnx")
    parser.add_argument(
        "--opset", type=int, choices=range(13, 21), metavar="13-20", default=OPSET, help=f"(default {OPSET})"
    )
    parser.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    path = output_file(args.out)  # before loading anything: a bad --out fails at once, touching nothing
    check_regular(args.model)  # a model folder, never a named pipe or a device
    model = load_model(args.model).eval()
    metadata = export_onnx(model, path, opset=args.opset)
    print(
        json.dumps(
            {
                "name": metadata["fsanet.name"],
                "out": str(path),
                "format": args.format,
                "opset": args.opset,
                "identity": metadata["fsanet.identity"],
                "bytes": path.stat().st_size,
            }
        )
    )
    return 0
