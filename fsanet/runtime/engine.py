"""What every inference engine carries over from its source model: name, config and input size."""

from __future__ import annotations

from torch import nn


class EngineModel(nn.Module):
    """Base of the optimised engines: callable like the source model, with its ``name``, ``config``,
    ``input_size`` and whether it resamples other sizes itself; batches run in chunks of ``chunk``."""

    def __init__(self, source: nn.Module, chunk: int):
        super().__init__()
        self.chunk = chunk
        self.name = getattr(source, "name", type(source).__name__)
        self.config = getattr(source, "config", {})
        self.input_size = int(getattr(source, "input_size", 64))
        self.resizes_input = bool(getattr(source, "resizes_input", False))
