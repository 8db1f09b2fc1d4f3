"""Networks: the fused kernels (per-sample folded weights, batch 1, inference) compute what the
batched reference kernels (activation modulation, any batch, differentiable) compute, layer by
layer and for the whole generator; the caller's kernel choice is checked, not guessed; noise and
biases really enter the output; the discriminator's heads have the right shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from infinitygan.model import geometry, networks
from infinitygan.model.config import PRESETS
from infinitygan.model.networks import Generator, StyledConv, StyleField, ToRGB
from tests.conftest import nontrivial_generator, randomise_terms


def _layer_inputs(in_ch: int, style_dim: int, h: int, w: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, in_ch, h, w, generator=g)
    style = torch.randn(2, style_dim, generator=g)
    return x, style, g


@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_styled_conv_fused_equals_batched_reference(up: bool, channels_last: bool) -> None:
    torch.manual_seed(0)
    layer = StyledConv(6, 5, 8, 3, up=up).requires_grad_(False)
    randomise_terms(layer, 1, bias_scale=0.3)
    x, style, g = _layer_inputs(6, 8, 9, 7)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out_h = 2 * 9 - 3 if up else 9 - 2
    out_w = 2 * 7 - 3 if up else 7 - 2
    noise = torch.randn(2, 1, out_h, out_w, generator=g)
    with torch.no_grad():
        ref = layer(x, style, noise, impl="batched")
        for b in range(2):
            fused = layer(x[b : b + 1], style[b : b + 1], noise[b : b + 1], impl="fused")
            torch.testing.assert_close(fused, ref[b : b + 1], rtol=1e-5, atol=1e-5)


def test_to_rgb_fused_equals_batched_reference() -> None:
    torch.manual_seed(0)
    layer = ToRGB(6, 8).requires_grad_(False)
    randomise_terms(layer, 2, bias_scale=0.3)
    x, style, _ = _layer_inputs(6, 8, 5, 4)
    with torch.no_grad():
        ref = layer(x, style, impl="batched")
        for b in range(2):
            fused = layer(x[b : b + 1], style[b : b + 1], impl="fused")
            torch.testing.assert_close(fused, ref[b : b + 1], rtol=1e-5, atol=1e-5)


def test_batched_kernel_ignores_grad_mode_and_batch_neighbours() -> None:
    """The reference is one function whatever the caller's context: with or without autograd,
    and for a sample alone or inside a batch."""
    torch.manual_seed(0)
    layer = StyledConv(6, 5, 8, 3, up=True).requires_grad_(False)
    randomise_terms(layer, 3, bias_scale=0.3)
    x, style, g = _layer_inputs(6, 8, 6, 6)
    noise = torch.randn(2, 1, 9, 9, generator=g)
    with torch.enable_grad():
        with_grad = layer(x, style, noise)  # impl defaults to the batched reference
    with torch.no_grad():
        alone = layer(x[1:], style[1:], noise[1:], impl="batched")
        assert torch.equal(layer(x, style, noise, impl="batched"), with_grad)
    torch.testing.assert_close(alone, with_grad[1:], rtol=1e-6, atol=1e-6)


def _generator_inputs(g: Generator, batch: int, n: int, seed: int = 0):
    cfg = g.cfg
    m = geometry.structure_margin(cfg)
    gen = torch.Generator().manual_seed(seed)
    z_g = torch.randn(batch, cfg.z_dim, generator=gen)
    z_l = torch.randn(batch, cfg.z_local_dim, n + 2 * m, n + 2 * m, generator=gen)
    coords = torch.rand(batch, 3, n + 2 * m, n + 2 * m, generator=gen) * 2 - 1
    sizes = geometry.texture_layer_sizes(n, cfg.n_up)
    noise = [torch.randn(batch, 1, s, s, generator=gen) for s in sizes]
    return z_g, z_l, coords, noise


def test_generator_fused_equals_batched_reference(tiny_g: Generator) -> None:
    z_g, z_l, coords, noise = _generator_inputs(tiny_g, 2, 7)
    with torch.no_grad():
        ref = tiny_g(z_g, z_l, coords, noise=noise, impl="batched")
        fused = [
            tiny_g(
                z_g[b : b + 1],
                z_l[b : b + 1].contiguous(memory_format=torch.channels_last),
                coords[b : b + 1],
                noise=[n[b : b + 1] for n in noise],
                impl="fused",
            )
            for b in range(2)
        ]
    side = geometry.texture_output_size(7, 3)
    assert ref.shape == (2, 3, side, side)
    assert ref.std() > 0.1  # not a degenerate comparison
    torch.testing.assert_close(torch.cat(fused), ref, rtol=1e-4, atol=1e-4)


def test_synthesize_returns_the_structure_the_rgb_was_made_from(tiny_g: Generator) -> None:
    z_g, z_l, coords, noise = _generator_inputs(tiny_g, 2, 6)
    with torch.no_grad():
        rgb, z_s = tiny_g.synthesize(z_g, z_l, coords, noise=noise)
        assert torch.equal(z_s, tiny_g.structure(z_g, z_l, coords))
        w_plus = tiny_g.styles(z_g)
        assert torch.equal(rgb, tiny_g.texture(z_s, w_plus, noise))
        assert torch.equal(rgb, tiny_g(z_g, z_l, coords, noise=noise))
    assert z_s.shape == (2, tiny_g.cfg.structure_channels, 6, 6)


def test_style_mixing_takes_the_later_rows_from_the_second_latent(tiny_g: Generator) -> None:
    cfg = tiny_g.cfg
    gen = torch.Generator().manual_seed(4)
    z_a, z_b = torch.randn(2, 3, cfg.z_dim, generator=gen)
    with torch.no_grad():
        w_a, w_b = tiny_g.styles(z_a), tiny_g.styles(z_b)
        mixed = tiny_g.styles(z_a, (z_b, 2))
        assert torch.equal(mixed[:, :2], w_a[:, :2]) and torch.equal(mixed[:, 2:], w_b[:, 2:])
        assert torch.equal(tiny_g.styles(z_a, (z_b, cfg.n_styles)), w_a)  # nothing mixed
    assert not torch.equal(w_a, w_b)


@pytest.mark.parametrize(
    ("batch", "grad", "match"),
    [(2, False, "one sample, got batch 2"), (1, True, "grad enabled")],
)
def test_fused_kernel_refuses_what_it_cannot_compute(
    tiny_g: Generator, batch: int, grad: bool, match: str
) -> None:
    """One sample's folded weight would silently serve a whole batch, and its in-place ops are
    not for autograd: both are errors, not a quiet fallback."""
    z_g, z_l, coords, noise = _generator_inputs(tiny_g, batch, 5)
    with torch.set_grad_enabled(grad), pytest.raises(ValueError, match=match):
        tiny_g(z_g, z_l, coords, noise=noise, impl="fused")


def test_unknown_impl_is_rejected(tiny_g: Generator) -> None:
    z_g, z_l, coords, noise = _generator_inputs(tiny_g, 1, 5)
    with torch.no_grad(), pytest.raises(ValueError, match="unknown generator impl"):
        tiny_g(z_g, z_l, coords, noise=noise, impl="fast")  # type: ignore[arg-type]


def test_explicit_w_plus_equals_default_styles(tiny_g: Generator) -> None:
    z_g, z_l, coords, noise = _generator_inputs(tiny_g, 1, 6)
    with torch.no_grad():
        w_plus = tiny_g.styles(z_g)
        assert w_plus.shape == (1, tiny_g.cfg.n_styles, tiny_g.cfg.z_dim)
        a = tiny_g(z_g, z_l, coords, noise=noise)
        b = tiny_g(z_g, z_l, coords, w_plus=w_plus, noise=noise)
    torch.testing.assert_close(a, b)


def test_noise_biases_and_every_input_matter(tiny_g: Generator) -> None:
    """Each input changes the output, so equality tests elsewhere cannot pass by accident."""
    z_g, z_l, coords, noise = _generator_inputs(tiny_g, 1, 6)
    with torch.no_grad():
        base = tiny_g(z_g, z_l, coords, noise=noise)
        for layer in range(len(noise)):
            other = list(noise)
            other[layer] = torch.randn_like(noise[layer])
            assert (tiny_g(z_g, z_l, coords, noise=other) - base).abs().max() > 1e-3, layer
        assert (tiny_g(z_g + 1, z_l, coords, noise=noise) - base).abs().max() > 1e-3
        assert (tiny_g(z_g, z_l + 1, coords, noise=noise) - base).abs().max() > 1e-3
        assert (tiny_g(z_g, z_l, coords.flip(3), noise=noise) - base).abs().max() > 1e-3
        # training mode: noise=None draws fresh torch.randn, so two calls differ
        r1 = tiny_g(z_g, z_l, coords)
        r2 = tiny_g(z_g, z_l, coords)
    assert (r1 - r2).abs().max() > 1e-3


def test_fresh_generator_renders_finite_values() -> None:
    g = Generator(PRESETS["tiny"].generator).eval()
    z_g, z_l, coords, noise = _generator_inputs(g, 1, 5)
    with torch.no_grad():
        assert torch.isfinite(g(z_g, z_l, coords, noise=noise)).all()


def test_generator_backward_reaches_every_parameter() -> None:
    g = nontrivial_generator("tiny", 3).requires_grad_(True)
    z_g, z_l, coords, noise = _generator_inputs(g, 2, 5)
    g(z_g, z_l, coords, noise=noise).square().mean().backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_discriminator_heads() -> None:
    cfg = PRESETS["tiny"]
    patch = cfg.generator.train_patch_cells * cfg.generator.pixels_per_cell
    d = networks.Discriminator(cfg.discriminator, patch)
    img = torch.randn(4, 3, patch, patch)
    adv, coord = d(img)
    assert adv.shape == (4,) and coord.shape == (4,)
    assert torch.isfinite(adv).all() and torch.isfinite(coord).all()
    with pytest.raises(ValueError, match="too small"):
        networks.Discriminator(cfg.discriminator, 1)


def _discriminator_written_out(d: networks.Discriminator, img: torch.Tensor) -> tuple:
    """StyleGAN2's residual D the literal way: zero-pad and blur, equalised conv, add the bias,
    lrelu * sqrt(2); blocks return (main + skip) / sqrt(2)."""

    def conv(layer: torch.nn.Module, x: torch.Tensor, **kw: int) -> torch.Tensor:
        return F.conv2d(x, layer.weight / math.sqrt(layer.weight[0].numel()), **kw)

    def act(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + bias.view(1, -1, 1, 1), 0.2) * math.sqrt(2)

    def blur(x: torch.Tensor, pad: int) -> torch.Tensor:
        taps = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=x.dtype)
        k = torch.outer(taps, taps)
        k = (k / k.sum()).expand(x.shape[1], 1, 4, 4)
        return F.conv2d(F.pad(x, (pad,) * 4), k, groups=x.shape[1])

    x = act(conv(d.from_rgb.conv, img), d.from_rgb.bias)
    for block in d.blocks:
        h = act(conv(block.conv1.conv, x, padding=1), block.conv1.bias)
        h = act(conv(block.conv2.conv, blur(h, 2), stride=2), block.conv2.bias)
        x = (h + conv(block.skip[1], blur(x, 1), stride=2)) / math.sqrt(2)
    b, c, h, w = x.shape
    group = math.gcd(b, d.stddev_group)
    std = torch.sqrt(x.view(group, -1, c, h, w).var(dim=0, unbiased=False) + 1e-8)
    std = std.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1).repeat(group, 1, h, w)
    x = act(conv(d.final_conv.conv, torch.cat((x, std), 1), padding=1), d.final_conv.bias)
    x = x.flatten(1)
    return d.adv_head(x).squeeze(1), d.coord_head(x).squeeze(1)


def test_discriminator_is_stylegan2s_written_out() -> None:
    """The folded gains (sqrt(2) and the residual 1/sqrt(2) inside the conv weights), the
    biases added by the convs, the in-place activations, the strided skip blur and the
    channels_last layout compute the literal definition, values and input gradient (R1)."""
    cfg = PRESETS["tiny"]
    patch = cfg.generator.train_patch_cells * cfg.generator.pixels_per_cell
    torch.manual_seed(0)
    d = networks.Discriminator(cfg.discriminator, patch).double()
    for name, p in d.named_parameters():
        if name.endswith("bias"):
            p.data.normal_(0.0, 0.3)
    img = torch.randn(4, 3, patch, patch, dtype=torch.float64, requires_grad=True)
    ours, ref = d(img), _discriminator_written_out(d, img)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    (g_ours,) = torch.autograd.grad(ours[0].sum() + ours[1].sum(), img)
    (g_ref,) = torch.autograd.grad(ref[0].sum() + ref[1].sum(), img)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-10)


def _one_anchor_field(g: Generator, z_g: torch.Tensor, n: int, extra: int = 0) -> StyleField:
    """A StyleField in which anchor 0 (z_g) has weight 1 at every column and `extra` more
    anchors (random z) weight 0."""
    m = geometry.structure_margin(g.cfg)
    b = z_g.shape[0]
    z = torch.cat((z_g[:, None], torch.randn(b, extra, z_g.shape[1])), dim=1)

    def ones(width: int) -> torch.Tensor:
        w = torch.zeros(b, 1 + extra, width)
        w[:, 0] = 1.0
        return w

    return StyleField(
        z, ones(n + 2 * m), [ones(s) for s in geometry.texture_layer_sizes(n, g.cfg.n_up)]
    )


@pytest.mark.parametrize("extra", [0, 2])
def test_field_with_one_anchor_of_weight_one_equals_the_fused_generator(
    tiny_g: Generator, extra: int
) -> None:
    """The spatial kernels inside one biome compute what the one-style kernels do, so a window
    may take either path and tiles still meet seamlessly."""
    z_g, z_l, coords, noise = _generator_inputs(tiny_g, 2, 7, seed=4)
    with torch.inference_mode():
        field = tiny_g.synthesize_field(
            _one_anchor_field(tiny_g, z_g, 7, extra), z_l, coords, noise
        )
        for b in range(2):
            fused = tiny_g(
                z_g[b : b + 1],
                z_l[b : b + 1],
                coords[b : b + 1],
                noise=[n[b : b + 1] for n in noise],
                impl="fused",
            )
            torch.testing.assert_close(field[b : b + 1], fused, rtol=1e-4, atol=1e-4)
    assert field.std() > 0.1


def test_field_blends_styles_and_padding_anchors_change_nothing(tiny_g: Generator) -> None:
    """A two-anchor blend differs from either anchor alone, and a batch whose windows are padded
    with zero-weight anchors renders each window as it renders alone."""
    z_g, z_l, coords, noise = _generator_inputs(tiny_g, 2, 7, seed=5)
    field = _one_anchor_field(tiny_g, z_g, 7, extra=1)
    ramp = [torch.linspace(0, 1, w.shape[2]).expand(2, -1) for w in (field.cells, *field.layers)]
    for w, r in zip((field.cells, *field.layers), ramp, strict=True):
        w[:, 0], w[:, 1] = 1 - r, r
    with torch.inference_mode():
        blended = tiny_g.synthesize_field(field, z_l, coords, noise)
        for b in range(2):
            one = StyleField(
                torch.cat((field.z[b : b + 1], torch.zeros(1, 3, z_g.shape[1])), dim=1),
                torch.nn.functional.pad(field.cells[b : b + 1], (0, 0, 0, 3)),
                [torch.nn.functional.pad(w[b : b + 1], (0, 0, 0, 3)) for w in field.layers],
            )
            args = (z_l[b : b + 1], coords[b : b + 1], [n[b : b + 1] for n in noise])
            alone = tiny_g.synthesize_field(one, *args)
            torch.testing.assert_close(alone, blended[b : b + 1], rtol=1e-4, atol=1e-4)
            plain = tiny_g(field.z[b : b + 1, 0], *args[:2], noise=args[2], impl="fused")
            assert (alone - plain).abs().amax() > 0.05  # the second anchor's style took part
