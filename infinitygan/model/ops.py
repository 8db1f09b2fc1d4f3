"""Plain-PyTorch building blocks (CPU and CUDA, no compiled extensions, nothing runs at import).

Equalised learning rate (weights stored N(0,1), scaled at run time), modulated/demodulated
convolution with the modulation applied to activations so a batch of different styles shares one
ordinary convolution (fast in channels_last on CPU), the padding-free aligned up-convolution with
its [1,2,1] blur, and the bilinear RGB skip upsampler.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


class EqualLinear(nn.Module):
    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activate: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.scale)
        bias = self.bias * self.lr_mul
        if self.activate:
            return F.leaky_relu(out + bias, 0.2) * SQRT2
        return out + bias


class EqualConv2d(nn.Module):
    """Plain equalised conv (discriminator). `gain` multiplies the run-time weight scale: a
    constant factor on the output folded into the conv instead of a pass over its result."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        gain: float = 1.0,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = gain / math.sqrt(in_ch * kernel * kernel)
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """`bias` (for a conv built without one) is added by the conv itself, in the same pass."""
        return F.conv2d(
            x,
            self.weight * self.scale,
            self.bias if bias is None else bias,
            stride=self.stride,
            padding=self.padding,
        )


@functools.lru_cache(maxsize=64)
def blur_kernel(
    taps: tuple[float, ...], gain: float, channels: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """The depthwise weight [channels, 1, k, k] of the separable blur `taps` x `taps`, summing to
    `gain`. Cached: it is a constant, built once per shape instead of in every forward (never
    modify the returned tensor). Built as an ordinary tensor even when first asked for under
    inference mode (the renderer), so training can still save it for backward."""
    with torch.inference_mode(False), torch.no_grad():
        k = torch.tensor(taps, device=device, dtype=dtype)
        k2 = torch.outer(k, k)
        k2 = k2 / k2.sum() * gain
        return k2.expand(channels, 1, *k2.shape).contiguous()


class _Blur(torch.autograd.Function):
    """conv2d of x with a constant depthwise kernel (plus an optional bias), differentiable any
    number of times without ever differentiating with respect to the kernel: its gradient is
    the transposed blur (`_BlurT`), whose gradient is this blur again.

    R1 and path length back-propagate through every blur twice, and PyTorch's own conv double
    backward computes the kernel's gradient there although nothing asks for it, one channel
    group at a time: 64-128 tiny convs per blur, a fifth of the R1 phase on CPU."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        kernel: torch.Tensor,
        bias: torch.Tensor | None,
        stride: int,
        padding: int,
    ) -> torch.Tensor:
        ctx.kernel, ctx.stride, ctx.padding, ctx.size = kernel, stride, padding, x.shape[2:]
        return F.conv2d(x, kernel, bias, stride=stride, padding=padding, groups=x.shape[1])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        gx = gb = None
        if ctx.needs_input_grad[0]:
            gx = _BlurT.apply(grad, ctx.kernel, ctx.stride, ctx.padding, ctx.size)
        if ctx.needs_input_grad[2]:
            gb = grad.sum(dim=(0, 2, 3))
        return gx, None, gb, None, None


class _BlurT(torch.autograd.Function):
    """The adjoint of `_Blur` (its input gradient): the transposed depthwise conv back to the
    blur's input size `size`. Its own gradient is the blur."""

    @staticmethod
    def forward(
        ctx: Any,
        grad: torch.Tensor,
        kernel: torch.Tensor,
        stride: int,
        padding: int,
        size: torch.Size,
    ) -> torch.Tensor:
        ctx.kernel, ctx.stride, ctx.padding = kernel, stride, padding
        k = kernel.shape[-1]
        out_pad = [
            n + 2 * padding - k - (g - 1) * stride
            for n, g in zip(size, grad.shape[2:], strict=True)
        ]
        return F.conv_transpose2d(
            grad,
            kernel.to(grad.dtype),
            stride=stride,
            padding=padding,
            output_padding=out_pad,
            groups=grad.shape[1],
        )

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        kernel = ctx.kernel.to(grad.dtype)
        return _Blur.apply(grad, kernel, None, ctx.stride, ctx.padding), None, None, None, None


def blur(
    x: torch.Tensor,
    taps: tuple[float, ...],
    gain: float,
    stride: int = 1,
    padding: int = 0,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Depthwise separable blur `taps` x `taps` (summing to `gain`) of every channel, zero-padded
    by `padding` on each side, sampled every `stride`-th output, plus `bias`. The values of the
    plain grouped conv2d; the gradients without the kernel's (see `_Blur`)."""
    k = blur_kernel(taps, gain, x.shape[1], x.device, x.dtype)
    return _Blur.apply(x, k, bias, stride, padding)


def up_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    impl: str = "padded",
) -> torch.Tensor:
    """Aligned padding-free up-conv: H -> transposed 3x3 s2 (2H+1) -> crop 1 (2H-1) -> blur (2H-3).

    w is a conv2d-layout weight [out, in, 3, 3] applied as a transposed kernel (no flip). A bias
    is added after the blur (whose gain is 4, as in StyleGAN2's upfirdn up-sampling).

    `impl="transposed"` is the literal chain, the crop taken after the blur (a valid blur
    commutes with cropping): that spares the blur a copy of a sliced input and its gradient a
    zero-padded one, which is what training wants. `"padded"` (default) has the transposed
    conv's own padding drop the border rows and columns instead, so the conv writes the cropped
    2H-1 map and the blur a dense 2H-3 one, which the next conv reads without a reorder copy:
    the inference path. (It replaced a polyphase form, four small phase convs interleaved into
    an NHWC buffer, which oneDNN's transposed conv now beats by 10-25% at every layer of
    `small` on one sample once buffers are not faulted in afresh; see `keep_render_memory`.)
    """
    if impl == "padded":
        y = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2, padding=1)  # 2H-1
        return blur(y, (1, 2, 1), 4.0, bias=bias)
    if impl != "transposed":
        raise ValueError(f"unknown up_conv2d impl {impl!r}")
    h, w = x.shape[2], x.shape[3]
    y = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)  # 2H+1
    out = blur(y, (1, 2, 1), 4.0, bias=bias)
    return out[:, :, 1 : 1 + 2 * h - 3, 1 : 1 + 2 * w - 3]


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    up: bool = False,
    bias: torch.Tensor | None = None,
    gain: float = 1.0,
    eps: float = 1e-8,
) -> torch.Tensor:
    """StyleGAN2 modulated conv, valid padding. x [B, I, H, W], weight [O, I, k, k], styles [B, I].

    Modulating the activations (x * s) and demodulating the outputs is algebraically the same as
    scaling per-sample weights, but keeps one shared weight, so a batch is a single conv.
    Returns gain * (out + bias): the constant gain and the bias [O] ride along in the pass that
    demodulates (without demodulation, in the conv itself) instead of passes of their own.
    """
    out = x * styles[:, :, None, None].to(x.dtype)
    if not demodulate:
        weight = weight * gain
        bias = None if bias is None else bias * gain
        return up_conv2d(out, weight, bias) if up else F.conv2d(out, weight, bias)
    out = up_conv2d(out, weight, impl="transposed") if up else F.conv2d(out, weight)
    # d[b, o] = rsqrt(sum_{i,k} (w[o,i,k] * s[b,i])^2)
    wsq = weight.square().sum(dim=(2, 3))  # [O, I]
    demod = (torch.rsqrt(styles.square() @ wsq.t() + eps) * gain)[:, :, None, None].to(out.dtype)
    if bias is None:
        return out * demod
    return torch.addcmul((bias * gain).view(1, -1, 1, 1).to(out.dtype), out, demod)


def blend_styles(styles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-column styles [B, I, 1, W] from A anchor styles [B, A, I] and their blend weights
    [B, A, W]. Blending the anchors' W (or z_g) and then applying a modulation's affine map
    equals blending the anchors' modulation outputs, because the weights sum to 1."""
    return torch.einsum("bai,baw->biw", styles, weights.to(styles.dtype))[:, :, None, :]


def spatially_modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    weights_in: torch.Tensor,
    weights_out: torch.Tensor | None,
    up: bool = False,
    bias: torch.Tensor | None = None,
    gain: float = 1.0,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Modulated conv whose style varies along x (spatial style fusion), valid padding.

    x [B, I, H, W_in]; weight [O, I, k, k]; styles [B, A, I], the modulation of each of A
    anchors; weights_in [B, A, W_in] their blend at the input columns; weights_out
    [B, A, W_out] at the output columns, or None for no demodulation (ToRGB).

    The input is modulated per column, convolved with the shared weight, and demodulated per
    output column with rsqrt(sum_{i,k} w[o,i,k]^2 s_i(x_out)^2): the style at the output
    position stands for the styles of all taps. That is exact where the style is constant over
    the receptive field (inside a biome) and an approximation within a transition, the same one
    InfinityGAN's own spatial style fusion makes. Returns gain * (out + bias).
    """
    out = x * blend_styles(styles, weights_in).to(x.dtype)
    if weights_out is None:
        weight, bias = weight * gain, None if bias is None else bias * gain
        return up_conv2d(out, weight, bias) if up else F.conv2d(out, weight, bias)
    out = up_conv2d(out, weight) if up else F.conv2d(out, weight)
    s_out = blend_styles(styles, weights_out)[:, :, 0]  # [B, I, W_out]
    wsq = weight.square().sum(dim=(2, 3))  # [O, I]
    demod = torch.rsqrt(torch.einsum("oi,biw->bow", wsq, s_out.square()) + eps) * gain
    demod = demod[:, :, None, :].to(out.dtype)
    if bias is None:
        return out.mul_(demod)
    # one pass, in place: out * demod + bias
    return torch.addcmul((bias * gain).view(1, -1, 1, 1).to(out.dtype), out, demod, out=out)


def modulated_weight(
    weight: torch.Tensor, style: torch.Tensor, demodulate: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """One sample's modulated (and demodulated) weight [O, I, k, k] from its style [I]: the
    fused form of `modulated_conv2d`, used by the generator's fused kernels (inference on one
    sample, no activation passes)."""
    w = weight * style.view(1, -1, 1, 1)
    if demodulate:
        w = w * torch.rsqrt(w.square().sum(dim=(1, 2, 3), keepdim=True) + eps)
    return w


def upsample_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """Bilinear transposed conv (stride 2) cropped 1 px per side: H -> 2H-1.

    Row 2m is input row m, row 2m+1 the mean of rows m and m+1; same on columns.
    """

    def up_axis(t: torch.Tensor, dim: int) -> torch.Tensor:
        n = t.shape[dim]
        a = t.narrow(dim, 0, n - 1)
        mid = 0.5 * (a + t.narrow(dim, 1, n - 1))
        inter = torch.stack((a, mid), dim=dim + 1).flatten(dim, dim + 1)
        return torch.cat((inter, t.narrow(dim, n - 1, 1)), dim=dim)

    return up_axis(up_axis(rgb, 2), 3)


def center_crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    dh, dw = x.shape[2] - h, x.shape[3] - w
    if dh < 0 or dw < 0 or dh % 2 or dw % 2:
        raise ValueError(f"cannot centre-crop {tuple(x.shape[2:])} to {(h, w)}")
    return x[:, :, dh // 2 : dh // 2 + h, dw // 2 : dw // 2 + w]
