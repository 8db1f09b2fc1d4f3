"""Networks: the inference fast path (fused per-sample weights, batch 1, no grad) equals the
training path (activation modulation, batched, grad enabled), layer by layer and for the whole
generator; noise and biases really enter the output; the discriminator's heads have the right
shapes."""

from __future__ import annotations

import pytest
import torch

from infinitygan.model import geometry, networks
from infinitygan.model.config import PRESETS
from infinitygan.model.networks import Generator, StyledConv, ToRGB
from tests.conftest import nontrivial_generator, randomise_terms


def _layer_inputs(in_ch: int, style_dim: int, h: int, w: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, in_ch, h, w, generator=g)
    style = torch.randn(2, style_dim, generator=g)
    return x, style, g


@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_styled_conv_fast_path_equals_training_path(up: bool, channels_last: bool) -> None:
    torch.manual_seed(0)
    layer = StyledConv(6, 5, 8, 3, up=up).requires_grad_(False)
    randomise_terms(layer, 1, bias_scale=0.3)
    x, style, g = _layer_inputs(6, 8, 9, 7)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out_h = 2 * 9 - 3 if up else 9 - 2
    out_w = 2 * 7 - 3 if up else 7 - 2
    noise = torch.randn(2, 1, out_h, out_w, generator=g)
    with torch.enable_grad():
        batched = layer(x, style, noise)  # activation-modulation path
    with torch.no_grad():
        for b in range(2):
            assert networks._fast_path(x[b : b + 1])
            fused = layer(x[b : b + 1], style[b : b + 1], noise[b : b + 1])
            torch.testing.assert_close(fused, batched[b : b + 1], rtol=1e-5, atol=1e-5)


def test_to_rgb_fast_path_equals_training_path() -> None:
    torch.manual_seed(0)
    layer = ToRGB(6, 8).requires_grad_(False)
    randomise_terms(layer, 2, bias_scale=0.3)
    x, style, _ = _layer_inputs(6, 8, 5, 4)
    with torch.enable_grad():
        batched = layer(x, style)
    with torch.no_grad():
        for b in range(2):
            fused = layer(x[b : b + 1], style[b : b + 1])
            torch.testing.assert_close(fused, batched[b : b + 1], rtol=1e-5, atol=1e-5)


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


def test_generator_fused_path_equals_batched_training_path(tiny_g: Generator) -> None:
    z_g, z_l, coords, noise = _generator_inputs(tiny_g, 2, 7)
    cl = torch.channels_last
    with torch.enable_grad():  # batch 2 with grad: the training path, no per-sample split
        ref = tiny_g(z_g, z_l, coords, noise=noise)
    with torch.no_grad():  # batch 2 without grad: split into batch-1 fused calls on CPU
        split = tiny_g(z_g, z_l.contiguous(memory_format=cl), coords, noise=noise)
        single = [
            tiny_g(
                z_g[b : b + 1],
                z_l[b : b + 1],
                coords[b : b + 1],
                noise=[n[b : b + 1] for n in noise],
            )
            for b in range(2)
        ]
    assert ref.shape == (
        2,
        3,
        geometry.texture_output_size(7, 3),
        geometry.texture_output_size(7, 3),
    )
    assert ref.std() > 0.1  # not a degenerate comparison
    torch.testing.assert_close(split, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(torch.cat(single), ref, rtol=1e-4, atol=1e-4)


def test_explicit_w_plus_equals_default_styles(tiny_g: Generator) -> None:
    z_g, z_l, coords, noise = _generator_inputs(tiny_g, 1, 6)
    with torch.no_grad():
        w_plus = tiny_g.broadcast_styles(tiny_g.mapping(z_g))
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
