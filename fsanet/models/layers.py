"""The named building blocks of FSA-Net and SSR-Net-MD, and an activation other nets share.

Every FSA-Net block follows ``../shared/docs/FSANET_ARCHITECTURE.md`` (the official Keras code, checked
numerically). Tensors are NCHW; where the official code flattens NHWC maps, the blocks permute
first so that "pixel" index ``p = h * W + w`` and channel order are the official ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Keras BatchNormalization defaults used by the authors (PyTorch's own eps is 1e-5: wrong here).
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # = 1 - Keras momentum 0.99
# Keras K.epsilon(), inside the capsule squash's square root.
SQUASH_EPS = 1e-7
# tf.nn.l2_normalize's epsilon, used by NetVLAD.
L2_EPS = 1e-12

STREAM_WIDTHS = ((16,), (32, 32), (64, 64), (128, 128))


class SeparableConvBlock(nn.Module):
    """Keras ``SeparableConv2D`` (3x3 depthwise, no bias; 1x1 pointwise with bias) -> BN -> activation."""

    def __init__(self, in_channels: int, out_channels: int, activation: type[nn.Module]):
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.pointwise(self.depthwise(x))))


class Stream(nn.Module):
    """One of the two streams: four levels of separable blocks, 2x2 pools after the first three.

    Returns the outputs of levels 2, 3 and 4 (after their pool), the three feature levels that
    the stage fusion reads: 16x16x32, 8x8x64 and 8x8x128 for a 64x64 input.
    """

    def __init__(self, activation: type[nn.Module], pool: type[nn.Module], in_channels: int = 3):
        super().__init__()
        levels = []
        for widths in STREAM_WIDTHS:
            blocks = []
            for width in widths:
                blocks.append(SeparableConvBlock(in_channels, width, activation))
                in_channels = width
            levels.append(nn.Sequential(*blocks))
        self.levels = nn.ModuleList(levels)
        self.pool = pool(2, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        outputs = []
        for index, level in enumerate(self.levels):
            x = level(x)
            if index < 3:
                x = self.pool(x)
            if index > 0:
                outputs.append(x)
        return outputs[0], outputs[1], outputs[2]


class TwoStreamBackbone(nn.Module):
    """Stream A (ReLU, average pool) and stream B (tanh, max pool) over the same input."""

    def __init__(self):
        super().__init__()
        self.stream_a = Stream(nn.ReLU, nn.AvgPool2d)
        self.stream_b = Stream(nn.Tanh, nn.MaxPool2d)

    def forward(self, x: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """Returns ``((a2, a3, a4), (b2, b3, b4))``."""
        return self.stream_a(x), self.stream_b(x)


class StageFusion(nn.Module):
    """``tanh(conv1x1(b)) * relu(conv1x1(a))``: one stage's feature map U_k.

    ``product_pool`` average-pools the product (FSA-Net stage 3, 16x16 -> 8x8);
    ``branch_pools`` pools each branch before the product (SSR-Net-MD: max on the tanh branch,
    average on the ReLU branch).
    """

    def __init__(
        self, in_channels: int, out_channels: int = 64, product_pool: bool = False, branch_pools: bool = False
    ):
        super().__init__()
        self.conv_tanh = nn.Conv2d(in_channels, out_channels, 1)
        self.conv_relu = nn.Conv2d(in_channels, out_channels, 1)
        self.product_pool = product_pool
        self.branch_pools = branch_pools

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        gate = torch.tanh(self.conv_tanh(b))
        value = torch.relu(self.conv_relu(a))
        if self.branch_pools:
            gate, value = F.max_pool2d(gate, 2), F.avg_pool2d(value, 2)
        fused = gate * value
        return F.avg_pool2d(fused, 2) if self.product_pool else fused


def flatten_pixels(feature_map: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> contiguous (N, H*W, C), pixel index ``h * W + w`` as Keras ``Reshape`` of NHWC.

    Free for a ``channels_last`` map (already NHWC in memory), one copy otherwise.
    """
    n, c = feature_map.shape[:2]
    return feature_map.permute(0, 2, 3, 1).reshape(n, -1, c)


class ConvScoring(nn.Module):
    """1x1 scoring: ``sigmoid(conv1x1(U_k))``, one conv shared by all stages -> (N, H*W)."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(feature_map)).flatten(1)


class VarianceScoring(nn.Module):
    """Variance scoring: population variance over channels (``tf.nn.moments``) -> (N, H*W)."""

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return feature_map.var(dim=1, unbiased=False).flatten(1)


class FineGrainedMapping(nn.Module):
    """Primary capsules ``P_k = rownorm(S_L . S_R,k) . U_bar`` for every stage, stacked.

    ``S_R,k = sigmoid(Dense(a_k))`` (one Dense shared by all stages) is ``m_dim x n_pixels``;
    ``S_L = sigmoid(Dense([a_1, a_2, a_3]))`` is ``rows x m_dim``. Each row of ``S_k`` is divided
    by its sum (L1, all entries are positive, no epsilon).
    """

    def __init__(self, num_stages: int = 3, pixels_per_stage: int = 64, rows: int = 7, m_dim: int = 5):
        super().__init__()
        self.rows, self.m_dim = rows, m_dim
        self.num_pixels = num_stages * pixels_per_stage
        self.s_r = nn.Linear(pixels_per_stage, m_dim * self.num_pixels)
        self.s_l = nn.Linear(num_stages * pixels_per_stage, rows * m_dim)

    def forward(self, scores: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """``scores`` (N, stages, H*W), ``pixels`` U_bar (N, stages*H*W, C) -> (N, stages*rows, C)."""
        n, stages, _ = scores.shape
        s_left = torch.sigmoid(self.s_l(scores.flatten(1))).view(n, 1, self.rows, self.m_dim)
        s_right = torch.sigmoid(self.s_r(scores)).view(n, stages, self.m_dim, self.num_pixels)
        mapping = s_left @ s_right
        mapping = mapping / mapping.sum(dim=-1, keepdim=True)
        return (mapping @ pixels.unsqueeze(1)).flatten(1, 2)


def squash(s: torch.Tensor) -> torch.Tensor:
    """Capsule non-linearity, with Keras' epsilon inside the square root."""
    squared_norm = (s * s).sum(dim=-1, keepdim=True)
    return squared_norm / (1 + squared_norm) * s / torch.sqrt(squared_norm + SQUASH_EPS)


class CapsuleAggregation(nn.Module):
    """Capsule layer with dynamic routing; ``weight`` is Keras' ``W`` (out, in, out_dim, in_dim)."""

    def __init__(self, num_in: int, num_out: int = 3, out_dim: int = 16, in_dim: int = 64, routings: int = 2):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_out, num_in, out_dim, in_dim))
        self.routings = routings
        nn.init.xavier_uniform_(self.weight.view(num_out * num_in, out_dim * in_dim))

    def forward(self, capsules: torch.Tensor) -> torch.Tensor:
        """(N, in, in_dim) -> (N, out, out_dim)."""
        num_out, num_in, out_dim, in_dim = self.weight.shape
        # u_hat[n, j, i] = W[j, i] @ P[n, i], as one batched matmul over the input capsules i.
        weight = self.weight.permute(1, 3, 0, 2).reshape(num_in, in_dim, num_out * out_dim)
        # Contiguous operands: a strided batch makes bmm fall back to one copy per input capsule.
        u_hat = torch.bmm(capsules.transpose(0, 1).contiguous(), weight)  # (in, N, out*out_dim)
        u_hat = u_hat.view(num_in, -1, num_out, out_dim).permute(1, 2, 0, 3).contiguous()  # (N, out, in, dim)
        logits = u_hat.new_zeros(u_hat.shape[:3])
        for iteration in range(self.routings):
            coupling = torch.softmax(logits, dim=1)
            outputs = squash((coupling.unsqueeze(2) @ u_hat).squeeze(2))
            if iteration < self.routings - 1:
                logits = logits + (u_hat @ outputs.unsqueeze(-1)).squeeze(-1)
        return outputs


class MetricAggregation(nn.Module):
    """Two bias-free linear maps: ``out[j] = sum_i K2[i, j] * (P[i] @ K1)``."""

    def __init__(self, num_in: int, num_out: int = 3, out_dim: int = 16, in_dim: int = 64):
        super().__init__()
        self.kernel_features = nn.Parameter(torch.empty(in_dim, out_dim))
        self.kernel_capsules = nn.Parameter(torch.empty(num_in, num_out))
        nn.init.xavier_uniform_(self.kernel_features)
        nn.init.xavier_uniform_(self.kernel_capsules)

    def forward(self, capsules: torch.Tensor) -> torch.Tensor:
        return self.kernel_capsules.t() @ (capsules @ self.kernel_features)


class NetVLADAggregation(nn.Module):
    """NetVLAD as in ``loupe_keras.NetVLAD`` (3 clusters), then a linear map to (out, out_dim)."""

    def __init__(self, num_in: int, num_out: int = 3, out_dim: int = 16, in_dim: int = 64, clusters: int = 3):
        super().__init__()
        self.num_out, self.out_dim = num_out, out_dim
        self.cluster_weights = nn.Parameter(torch.empty(in_dim, clusters))
        self.cluster_biases = nn.Parameter(torch.zeros(clusters))
        self.cluster_centres = nn.Parameter(torch.empty(in_dim, clusters))
        self.hidden = nn.Parameter(torch.empty(in_dim * clusters, num_out * out_dim))
        for weight in (self.cluster_weights, self.cluster_centres, self.hidden):
            nn.init.xavier_uniform_(weight)

    def forward(self, capsules: torch.Tensor) -> torch.Tensor:
        assignment = torch.softmax(
            capsules @ self.cluster_weights + self.cluster_biases, dim=-1
        )  # (N, in, K)
        vlad = capsules.transpose(1, 2) @ assignment  # (N, F, K)
        vlad = vlad - assignment.sum(dim=1, keepdim=True) * self.cluster_centres
        vlad = _l2_normalize(vlad, dim=1).flatten(1)  # row-major (f, k) as Keras
        vlad = _l2_normalize(vlad, dim=1)
        return (vlad @ self.hidden).view(-1, self.num_out, self.out_dim)


def _l2_normalize(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x * torch.rsqrt((x * x).sum(dim=dim, keepdim=True).clamp_min(L2_EPS))


class StageHead(nn.Module):
    """One stage's SSR outputs from its 16-d capsule: Δ from [0:4], η from [4:8], p from [8:16]."""

    def __init__(self, num_angles: int = 3, num_bins: int = 3):
        super().__init__()
        self.num_angles, self.num_bins = num_angles, num_bins
        self.delta = nn.Linear(4, num_angles)
        self.eta = nn.Linear(4, num_angles)
        self.p = nn.Linear(8, num_angles * num_bins)

    def forward(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = torch.relu(self.p(feature[:, 8:16])).view(-1, self.num_angles, self.num_bins)
        return p, torch.tanh(self.delta(feature[:, 0:4])), torch.tanh(self.eta(feature[:, 4:8]))


class MultiStageHeads(nn.Module):
    """Applies one :class:`StageHead` per stage to the aggregated (N, stages, 16) features."""

    def __init__(self, num_stages: int = 3):
        super().__init__()
        self.stages = nn.ModuleList(StageHead() for _ in range(num_stages))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> ``p`` (N, stages, angles, bins), ``delta`` and ``eta`` (N, stages, angles)."""
        outputs = [head(features[:, k]) for k, head in enumerate(self.stages)]
        return tuple(torch.stack(parts, dim=1) for parts in zip(*outputs, strict=True))


class SSRRegression(nn.Module):
    """Soft stagewise regression (``SSRLayer``): bins ``i - s//2``, dynamic ranges, V = 99.

    ``y = V * sum_k (sum_i (i - s_k//2 + η_k) p_k[i]) / prod_{m<=k} s_m (1 + λ Δ_m)``.
    """

    def __init__(self, stage_bins: tuple[int, ...] = (3, 3, 3), lambda_d: float = 1.0, scale: float = 99.0):
        super().__init__()
        self.stage_bins, self.lambda_d, self.scale = tuple(stage_bins), lambda_d, scale
        for k, bins in enumerate(self.stage_bins):
            # From a list, not torch.arange: on the meta device (the weight check's skeleton) arange goes
            # through torch._refs, whose first import costs ~2 s in every process that loads a model.
            offsets = [float(i - bins // 2) for i in range(bins)]
            self.register_buffer(f"offsets_{k}", torch.tensor(offsets), persistent=False)

    def forward(self, p: torch.Tensor, delta: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
        """``p`` (N, stages, angles, bins), ``delta``/``eta`` (N, stages, angles) -> (N, angles)."""
        result = 0
        denominator = 1
        for k, bins in enumerate(self.stage_bins):
            offsets = getattr(self, f"offsets_{k}")
            term = ((offsets + eta[:, k, :, None]) * p[:, k]).sum(dim=-1)
            denominator = denominator * (bins * (1 + self.lambda_d * delta[:, k]))
            result = result + term / denominator
        return result * self.scale


class DenseStageHead(nn.Module):
    """SSR-Net-MD's head on one flattened stage map: Dense(6, tanh) before Δ and η, Dense(9, ReLU) for p."""

    def __init__(self, in_features: int, hidden: int = 6, num_angles: int = 3, num_bins: int = 3):
        super().__init__()
        self.num_angles, self.num_bins = num_angles, num_bins
        self.delta_hidden = nn.Linear(in_features, hidden)
        self.eta_hidden = nn.Linear(in_features, hidden)
        self.p = nn.Linear(in_features, num_angles * num_bins)
        self.delta = nn.Linear(hidden, num_angles)
        self.eta = nn.Linear(hidden, num_angles)

    def forward(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        delta = torch.tanh(self.delta(torch.tanh(self.delta_hidden(feature))))
        eta = torch.tanh(self.eta(torch.tanh(self.eta_hidden(feature))))
        p = torch.relu(self.p(feature)).view(-1, self.num_angles, self.num_bins)
        return p, delta, eta


# ------------------------------------------------------------------------------------ PReLU for ONNX Runtime
def prelu_as_batch_norm(y: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """``prelu(y) = a*y + (1-a)*relu(y)`` for any slope ``a`` (per channel): exact in real arithmetic. On
    feature maps the two products are BatchNormalization nodes once exported: ONNX Runtime runs them and ReLU
    in its blocked layout, while its own PRelu kernel is slow and reorders the layout twice around it (nets
    with a PReLU after every convolution ran 1.6-1.7x faster so: MTCNN, FaceMesh)."""
    if y.dim() == 2:
        return y * slope + F.relu(y) * (1 - slope)
    zeros, ones = torch.zeros_like(slope), torch.ones_like(slope)
    return F.batch_norm(y, zeros, ones, slope, zeros, training=False, eps=0.0) + F.batch_norm(
        F.relu(y), zeros, ones, 1 - slope, zeros, training=False, eps=0.0
    )


class ExportedPReLU(nn.PReLU):
    """``nn.PReLU`` (same parameter, same torch arithmetic) that exports to ONNX as
    :func:`prelu_as_batch_norm`."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return prelu_as_batch_norm(y, self.weight) if torch.onnx.is_in_onnx_export() else super().forward(y)
