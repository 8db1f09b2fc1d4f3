"""Every fast op is checked against a plain reference that computes the same thing the obvious
way: the padded up-conv against the literal transposed convolution (itself spelled out),
activation modulation against per-sample weight modulation, the RGB skip upsampler against
bilinear interpolation, the blur's own double backward against the grouped conv's."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from infinitygan.model import ops


def _inputs(
    b: int, i: int, o: int, h: int, w: int, dtype: torch.dtype, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, i, h, w, generator=g, dtype=dtype)
    weight = torch.randn(o, i, 3, 3, generator=g, dtype=dtype)
    bias = torch.randn(o, generator=g, dtype=dtype)
    return x, weight, bias


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize(
    "shape", [(1, 2, 3, 2, 3), (1, 3, 5, 4, 4), (2, 8, 6, 7, 5), (3, 16, 16, 9, 12)]
)
@pytest.mark.parametrize("with_bias", [False, True])
def test_padded_up_conv_equals_transposed(
    memory_format: torch.memory_format, shape: tuple[int, ...], with_bias: bool
) -> None:
    b, i, o, h, w = shape
    x64, w64, bias64 = _inputs(b, i, o, h, w, torch.float64)
    bias = bias64 if with_bias else None
    x64 = x64.contiguous(memory_format=memory_format)
    ref = ops.up_conv2d(x64, w64, bias, impl="transposed")
    fast = ops.up_conv2d(x64, w64, bias, impl="padded")
    assert ref.shape == fast.shape == (b, o, 2 * h - 3, 2 * w - 3)
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-10)
    # float32, the dtype the renderer runs in
    x32 = x64.float().contiguous(memory_format=memory_format)
    bias32 = None if bias is None else bias.float()
    fast32 = ops.up_conv2d(x32, w64.float(), bias32)
    torch.testing.assert_close(fast32, ref.float(), rtol=1e-5, atol=1e-4)
    # dense in the input's layout, not a crop: the next conv takes it without a reorder copy
    assert fast32.is_contiguous(memory_format=memory_format)


def test_transposed_up_conv_is_the_aligned_chain() -> None:
    """The transposed kernel (the reference) spelled out: zero-stuff, 3x3 full conv with the
    unflipped kernel, crop 1, [1,2,1]x[1,2,1]/16*4 blur valid."""
    x, w, _ = _inputs(1, 2, 3, 5, 6, torch.float64, seed=3)
    h, wd = x.shape[2:]
    stuffed = torch.zeros(1, 2, 2 * h - 1, 2 * wd - 1, dtype=x.dtype)
    stuffed[:, :, ::2, ::2] = x
    full = F.conv2d(F.pad(stuffed, (2, 2, 2, 2)), w.flip(2, 3))  # transposed conv, 2H+1
    k = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype)
    k2 = (torch.outer(k, k) / 16 * 4).expand(3, 1, 3, 3)
    expect = F.conv2d(full[:, :, 1:-1, 1:-1], k2, groups=3)
    torch.testing.assert_close(ops.up_conv2d(x, w, impl="transposed"), expect)


def test_up_conv_rejects_unknown_impl() -> None:
    x, w, _ = _inputs(1, 2, 2, 4, 4, torch.float32)
    with pytest.raises(ValueError, match="unknown up_conv2d impl"):
        ops.up_conv2d(x, w, impl="cuda")


@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("demodulate", [False, True])
def test_activation_modulation_equals_weight_modulation(up: bool, demodulate: bool) -> None:
    """modulated_conv2d (one shared weight, scaled activations) equals StyleGAN2's definition
    (a per-sample modulated weight), and so does `modulated_weight` used by the fused kernels."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 7, 6, generator=g, dtype=torch.float64)
    weight = torch.randn(5, 4, 3, 3, generator=g, dtype=torch.float64)
    styles = torch.randn(3, 4, generator=g, dtype=torch.float64)
    out = ops.modulated_conv2d(x, weight, styles, demodulate=demodulate, up=up)
    bias = torch.randn(5, generator=g, dtype=torch.float64)
    scaled = ops.modulated_conv2d(x, weight, styles, demodulate, up, bias=bias, gain=1.7)
    torch.testing.assert_close(scaled, 1.7 * (out + bias.view(1, -1, 1, 1)))
    for b in range(3):
        wb = weight * styles[b].view(1, -1, 1, 1)
        if demodulate:
            wb = wb / torch.sqrt(wb.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        conv = ops.up_conv2d if up else F.conv2d
        expect = conv(x[b : b + 1], wb)
        torch.testing.assert_close(out[b : b + 1], expect, rtol=1e-10, atol=1e-10)
        fused = ops.modulated_weight(weight, styles[b], demodulate=demodulate)
        torch.testing.assert_close(fused, wb, rtol=1e-12, atol=1e-12)


def test_upsample_rgb_is_align_corners_bilinear() -> None:
    x = torch.randn(2, 3, 5, 8, dtype=torch.float64)
    up = ops.upsample_rgb(x)
    assert up.shape == (2, 3, 9, 15)
    expect = F.interpolate(x, size=(9, 15), mode="bilinear", align_corners=True)
    torch.testing.assert_close(up, expect)
    torch.testing.assert_close(up[:, :, ::2, ::2], x)  # even rows/cols are the input


def test_center_crop() -> None:
    t = torch.arange(7 * 9.0).view(1, 1, 7, 9)
    assert torch.equal(ops.center_crop(t, 3, 5), t[:, :, 2:5, 2:7])
    with pytest.raises(ValueError, match="centre-crop"):
        ops.center_crop(t, 4, 5)  # odd margin: no centre
    with pytest.raises(ValueError, match="centre-crop"):
        ops.center_crop(t, 9, 5)


def test_equalized_layers_scale_at_run_time() -> None:
    lin = ops.EqualLinear(16, 4, bias_init=1.0, lr_mul=0.01)
    x = torch.randn(2, 16)
    expect = F.linear(x, lin.weight * 0.01 / 4) + 1.0 * 0.01
    torch.testing.assert_close(lin(x), expect)
    conv = ops.EqualConv2d(3, 5, 3, padding=1)
    x = torch.randn(1, 3, 6, 6)
    expect = F.conv2d(x, conv.weight / math.sqrt(27), conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expect)


def test_cached_blur_kernel_from_inference_mode_still_trains() -> None:
    """The renderer (inference mode) may build a blur kernel first; the same cached constant
    then serves training, whose convs save it for backward."""
    with torch.inference_mode():
        k = ops.blur_kernel((1, 2, 1), 4.0, 7, torch.device("cpu"), torch.float32)
    assert not k.is_inference() and not k.requires_grad
    assert ops.blur_kernel((1, 2, 1), 4.0, 7, torch.device("cpu"), torch.float32) is k
    torch.testing.assert_close(k.sum((1, 2, 3)), torch.full((7,), 4.0))
    x = torch.randn(1, 7, 6, 6, requires_grad=True)
    F.conv2d(x, k, groups=7).sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize(
    ("taps", "stride", "padding"), [((1, 3, 3, 1), 1, 2), ((1, 3, 3, 1), 2, 1), ((1, 2, 1), 1, 0)]
)
def test_blur_is_the_grouped_conv_and_differentiates_twice(
    taps: tuple[float, ...], stride: int, padding: int
) -> None:
    """Same values and first and second derivatives as the plain depthwise conv2d (the R1 and
    path-length double backward), in float64 so gradcheck's finite differences are exact."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, 8, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    k = ops.blur_kernel(taps, 4.0, 3, x.device, x.dtype)
    expect = F.conv2d(x, k, bias, stride=stride, padding=padding, groups=3)
    out = ops.blur(x, taps, 4.0, stride=stride, padding=padding, bias=bias)
    assert torch.equal(out, expect)

    def fn(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return ops.blur(x, taps, 4.0, stride=stride, padding=padding, bias=bias)

    assert torch.autograd.gradcheck(fn, (x, bias))
    assert torch.autograd.gradgradcheck(fn, (x, bias))

    # the R1 pattern: ||d out / d x||^2, differentiated again, against the plain conv
    def r1_grads(f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> tuple:
        (gx,) = torch.autograd.grad((f(x, bias) ** 2).sum(), x, create_graph=True)
        return gx, *torch.autograd.grad(gx.square().sum(), (x, bias))

    plain = r1_grads(lambda x, b: F.conv2d(x, k, b, stride=stride, padding=padding, groups=3))
    torch.testing.assert_close(r1_grads(fn), plain)


def _blend_inputs(b: int, a: int, i: int, w_in: int, w_out: int, seed: int = 3):
    """Anchor styles [B, A, I] and blend weights at input and output columns (columns sum to 1,
    every anchor present somewhere)."""
    g = torch.Generator().manual_seed(seed)
    styles = torch.randn(b, a, i, generator=g, dtype=torch.float64) + 1.0
    m_in = torch.rand(b, a, w_in, generator=g, dtype=torch.float64)
    m_out = torch.rand(b, a, w_out, generator=g, dtype=torch.float64)
    return styles, m_in / m_in.sum(1, keepdim=True), m_out / m_out.sum(1, keepdim=True)


def test_spatially_modulated_conv_equals_a_per_pixel_brute_force() -> None:
    """Each output pixel, the textbook way: every tap's input times the style at the tap's
    column, summed with the shared weight, then demodulated with the style at the output's
    column: rsqrt(sum_{i,k} (w[o,i,k] * s_i(x_out))^2)."""
    x, weight, bias = _inputs(2, 4, 3, 5, 7, torch.float64)
    styles, m_in, m_out = _blend_inputs(2, 3, 4, 7, 5)
    gain, eps = 1.7, 1e-8
    out = ops.spatially_modulated_conv2d(x, weight, styles, m_in, m_out, bias=bias, gain=gain)
    s_in = torch.einsum("bai,baw->biw", styles, m_in)
    s_out = torch.einsum("bai,baw->biw", styles, m_out)
    ref = torch.empty_like(out)
    for b, o, y, xo in torch.cartesian_prod(*(torch.arange(n) for n in out.shape)).tolist():
        taps = x[b, :, y : y + 3, xo : xo + 3] * s_in[b, :, None, xo : xo + 3]
        value = (weight[o] * taps).sum()
        demod = ((weight[o] * s_out[b, :, xo, None, None]).square().sum() + eps).rsqrt()
        ref[b, o, y, xo] = gain * (value * demod + bias[o])
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_spatially_modulated_up_conv_is_the_sum_of_its_anchors() -> None:
    """The up-conv by linearity: modulating the input by sum_a m_a(x) s_a equals summing the
    anchors' own modulated up-convs of the input masked by m_a; the demodulation is spelled out
    per output column with `modulated_weight` of that column's style."""
    x, weight, bias = _inputs(2, 4, 3, 5, 6, torch.float64)
    styles, m_in, m_out = _blend_inputs(2, 3, 4, 6, 2 * 6 - 3)
    out = ops.spatially_modulated_conv2d(x, weight, styles, m_in, m_out, up=True, bias=bias)
    for b in range(2):
        ref = sum(
            ops.up_conv2d(x[b : b + 1] * m_in[b, a], weight * styles[b, a].view(1, -1, 1, 1))
            for a in range(3)
        )
        s_out = torch.einsum("ai,aw->wi", styles[b], m_out[b])
        for xo in range(out.shape[3]):
            w_col = ops.modulated_weight(weight, s_out[xo])
            demod = w_col[:, 0, 0, 0] / (weight[:, 0, 0, 0] * s_out[xo, 0])
            col = ref[0, :, :, xo] * demod[:, None] + bias[:, None]
            torch.testing.assert_close(out[b, :, :, xo], col, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("demodulate", [False, True])
def test_one_anchor_with_weight_one_is_the_plain_modulated_conv(up: bool, demodulate: bool) -> None:
    """Inside a biome (one anchor, weight 1 everywhere, other anchors weight 0) the spatial
    kernel computes what the one-style kernel does."""
    x, weight, bias = _inputs(2, 4, 3, 5, 6, torch.float64)
    styles, _, _ = _blend_inputs(2, 2, 4, 1, 1)
    w_out = 2 * 6 - 3 if up else 6 - 2
    m_in = torch.zeros(2, 2, 6, dtype=torch.float64)
    m_out = torch.zeros(2, 2, w_out, dtype=torch.float64)
    m_in[:, 1], m_out[:, 1] = 1.0, 1.0
    out = ops.spatially_modulated_conv2d(
        x, weight, styles, m_in, m_out if demodulate else None, up=up, bias=bias, gain=1.3
    )
    ref = ops.modulated_conv2d(
        x, weight, styles[:, 1], demodulate=demodulate, up=up, bias=bias, gain=1.3
    )
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
