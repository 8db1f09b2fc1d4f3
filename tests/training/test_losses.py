"""The loss functions against what they are known to equal: the diversity loss falls as paired
structures move apart relative to their local latents (the official code has this backwards) and
is normalised per element; R1 equals the analytic gradient norm of linear and quadratic
discriminators and stays differentiable; the path-length mean moves by `decay` towards the batch
mean; the adversarial losses are the softplus forms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from infinitygan.training import losses

EPS = 1e-3  # diversity_loss's default


def _pairs(ds: float, dz: float, shape=(4, 3, 5, 5), seed: int = 0):
    """Two pairs whose members differ by exactly ds (structure) and dz (local latent) in every
    element, with opposite signs across elements so nothing cancels in the mean abs."""
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(shape, generator=g)
    z = torch.randn(shape[0], 2, 7, 7, generator=g)
    sign_s = torch.where(torch.rand(shape[1:], generator=g) < 0.5, -1.0, 1.0)
    sign_z = torch.where(torch.rand(z.shape[1:], generator=g) < 0.5, -1.0, 1.0)
    s[1::2] = s[0::2] + ds * sign_s
    z[1::2] = z[0::2] + dz * sign_z
    return s, z


def test_diversity_value_is_the_inverse_distance_ratio() -> None:
    s, z = _pairs(ds=0.5, dz=2.0)
    expect = 1.0 / (0.5 / 2.0 + EPS)
    assert losses.diversity_loss(s, z).item() == pytest.approx(expect, rel=1e-5)


def test_diversity_falls_as_structures_move_apart_relative_to_latents() -> None:
    values = [losses.diversity_loss(*_pairs(ds, dz=1.0)).item() for ds in (0.1, 0.2, 0.4, 0.8)]
    assert values == sorted(values, reverse=True) and values[0] > 4 * values[-1]
    # the same structure distance is worth less when the latents were further apart
    near, far = (losses.diversity_loss(*_pairs(0.3, dz)).item() for dz in (0.5, 2.0))
    assert far > near


def test_diversity_gradient_descent_pushes_pairs_apart() -> None:
    """The direction the generator is trained in: one descent step on the structures must
    increase each pair's distance (a similarity term would pull them together)."""
    s, z = _pairs(ds=0.2, dz=1.0, seed=1)
    s.requires_grad_(True)
    losses.diversity_loss(s, z).backward()
    with torch.no_grad():
        moved = s - 0.01 * s.grad / s.grad.abs().max()
    before = (s[0::2] - s[1::2]).abs().mean((1, 2, 3))
    after = (moved[0::2] - moved[1::2]).abs().mean((1, 2, 3))
    assert (after > before).all(), (before, after)
    # and only the difference within a pair matters: the pair's common part gets no gradient
    common = s.grad[0::2] + s.grad[1::2]
    torch.testing.assert_close(common, torch.zeros_like(common), atol=1e-6, rtol=0)


def test_diversity_is_normalised_per_element_and_per_pair() -> None:
    """Means, not sums: the value does not grow with channels, area or batch, and depends only
    on the ratio of the two distances."""
    s, z = _pairs(ds=0.3, dz=1.5)
    base = losses.diversity_loss(s, z).item()
    wide = losses.diversity_loss(s.repeat(1, 4, 2, 3), z.repeat(1, 3, 2, 1)).item()
    more_pairs = losses.diversity_loss(s.repeat(3, 1, 1, 1), z.repeat(3, 1, 1, 1)).item()
    scaled = losses.diversity_loss(10 * s, 10 * z).item()
    for other in (wide, more_pairs, scaled):
        assert other == pytest.approx(base, rel=1e-5)
    # two pairs with different ratios average their terms
    s2, z2 = _pairs(ds=0.6, dz=1.5, shape=(2, 3, 5, 5))
    mixed = losses.diversity_loss(torch.cat((s[:2], s2)), torch.cat((z[:2], z2))).item()
    expect = (1 / (0.3 / 1.5 + EPS) + 1 / (0.6 / 1.5 + EPS)) / 2
    assert mixed == pytest.approx(expect, rel=1e-5)


def test_diversity_of_identical_structures_is_bounded_by_eps() -> None:
    s, z = _pairs(ds=0.0, dz=1.0)
    assert losses.diversity_loss(s, z).item() == pytest.approx(1 / EPS)


def test_r1_of_a_linear_discriminator_is_its_weight_norm() -> None:
    """D(x) = <w, x>: grad_x D = w for every sample, so the penalty is exactly ||w||^2."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 8, 8, generator=g)
    img = torch.randn(5, 3, 8, 8, generator=g, requires_grad=True)
    pred = (img * w).flatten(1).sum(1)
    r1 = losses.d_r1_penalty(pred, img)
    torch.testing.assert_close(r1, w.square().sum())


def test_r1_of_a_quadratic_discriminator_is_the_mean_squared_input_norm() -> None:
    """D(x) = ||x||^2 / 2: grad_x D = x, so the penalty is the batch mean of ||x||^2."""
    img = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(1), requires_grad=True)
    pred = 0.5 * img.square().flatten(1).sum(1)
    r1 = losses.d_r1_penalty(pred, img)
    torch.testing.assert_close(r1, img.detach().square().flatten(1).sum(1).mean())


def test_r1_is_differentiable_in_the_discriminator_weights() -> None:
    """R1 trains D only if its graph reaches D's weights: d||w||^2/dw = 2w."""
    g = torch.Generator().manual_seed(2)
    w = torch.randn(3, 4, 4, generator=g, requires_grad=True)
    img = torch.randn(2, 3, 4, 4, generator=g, requires_grad=True)
    losses.d_r1_penalty((img * w).flatten(1).sum(1), img).backward()
    torch.testing.assert_close(w.grad, 2 * w.detach())


def _linear_image(w_plus: torch.Tensor, gain: float) -> torch.Tensor:
    """An 'image' that is w_plus rearranged and scaled: its Jacobian is gain * identity."""
    b = w_plus.shape[0]
    return gain * w_plus.reshape(b, 3, 4, -1)


def _expected_lengths(w_plus: torch.Tensor, gain: float, seed: int) -> torch.Tensor:
    """The path lengths path_length_penalty must find: with Jacobian gain * I, the gradient of
    <img, noise> is gain * noise, so the length is gain * sqrt(mean over styles of ||noise||^2)."""
    img = _linear_image(w_plus, gain)
    torch.manual_seed(seed)
    noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
    grad = gain * noise.reshape(w_plus.shape)
    return torch.sqrt(grad.square().sum(2).mean(1) + 1e-8)


def test_path_lengths_and_penalty_match_the_analytic_jacobian() -> None:
    w_plus = torch.randn(4, 5, 12, requires_grad=True)
    lengths_expect = _expected_lengths(w_plus.detach(), 3.0, seed=7)
    mean = torch.tensor(0.2)
    torch.manual_seed(7)
    penalty, new_mean, lengths = losses.path_length_penalty(
        _linear_image(w_plus, 3.0), w_plus, mean, decay=0.1
    )
    torch.testing.assert_close(lengths.detach(), lengths_expect)
    expect_mean = 0.2 + 0.1 * (lengths_expect.mean() - 0.2)
    torch.testing.assert_close(new_mean, expect_mean)
    torch.testing.assert_close(penalty.detach(), (lengths_expect - expect_mean).square().mean())
    assert not new_mean.requires_grad  # the running mean is a statistic, not trained through


@pytest.mark.parametrize("decay", [0.0, 0.01, 0.5, 1.0])
def test_path_length_mean_moves_by_decay_towards_the_batch_mean(decay: float) -> None:
    """Every call with the same lengths L moves the mean a fraction `decay` of the way to L, so
    after n calls from 0 it is L * (1 - (1 - decay)**n)."""
    w_plus = torch.randn(2, 5, 12, requires_grad=True)
    target = _expected_lengths(w_plus.detach(), 1.5, seed=3).mean()
    mean = torch.zeros(())
    for n in range(1, 31):
        torch.manual_seed(3)
        _, mean, _ = losses.path_length_penalty(_linear_image(w_plus, 1.5), w_plus, mean, decay)
        expect = target * (1 - (1 - decay) ** n)
        torch.testing.assert_close(mean, expect, rtol=1e-5, atol=1e-7)


def test_adversarial_losses_are_the_softplus_forms() -> None:
    real = torch.tensor([2.0, -1.0, 0.5])
    fake = torch.tensor([-3.0, 0.0])
    expect_d = F.softplus(-real).mean() + F.softplus(fake).mean()
    torch.testing.assert_close(losses.d_logistic_loss(real, fake), expect_d)
    torch.testing.assert_close(losses.g_nonsaturating_loss(fake), F.softplus(-fake).mean())
    # D is rewarded for high real and low fake scores; G for high fake scores
    assert losses.d_logistic_loss(real + 1, fake - 1) < losses.d_logistic_loss(real, fake)
    assert losses.g_nonsaturating_loss(fake + 1) < losses.g_nonsaturating_loss(fake)


def test_coord_loss_is_mean_absolute_error() -> None:
    pred = torch.tensor([0.5, -0.25, 1.0])
    label = torch.tensor([0.0, -1.0, 1.0])
    assert losses.coord_loss(pred, label).item() == pytest.approx((0.5 + 0.75 + 0.0) / 3)
