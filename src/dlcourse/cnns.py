"""Modern CNN architectures: the blocks (VGG, NiN, Inception, ResNet, DenseNet, SE, FPN) and
full-size builders (AlexNet, VGG, ResNet) meant to be counted on the ``meta`` device.

Every block maps ``x: (N, C_in, H, W)`` to ``(N, C_out, H', W')``. The full-size builders
follow the published layer lists, so that ``dlcourse.train.count_params_meta`` reproduces the
published parameter counts without allocating a single weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from .conv import _positive_int, global_pool

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "DenseBlock",
    "FPNTopDown",
    "Inception",
    "ResNetSmall",
    "SEBlock",
    "VGG_CONFIGS",
    "build_alexnet",
    "build_resnet",
    "build_vgg",
    "nin_block",
    "transition_block",
    "vgg_block",
]


def _check_input(x: torch.Tensor, c_in: int, name: str = "x") -> None:
    if not torch.is_tensor(x) or x.ndim != 4 or x.shape[1] != c_in:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{name} must be (N, {c_in}, H, W), got {shape}")


# ---------------------------------------------------------------------------------------------
# VGG and NiN blocks


def vgg_block(num_convs: int, c_in: int, c_out: int) -> nn.Sequential:
    """``num_convs`` times (3x3 conv, padding 1, + ReLU), then a 2x2 max-pool of stride 2.

    ``(N, c_in, H, W) -> (N, c_out, H // 2, W // 2)``. Two stacked 3x3 convolutions see a 5x5
    window with :math:`18C^2` weights instead of :math:`25C^2`.
    """
    _positive_int(num_convs, "num_convs")
    _positive_int(c_in, "c_in")
    _positive_int(c_out, "c_out")
    layers: list[nn.Module] = []
    for i in range(num_convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1), nn.ReLU()]
    layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


def nin_block(c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0) -> nn.Sequential:
    """A ``k x k`` conv followed by two 1x1 convs, each with ReLU: a small MLP at every pixel.

    ``(N, c_in, H, W) -> (N, c_out, H', W')`` with ``H' = (H + 2 padding - k) // stride + 1``.
    """
    for value, name in ((c_in, "c_in"), (c_out, "c_out"), (k, "k"), (stride, "stride")):
        _positive_int(value, name)
    _positive_int(padding, "padding", 0)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, padding),
        nn.ReLU(),
        nn.Conv2d(c_out, c_out, 1),
        nn.ReLU(),
        nn.Conv2d(c_out, c_out, 1),
        nn.ReLU(),
    )


# ---------------------------------------------------------------------------------------------
# GoogLeNet's Inception block


class Inception(nn.Module):
    """Four parallel branches concatenated on channels (GoogLeNet, 2014).

    1x1 (``c1``); 1x1 -> 3x3 (``c2 = (reduce, out)``); 1x1 -> 5x5 (``c3 = (reduce, out)``);
    3x3 max-pool -> 1x1 (``c4``). ``(N, c_in, H, W) -> (N, c1 + c2[1] + c3[1] + c4, H, W)``.
    The 1x1 reductions shrink the channels before the expensive 3x3 and 5x5 kernels.
    """

    def __init__(
        self, c_in: int, c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int
    ) -> None:
        super().__init__()
        for value, name in ((c_in, "c_in"), (c1, "c1"), (c4, "c4")):
            _positive_int(value, name)
        for pair, name in ((c2, "c2"), (c3, "c3")):
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise TypeError(f"{name} must be a pair (reduce, out) of ints, got {pair!r}")
            _positive_int(pair[0], f"{name}[0]")
            _positive_int(pair[1], f"{name}[1]")
        self.c_in = c_in
        self.b1 = nn.Sequential(nn.Conv2d(c_in, c1, 1), nn.ReLU())
        self.b2 = nn.Sequential(
            nn.Conv2d(c_in, c2[0], 1), nn.ReLU(), nn.Conv2d(c2[0], c2[1], 3, padding=1), nn.ReLU()
        )
        self.b3 = nn.Sequential(
            nn.Conv2d(c_in, c3[0], 1), nn.ReLU(), nn.Conv2d(c3[0], c3[1], 5, padding=2), nn.ReLU()
        )
        self.b4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(c_in, c4, 1), nn.ReLU()
        )
        self.out_channels = c1 + c2[1] + c3[1] + c4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.c_in)
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)


# ---------------------------------------------------------------------------------------------
# ResNet blocks


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    """Identity when shapes agree, else the projection 1x1 conv (stride) + BatchNorm."""
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection (ResNet-18/34).

    - post-activation (``preact=False``, He et al. 2015):
      :math:`y = \\mathrm{ReLU}(\\mathrm{BN}_2(W_2\\,\\mathrm{ReLU}(\\mathrm{BN}_1(W_1 x)))
      + s(x))`,
      so a zero branch gives :math:`\\mathrm{ReLU}(x)`;
    - pre-activation (``preact=True``, He et al. 2016):
      :math:`y = W_2\\,\\mathrm{ReLU}(\\mathrm{BN}_2(W_1\\,\\mathrm{ReLU}(\\mathrm{BN}_1 x)))
      + s(x)`,
      so a zero branch gives exactly :math:`x`.

    ``s`` is the identity, or a projection (1x1 conv + BN) when ``stride != 1`` or
    ``c_in != c_out``. ``zero_init`` sets the last BatchNorm's :math:`\\gamma` (``bn2``) to 0,
    which makes the branch output exactly 0 at initialization (convolutions have no bias).
    ``(N, c_in, H, W) -> (N, c_out, H / stride, W / stride)``.
    """

    expansion = 1

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        preact: bool = False,
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        _positive_int(c_in, "c_in")
        _positive_int(c_out, "c_out")
        _positive_int(stride, "stride")
        self.c_in, self.preact = c_in, bool(preact)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_in if preact else c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = _shortcut(c_in, c_out, stride)
        if zero_init:
            nn.init.zeros_(self.bn2.weight)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch :math:`F(x)`."""
        if self.preact:
            return self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.c_in)
        out = self.branch(x) + self.shortcut(x)
        return out if self.preact else F.relu(out)


class Bottleneck(nn.Module):
    """1x1 (reduce to ``mid``) -> 3x3 (``stride``) -> 1x1 (expand to ``expansion * mid``), with
    BatchNorm after each conv, a skip connection and a final ReLU (ResNet-50/101/152).

    ``(N, c_in, H, W) -> (N, expansion * mid, H / stride, W / stride)``; the stride sits on the
    3x3 convolution (torchvision's "v1.5"; the parameter count does not depend on it).
    """

    def __init__(self, c_in: int, mid: int, stride: int = 1, expansion: int = 4) -> None:
        super().__init__()
        _positive_int(c_in, "c_in")
        _positive_int(mid, "mid")
        _positive_int(stride, "stride")
        _positive_int(expansion, "expansion")
        c_out = mid * expansion
        self.c_in = c_in
        self.body = nn.Sequential(
            nn.Conv2d(c_in, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.c_in)
        return F.relu(self.body(x) + self.shortcut(x))


# ---------------------------------------------------------------------------------------------
# DenseNet


class DenseBlock(nn.Module):
    """``num_convs`` (BN, ReLU, 3x3 conv with ``growth`` outputs) layers; each one's output is
    concatenated to its input: ``(N, c_in, H, W) -> (N, c_in + num_convs * growth, H, W)``.
    """

    def __init__(self, num_convs: int, c_in: int, growth: int) -> None:
        super().__init__()
        _positive_int(num_convs, "num_convs")
        _positive_int(c_in, "c_in")
        _positive_int(growth, "growth")
        self.c_in = c_in
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm2d(c_in + i * growth),
                nn.ReLU(),
                nn.Conv2d(c_in + i * growth, growth, 3, padding=1),
            )
            for i in range(num_convs)
        )
        self.out_channels = c_in + num_convs * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.c_in)
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=1)
        return x


def transition_block(c_in: int, c_out: int) -> nn.Sequential:
    """DenseNet transition: BN, ReLU, 1x1 conv to ``c_out`` channels, 2x2 average pool.

    ``(N, c_in, H, W) -> (N, c_out, H // 2, W // 2)``.
    """
    _positive_int(c_in, "c_in")
    _positive_int(c_out, "c_out")
    return nn.Sequential(
        nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, c_out, 1), nn.AvgPool2d(2, 2)
    )


# ---------------------------------------------------------------------------------------------
# Aggregation: squeeze-and-excitation and the FPN top-down path


class SEBlock(nn.Module):
    """Squeeze-and-excitation channel gating:
    :math:`y = x \\odot \\sigma(W_2\\,\\mathrm{ReLU}(W_1\\,\\mathrm{GAP}(x)))`, with
    :math:`W_1: C \\to C/r` and :math:`W_2: C/r \\to C`. ``(N, c, H, W) -> (N, c, H, W)``.
    """

    def __init__(self, c: int, r: int = 16) -> None:
        super().__init__()
        _positive_int(c, "c")
        _positive_int(r, "r")
        if c // r < 1:
            raise ValueError(f"r must be <= c so that c // r >= 1, got c={c}, r={r}")
        self.c = c
        self.fc1, self.fc2 = nn.Linear(c, c // r), nn.Linear(c // r, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.c)
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(global_pool(x, "avg")))))
        return x * gate[:, :, None, None]


class FPNTopDown(nn.Module):
    """Feature-pyramid top-down path: a lateral 1x1 conv maps each level to ``out_ch``
    channels; from the coarsest level down, :math:`P_i = L_i(C_i) + \\mathrm{up}(P_{i+1})`
    (nearest-neighbour upsampling to :math:`C_i`'s size).

    ``forward(features)`` takes maps ordered fine to coarse, ``features[i]:
    (N, in_channels[i], H_i, W_i)``, and returns the list of ``(N, out_ch, H_i, W_i)``.
    """

    def __init__(self, in_channels: Sequence[int], out_ch: int) -> None:
        super().__init__()
        if len(in_channels) < 1:
            raise ValueError("in_channels must hold at least one channel count")
        for i, c in enumerate(in_channels):
            _positive_int(c, f"in_channels[{i}]")
        _positive_int(out_ch, "out_ch")
        self.in_channels = tuple(in_channels)
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_ch, 1) for c in in_channels)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != len(self.in_channels):
            raise ValueError(
                f"features must hold {len(self.in_channels)} maps, got {len(features)}"
            )
        for i, (f, c) in enumerate(zip(features, self.in_channels, strict=True)):
            _check_input(f, c, f"features[{i}]")
        outs = [self.lateral[-1](features[-1])]
        for f, lateral in zip(features[-2::-1], list(self.lateral)[-2::-1], strict=True):
            up = F.interpolate(outs[0], size=f.shape[-2:], mode="nearest")
            outs.insert(0, lateral(f) + up)
        return outs


# ---------------------------------------------------------------------------------------------
# Full-size builders (count them on the meta device) and a CPU-sized ResNet


def build_alexnet(
    grouped: bool = True,
    n_classes: int = 1000,
    variant: Literal["original", "torchvision"] = "original",
) -> nn.Sequential:
    """AlexNet for ``(N, 3, 227, 227)`` inputs -> ``(N, n_classes)`` logits.

    ``variant="original"`` (Krizhevsky et al. 2012): 96 11x11/4, LRN, 3x3/2 max-pool (overlapping),
    256 5x5 (pad 2), LRN, pool, 384, 384, 256 3x3 (pad 1), pool -> 256*6*6 = 9216 -> 4096 ->
    4096 -> n_classes, with dropout 0.5 before the two 4096-wide layers. ``grouped=True``
    splits conv2, conv4 and conv5 into two groups, as the two GPUs of the paper did.
    ``variant="torchvision"``: the single-GPU 64-192-384-256-256 variant (no LRN, no groups).
    """
    _positive_int(n_classes, "n_classes")
    if variant == "torchvision":
        widths, pad1, lrn, groups = (64, 192, 384, 256, 256), 2, False, 1
    elif variant == "original":
        widths, pad1, lrn, groups = (96, 256, 384, 384, 256), 0, True, 2 if grouped else 1
    else:
        raise ValueError(f"variant must be 'original' or 'torchvision', got {variant!r}")
    c1, c2, c3, c4, c5 = widths

    def norm() -> list[nn.Module]:
        return [nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)] if lrn else []

    return nn.Sequential(
        nn.Conv2d(3, c1, 11, stride=4, padding=pad1),
        nn.ReLU(),
        *norm(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(c1, c2, 5, padding=2, groups=groups),
        nn.ReLU(),
        *norm(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(c2, c3, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(c3, c4, 3, padding=1, groups=groups),
        nn.ReLU(),
        nn.Conv2d(c4, c5, 3, padding=1, groups=groups),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.AdaptiveAvgPool2d(6),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(c5 * 6 * 6, 4096),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(4096, 4096),
        nn.ReLU(),
        nn.Linear(4096, n_classes),
    )


#: (convs per block, channels) of each of the five VGG blocks.
VGG_CONFIGS: dict[str, tuple[tuple[int, int], ...]] = {
    "11": ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)),
    "13": ((2, 64), (2, 128), (2, 256), (2, 512), (2, 512)),
    "16": ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)),
    "19": ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)),
}


def build_vgg(cfg: str = "16", n_classes: int = 1000) -> nn.Sequential:
    """VGG-11/13/16/19 for ``(N, 3, 224, 224)`` -> ``(N, n_classes)``: five ``vgg_block`` s
    (224 -> 7), then 512*7*7 = 25088 -> 4096 -> 4096 -> n_classes with ReLU and dropout."""
    if cfg not in VGG_CONFIGS:
        raise ValueError(f"cfg must be one of {sorted(VGG_CONFIGS)}, got {cfg!r}")
    _positive_int(n_classes, "n_classes")
    blocks, c_in = [], 3
    for num_convs, c_out in VGG_CONFIGS[cfg]:
        blocks.append(vgg_block(num_convs, c_in, c_out))
        c_in = c_out
    return nn.Sequential(
        *blocks,
        nn.AdaptiveAvgPool2d(7),
        nn.Flatten(),
        nn.Linear(c_in * 7 * 7, 4096),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(4096, 4096),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(4096, n_classes),
    )


_RESNET_LAYERS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


def build_resnet(depth: Literal[18, 34, 50, 101, 152] = 50, n_classes: int = 1000) -> nn.Sequential:
    """ResNet-``depth`` for ``(N, 3, 224, 224)`` -> ``(N, n_classes)``.

    Stem 7x7/2 conv (64) + BN + ReLU + 3x3/2 max-pool; four stages of widths 64, 128, 256, 512
    (``BasicBlock``) or bottleneck widths 64..512 expanded 4x (``Bottleneck``), the first block
    of stages 2-4 with stride 2 and a projection shortcut; global average pool; linear head.
    """
    if depth not in _RESNET_LAYERS:
        raise ValueError(f"depth must be one of {sorted(_RESNET_LAYERS)}, got {depth!r}")
    _positive_int(n_classes, "n_classes")
    kind, counts = _RESNET_LAYERS[depth]
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
    ]
    c_in = 64
    for stage, (count, width) in enumerate(zip(counts, (64, 128, 256, 512), strict=True)):
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            if kind == "basic":
                layers.append(BasicBlock(c_in, width, stride))
                c_in = width
            else:
                layers.append(Bottleneck(c_in, width, stride))
                c_in = 4 * width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, n_classes)]
    return nn.Sequential(*layers)


class ResNetSmall(nn.Module):
    """A CPU-sized ResNet: 3x3 stem conv + BN + ReLU, one stage of ``BasicBlock`` s per width
    (stride 2 from the second stage on), global average pooling, linear head.

    With ``blocks=(1, 1, 1)`` it has 1 + 3 * 2 + 1 = 8 weight layers (a ResNet-8).
    ``(N, in_ch, H, W) -> (N, n_classes)`` for any ``H, W`` (the head follows global pooling).
    """

    def __init__(
        self,
        in_ch: int = 1,
        n_classes: int = 10,
        widths: Sequence[int] = (16, 32, 64),
        blocks: Sequence[int] = (1, 1, 1),
    ) -> None:
        super().__init__()
        _positive_int(in_ch, "in_ch")
        _positive_int(n_classes, "n_classes")
        if len(widths) != len(blocks) or len(widths) < 1:
            raise ValueError(
                f"widths and blocks must be non-empty and of equal length, got "
                f"{tuple(widths)} and {tuple(blocks)}"
            )
        self.in_ch = in_ch
        self.stem = nn.Sequential(
            nn.Conv2d(in_ch, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        stages, c_in = [], widths[0]
        for s, (width, count) in enumerate(zip(widths, blocks, strict=True)):
            _positive_int(width, f"widths[{s}]")
            _positive_int(count, f"blocks[{s}]")
            for i in range(count):
                stages.append(BasicBlock(c_in, width, 2 if s > 0 and i == 0 else 1))
                c_in = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(c_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_ch)
        return self.head(global_pool(self.stages(self.stem(x)), "avg"))
