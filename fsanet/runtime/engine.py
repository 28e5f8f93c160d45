"""What every inference engine carries over from its source model: name, config, identity, input size and
input contract; subclasses only run their graph."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from fsanet.models.base import as_model_input
from fsanet.models.identity_cache import known_identity


class EngineModel(nn.Module):
    """Base of the optimised engines: callable like the source model, with its ``name``, ``config``,
    ``identity`` (the one it carried when the engine was built, if any: never hashed again here),
    ``input_size`` and whether it resamples other sizes itself; batches run in chunks of ``chunk``."""

    def __init__(self, source: nn.Module, chunk: int):
        super().__init__()
        self.chunk = chunk
        self.name = getattr(source, "name", type(source).__name__)
        self.config = getattr(source, "config", {})
        self.identity = known_identity(source)
        self.input_size = int(getattr(source, "input_size", 64))
        self.resizes_input = bool(getattr(source, "resizes_input", False))
        # Graphs are built at input_size; a model that resamples other sizes runs them itself.
        self.other_sizes = source if self.resizes_input else None

    def forward(self, x: Any) -> torch.Tensor:
        x = as_model_input(x, self.input_size, any_size=self.resizes_input)  # what users pass, as model(x)
        if self.other_sizes is not None and tuple(x.shape[2:]) != (self.input_size, self.input_size):
            with torch.no_grad():
                return self.other_sizes(x)
        return self.run(x)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """The engine's graph on a float ``(N, 3, input_size, input_size)`` batch."""
        raise NotImplementedError

    def angles(self, batch: np.ndarray) -> np.ndarray:
        """``(N, 3)`` degrees of a float32 ``(N, 3, S, S)`` batch of model inputs (what the photo pipeline
        cuts), NumPy in and out; an engine that runs on NumPy itself overrides this."""
        with torch.no_grad():
            return self.forward(torch.from_numpy(batch)).cpu().numpy()
