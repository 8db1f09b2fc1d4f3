"""InfinityGAN networks: structure synthesizer G_S, texture synthesizer G_T, Generator, and the
discriminator with the auxiliary vertical-coordinate head.

The generator is a pure function of explicit inputs (z_g, z_l window, coordinate window, W+ and
noise maps), so training can feed `torch.randn` while the canvas renderer feeds hashed latents:
nothing inside it knows where on the canvas a window lies. Nothing pads with zeros: every conv is
valid, which is what makes a large window equal to the same window assembled from tiles.

Every modulated layer has two kernels computing the same values, and the caller names one
(`impl`); nothing is inferred from the batch size or the grad mode:
  "batched"  modulation applied to the activations, one shared weight for the whole batch;
             differentiable, any batch size (training, and the reference the other must match);
  "fused"    one sample's modulation, demodulation, gain and bias folded into its conv weight,
             noise and activation in place: fewer activation-sized passes, for inference on a
             batch of one (the canvas renderer on CPU).

`Generator.synthesize_field` is the third way in, for a style that varies along x (a world's
biomes, spatial style fusion): each modulated layer blends the styles of a few anchors per
column (`StyleField`), modulates its input per column and demodulates per output column
(`ops.spatially_modulated_conv2d`). Inference only; where one anchor has weight 1 over a whole
window the canvas renderer takes the kernels above instead, which compute the same values.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import geometry
from .config import DiscriminatorConfig, GeneratorConfig
from .ops import (
    SQRT2,
    EqualConv2d,
    EqualLinear,
    blur,
    center_crop,
    modulated_conv2d,
    modulated_weight,
    spatially_modulated_conv2d,
    up_conv2d,
    upsample_rgb,
)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


Impl = Literal["batched", "fused"]
IMPLS: tuple[Impl, ...] = ("batched", "fused")


def _is_fused(impl: Impl, x: torch.Tensor) -> bool:
    """Validate the caller's kernel choice for input `x`; True for the fused kernel."""
    if impl == "batched":
        return False
    if impl != "fused":
        raise ValueError(f"unknown generator impl {impl!r}; choose one of {IMPLS}")
    if x.shape[0] != 1 or torch.is_grad_enabled():
        # one sample's weight serves the whole batch, and the in-place ops are not for autograd
        raise ValueError(
            f'impl="fused" is for inference on one sample, got batch {x.shape[0]} '
            f"with grad {'enabled' if torch.is_grad_enabled() else 'disabled'}"
        )
    return True


class StyledConv(nn.Module):
    """Modulated conv (optionally the aligned up-conv) + noise injection + fused lrelu."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        style_dim: int,
        kernel: int,
        up: bool = False,
        use_noise: bool = True,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.noise_strength = nn.Parameter(torch.zeros(1)) if use_noise else None
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.up = up

    def forward(
        self,
        x: torch.Tensor,
        style: torch.Tensor,
        noise: torch.Tensor | None = None,
        impl: Impl = "batched",
    ) -> torch.Tensor:
        if _is_fused(impl, x):
            return self._forward_fused(x, style, noise)
        # lrelu(demodulated + noise + bias) * sqrt2 (StyleGAN2's activation), computed as
        # lrelu(sqrt2 * (...)) (lrelu is positively homogeneous): gain and bias ride in the
        # demodulation pass, noise and lrelu go in place, three passes fewer
        out = modulated_conv2d(
            x,
            self.weight * self.scale,
            self.modulation(style),
            up=self.up,
            bias=self.bias,
            gain=SQRT2,
        )
        if self.noise_strength is not None:
            if noise is None:
                noise = torch.randn(
                    out.shape[0], 1, out.shape[2], out.shape[3], device=out.device, dtype=out.dtype
                )
            out.addcmul_(noise.to(out.dtype), (self.noise_strength * SQRT2).to(out.dtype))
        return F.leaky_relu(out, 0.2, inplace=True)

    def _forward_fused(
        self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None
    ) -> torch.Tensor:
        """The batched kernel's values for one sample without activation passes: modulation,
        demodulation and the sqrt(2) gain live in the weight (lrelu(a) * sqrt2 =
        lrelu(sqrt2 * a)), the bias in the conv, and noise and lrelu are applied in place.

        The noise map (one channel) is scaled first and then added: a plain broadcast add_
        over the activation runs 3.5-4x faster on CPU than addcmul_ with the strength tensor
        (6 vs 22 ms at 32 x 1029^2), as fast as the in-place lrelu."""
        w = modulated_weight(self.weight * self.scale, self.modulation(style)[0]) * SQRT2
        bias = self.bias * SQRT2
        out = up_conv2d(x, w, bias) if self.up else F.conv2d(x, w, bias)
        if self.noise_strength is not None:
            if noise is None:
                noise = torch.randn(1, 1, out.shape[2], out.shape[3], device=out.device)
            out.add_(noise.to(out.dtype) * (self.noise_strength * SQRT2))
        return F.leaky_relu_(out, 0.2)

    def forward_spatial(
        self,
        x: torch.Tensor,
        anchors: torch.Tensor,
        weights_in: torch.Tensor,
        weights_out: torch.Tensor,
        noise: torch.Tensor | None,
    ) -> torch.Tensor:
        """The layer with a style blended per column: anchors [B, A, D] (their W, or z_g in
        G_S), blend weights [B, A, W] at the input and output columns (see StyleField)."""
        out = spatially_modulated_conv2d(
            x,
            self.weight * self.scale,
            self.modulation(anchors),
            weights_in,
            weights_out,
            up=self.up,
            bias=self.bias,
            gain=SQRT2,
        )
        if self.noise_strength is not None:
            if noise is None:
                raise ValueError("the spatial kernel renders hashed noise: pass the noise map")
            out.add_(noise.to(out.dtype) * (self.noise_strength * SQRT2))
        return F.leaky_relu_(out, 0.2)


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation, plus bias."""

    def __init__(self, in_ch: int, style_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(3, in_ch, 1, 1))
        self.scale = 1.0 / math.sqrt(in_ch)
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor, style: torch.Tensor, impl: Impl = "batched") -> torch.Tensor:
        if _is_fused(impl, x):
            w = modulated_weight(self.weight * self.scale, self.modulation(style)[0], False)
            return F.conv2d(x, w, self.bias)
        return modulated_conv2d(
            x, self.weight * self.scale, self.modulation(style), demodulate=False, bias=self.bias
        )

    def forward_spatial(
        self, x: torch.Tensor, anchors: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """Per-column blended style, no demodulation (a 1x1 conv: exact, no approximation)."""
        return spatially_modulated_conv2d(
            x, self.weight * self.scale, self.modulation(anchors), weights, None, bias=self.bias
        )


class StructureSynthesizer(nn.Module):
    """G_S: valid (2r+1)x(2r+1) modulated convs on [features, coordinates], modulated by raw z_g.

    Input window n + 2*L*r cells, output n cells (z_S). No noise, no padding.
    """

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        k = 2 * cfg.structure_radius + 1
        self.radius = cfg.structure_radius
        self.layers = nn.ModuleList(
            StyledConv(
                (cfg.z_local_dim if i == 0 else cfg.structure_channels) + 3,
                cfg.structure_channels,
                cfg.z_dim,
                k,
                use_noise=False,
            )
            for i in range(cfg.structure_layers)
        )

    def forward(
        self,
        z_global: torch.Tensor,
        z_local: torch.Tensor,
        coords: torch.Tensor,
        impl: Impl = "batched",
    ) -> torch.Tensor:
        assert z_local.shape[2:] == coords.shape[2:], (z_local.shape, coords.shape)
        x = z_local  # [B, Cl, H, W]
        for i, layer in enumerate(self.layers):
            m = i * self.radius
            c = coords[:, :, m : coords.shape[2] - m, m : coords.shape[3] - m]
            x = layer(torch.cat((x, c.to(x.dtype)), dim=1), z_global, impl=impl)  # H-2r(i+1)
        return x

    def forward_spatial(
        self,
        anchors: torch.Tensor,
        z_local: torch.Tensor,
        coords: torch.Tensor,
        cells: torch.Tensor,
    ) -> torch.Tensor:
        """`forward` with z_g blended per cell column: anchors' z_g [B, A, Z], their weights at
        the input's cell columns [B, A, W] (each layer reads its own columns of them)."""
        x = z_local
        width, r = cells.shape[2], self.radius
        for i, layer in enumerate(self.layers):
            m = i * r
            c = coords[:, :, m : coords.shape[2] - m, m : coords.shape[3] - m]
            x = layer.forward_spatial(
                torch.cat((x, c.to(x.dtype)), dim=1),
                anchors,
                cells[:, :, m : width - m],
                cells[:, :, m + r : width - m - r],
                None,
            )
        return x


class TextureSynthesizer(nn.Module):
    """G_T: StyleGAN2 synthesis on z_S instead of a constant, no zero padding, RGB skips."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.ups = nn.ModuleList()
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_ch = cfg.structure_channels
        for ch in cfg.texture_channels:
            self.ups.append(StyledConv(in_ch, ch, cfg.z_dim, 3, up=True))
            self.convs.append(StyledConv(ch, ch, cfg.z_dim, 3))
            self.to_rgbs.append(ToRGB(ch, cfg.z_dim))
            in_ch = ch

    def forward(
        self,
        z_s: torch.Tensor,
        w_plus: torch.Tensor,
        noise: Sequence[torch.Tensor | None] | None = None,
        impl: Impl = "batched",
    ) -> torch.Tensor:
        n_layers = 2 * len(self.ups)
        if noise is None:
            noise = [None] * n_layers
        assert len(noise) == n_layers, f"expected {n_layers} noise maps, got {len(noise)}"
        x, rgb = z_s, None
        for i, (up, conv, to_rgb) in enumerate(
            zip(self.ups, self.convs, self.to_rgbs, strict=True)
        ):
            x = up(x, w_plus[:, 2 * i], noise[2 * i], impl=impl)  # H -> 2H-3
            x = conv(x, w_plus[:, 2 * i + 1], noise[2 * i + 1], impl=impl)  # -> 2H-5
            new = to_rgb(x, w_plus[:, 2 * i + 2], impl=impl)
            if rgb is not None:  # skip: 2H'-1 -> centre crop 2 per side -> 2H'-5
                new = new + center_crop(upsample_rgb(rgb), new.shape[2], new.shape[3])
            rgb = new
        return rgb

    def forward_spatial(
        self,
        z_s: torch.Tensor,
        anchors: torch.Tensor,
        cells: torch.Tensor,
        layers: Sequence[torch.Tensor],
        noise: Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """`forward` with W blended per column: anchors' W [B, A, D], their weights at z_S's
        columns [B, A, n] and at each conv output's columns (StyleField.layers)."""
        x, rgb, columns = z_s, None, cells
        for i, (up, conv, to_rgb) in enumerate(
            zip(self.ups, self.convs, self.to_rgbs, strict=True)
        ):
            x = up.forward_spatial(x, anchors, columns, layers[2 * i], noise[2 * i])
            columns = layers[2 * i + 1]
            x = conv.forward_spatial(x, anchors, layers[2 * i], columns, noise[2 * i + 1])
            new = to_rgb.forward_spatial(x, anchors, columns)
            if rgb is not None:
                new = new + center_crop(upsample_rgb(rgb), new.shape[2], new.shape[3])
            rgb = new
        return rgb


class StyleField(NamedTuple):
    """A global style that varies along x: A anchors' global latents and, for every column of
    every layer's feature map, the anchors' blend weights (each column sums to 1)."""

    z: torch.Tensor  # [B, A, Z] the anchors' z_g
    cells: torch.Tensor  # [B, A, W] at G_S's input cell columns (its window with margins)
    layers: list[torch.Tensor]  # [B, A, W_l] at each G_T conv output's columns, in layer order


class Synthesis(NamedTuple):
    rgb: torch.Tensor  # [B, 3, h, w]
    structure: torch.Tensor  # z_S, the G_S output [B, C, n, n] (the diversity loss reads it)


class Generator(nn.Module):
    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = [PixelNorm()]
        layers += [
            EqualLinear(cfg.z_dim, cfg.z_dim, lr_mul=cfg.mapping_lr_mul, activate=True)
            for _ in range(cfg.n_mapping)
        ]
        self.mapping = nn.Sequential(*layers)
        self.structure = StructureSynthesizer(cfg)
        self.texture = TextureSynthesizer(cfg)

    def broadcast_styles(self, w: torch.Tensor) -> torch.Tensor:
        """[B, D] -> W+ [B, n_styles, D]."""
        return w[:, None, :].expand(-1, self.cfg.n_styles, -1)

    def styles(
        self, z_global: torch.Tensor, mixing: tuple[torch.Tensor, int] | None = None
    ) -> torch.Tensor:
        """W+ [B, n_styles, D] of z_global; with `mixing` = (z_mix, index), rows >= index come
        from z_mix instead (style mixing; an index of n_styles or more mixes nothing)."""
        w = self.broadcast_styles(self.mapping(z_global))
        if mixing is None or mixing[1] >= self.cfg.n_styles:
            return w
        z_mix, index = mixing
        w_mix = self.broadcast_styles(self.mapping(z_mix))
        return torch.cat((w[:, :index], w_mix[:, index:]), dim=1)

    def synthesize(
        self,
        z_global: torch.Tensor,
        z_local: torch.Tensor,
        coords: torch.Tensor,
        w_plus: torch.Tensor | None = None,
        noise: Sequence[torch.Tensor | None] | None = None,
        impl: Impl = "batched",
    ) -> Synthesis:
        """z_global [B, Z], z_local [B, Cl, H, W], coords [B, 3, H, W] -> RGB [B, 3, h, w] and
        the structure z_S it was synthesised from.

        h = 2**k * (H - 2*L*r - 5) + 5 (see geometry.py). w_plus defaults to styles(z_global);
        noise defaults to fresh torch.randn (training). `impl` picks the kernels (module
        docstring): "fused" needs a batch of one and no autograd.
        """
        if w_plus is None:
            w_plus = self.styles(z_global)
        z_s = self.structure(z_global, z_local, coords, impl=impl)
        rgb = self.texture(z_s, w_plus, noise, impl=impl)
        expect = geometry.texture_output_size(z_s.shape[2], self.cfg.n_up)
        assert rgb.shape[2] == expect, (rgb.shape, expect)
        return Synthesis(rgb, z_s)

    def forward(
        self,
        z_global: torch.Tensor,
        z_local: torch.Tensor,
        coords: torch.Tensor,
        w_plus: torch.Tensor | None = None,
        noise: Sequence[torch.Tensor | None] | None = None,
        impl: Impl = "batched",
    ) -> torch.Tensor:
        """The RGB of `synthesize`."""
        return self.synthesize(z_global, z_local, coords, w_plus, noise, impl=impl).rgb

    def synthesize_field(
        self,
        field: StyleField,
        z_local: torch.Tensor,
        coords: torch.Tensor,
        noise: Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """RGB of a window whose global style varies along x (spatial style fusion): G_S is
        modulated by the anchors' z_g blended per cell, G_T by their mapped W blended per column
        of each layer (never the z's: the mapping is not linear). Same sizes as `forward`."""
        b, a, z_dim = field.z.shape
        w = self.mapping(field.z.reshape(b * a, z_dim)).view(b, a, -1)
        z_s = self.structure.forward_spatial(field.z, z_local, coords, field.cells)
        m = geometry.structure_margin(self.cfg)
        cells = field.cells[:, :, m : field.cells.shape[2] - m]
        return self.texture.forward_spatial(z_s, w, cells, field.layers, noise)


class Blur(nn.Module):
    """[1,3,3,1] x [1,3,3,1] depthwise blur, zero-padded by `pad` on every side by the conv
    itself (no padded copy). `stride` 2 computes only the outputs a following stride-2 1x1 conv
    reads: the same values, a quarter of the work."""

    def __init__(self, pad: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = pad
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return blur(x, (1, 3, 3, 1), 1.0, stride=self.stride, padding=self.pad)


class ConvAct(nn.Module):
    """Equalised conv (+ blur before a stride-2 conv) + lrelu, as in StyleGAN2's D.

    The output is lrelu(conv(x) + b) * gain (StyleGAN2's activation gain is sqrt(2)); since
    lrelu(a) * g = lrelu(g * a) for g > 0, the gain is folded into the conv's weight and bias
    and the conv adds the bias itself: one conv and one in-place lrelu, no other pass."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, down: bool = False, gain: float = SQRT2
    ) -> None:
        super().__init__()
        if down:
            p = (4 - 2) + (kernel - 1)
            if p % 2:
                raise ValueError(f"a down-sampling ConvAct needs an odd kernel, got {kernel}")
            self.blur: nn.Module = Blur(p // 2)
            self.conv = EqualConv2d(in_ch, out_ch, kernel, stride=2, bias=False, gain=gain)
        else:
            self.blur = nn.Identity()
            self.conv = EqualConv2d(
                in_ch, out_ch, kernel, padding=kernel // 2, bias=False, gain=gain
            )
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(self.blur(x), self.bias * self.gain), 0.2, inplace=True)


class ResBlock(nn.Module):
    """(conv2(conv1(x)) + skip(x)) / sqrt(2), the 1/sqrt(2) folded into both branches' weights:
    conv2's activation gain becomes sqrt(2) / sqrt(2) = 1 and the skip conv's gain 1/sqrt(2)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = ConvAct(in_ch, in_ch, 3)
        self.conv2 = ConvAct(in_ch, out_ch, 3, down=True, gain=1.0)
        self.skip = nn.Sequential(
            Blur(1, stride=2), EqualConv2d(in_ch, out_ch, 1, bias=False, gain=1 / SQRT2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the skip conv's output is not saved for its backward: the sum may overwrite it
        return self.skip(x).add_(self.conv2(self.conv1(x)))


def discriminator_final_size(patch: int, n_blocks: int) -> int:
    size = patch
    for _ in range(n_blocks):
        size = (size - 2) // 2 + 1  # pad 2+2, blur 4 taps, 3x3 stride 2
    return size


class Discriminator(nn.Module):
    """StyleGAN2 residual D; two heads on the same features: real/fake logit and the vertical
    coordinate of the patch in [-1, 1] (InfinityGAN's auxiliary loss)."""

    def __init__(self, cfg: DiscriminatorConfig, patch_size: int) -> None:
        super().__init__()
        ch = cfg.channels
        self.from_rgb = ConvAct(3, ch[0], 1)
        self.blocks = nn.Sequential(*(ResBlock(a, b) for a, b in itertools.pairwise(ch)))
        self.stddev_group = cfg.stddev_group
        self.final_conv = ConvAct(ch[-1] + 1, ch[-1], 3)
        size = discriminator_final_size(patch_size, len(ch) - 1)
        if size < 1:
            raise ValueError(f"patch {patch_size} px is too small for {len(ch) - 1} blocks")
        flat = ch[-1] * size * size
        self.adv_head = nn.Sequential(
            EqualLinear(flat, ch[-1], activate=True), EqualLinear(ch[-1], 1)
        )
        self.coord_head = nn.Sequential(
            EqualLinear(flat, ch[-1], activate=True), EqualLinear(ch[-1], 1)
        )

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # channels_last throughout: oneDNN's native layout, no reorders around each conv
        x = self.blocks(self.from_rgb(img.contiguous(memory_format=torch.channels_last)))
        b, c, h, w = x.shape
        group = math.gcd(b, self.stddev_group)
        y = x.view(group, -1, c, h, w)
        std = torch.sqrt(y.var(dim=0, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))  # [B/group]
        std = std.view(-1, 1, 1, 1).repeat(group, 1, h, w)
        x = self.final_conv(torch.cat((x, std), dim=1)).flatten(1)
        return self.adv_head(x).squeeze(1), self.coord_head(x).squeeze(1)
