import pytest
import torch

from np_draw.likelihoods import Bernoulli, DiscretisedLogistic, LogisticMixture

LEVELS = torch.arange(256, dtype=torch.float32) / 255


def test_discretised_logistic_sums_to_one_over_the_256_levels():
    lk = DiscretisedLogistic(1)
    for mean, log_scale in [(0.0, -3.0), (0.9, -1.0), (-0.99, -5.0), (0.3, -6.5)]:
        params = torch.tensor([mean, log_scale]).reshape(1, 2, 1, 1).expand(256, 2, 1, 1)
        probability = lk.log_prob(params, LEVELS.reshape(256, 1, 1, 1)).exp().sum()
        assert probability == pytest.approx(1.0, abs=2e-3)


def mixture_params(k: int, seed: int) -> torch.Tensor:
    """One pixel's parameters: mixture logits, means in [-0.8, 0.8], log-scales near -3, random coupling."""
    g = torch.Generator().manual_seed(seed)
    means = 1.6 * torch.rand(3, k, generator=g) - 0.8
    log_scales = -3 + 0.5 * torch.randn(3, k, generator=g)
    coeffs = torch.randn(3, k, generator=g)
    return torch.cat([torch.randn(k, generator=g), means.flatten(), log_scales.flatten(), coeffs.flatten()])[
        None, :, None, None]


def test_logistic_mixture_sums_to_one_over_all_256_cubed_colours():
    lk = LogisticMixture(3, num_mixtures=2)
    params = mixture_params(2, seed=0)
    grid_gb = torch.cartesian_prod(LEVELS, LEVELS)  # (65536, 2)
    total = 0.0
    for r in LEVELS.split(16):
        x = torch.cat([r.repeat_interleave(len(grid_gb))[:, None], grid_gb.repeat(len(r), 1)], dim=1)
        total += lk.log_prob(params.expand(len(x), -1, -1, -1), x[..., None, None]).double().exp().sum().item()
    assert total == pytest.approx(1.0, abs=2e-3)


def test_logistic_mixture_mean_matches_its_samples():
    lk = LogisticMixture(3, num_mixtures=3)
    params = mixture_params(3, seed=1).expand(20000, -1, -1, -1)
    samples = lk.sample(params, torch.rand(20000, lk.noise_channels, 1, 1, generator=torch.Generator().manual_seed(2)))
    assert torch.allclose(samples.mean(0).flatten(), lk.mean(params[:1]).flatten(), atol=0.01)


def test_bernoulli_log_prob_and_mean():
    lk = Bernoulli(1)
    logits = torch.tensor([0.0, 2.0]).reshape(1, 1, 1, 2)
    x = torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 2)
    expected = torch.log(torch.tensor(0.5)) + torch.log(1 - torch.sigmoid(torch.tensor(2.0)))
    assert lk.log_prob(logits, x).item() == pytest.approx(expected.item(), abs=1e-6)
    assert torch.allclose(lk.mean(logits), torch.sigmoid(logits))


def test_logistic_samples_are_on_the_256_levels_and_in_range():
    lk = DiscretisedLogistic(3)
    samples = lk.sample(torch.randn(8, 6, 4, 4), torch.rand(8, 3, 4, 4))
    assert samples.min() >= 0 and samples.max() <= 1
    assert torch.allclose(samples * 255, (samples * 255).round(), atol=1e-4)
