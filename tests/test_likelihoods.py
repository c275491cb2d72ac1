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


def test_logistic_mixture_reads_each_pixels_own_parameters():
    """Every pixel of a batch of different pixels, against the mixture computed from that pixel's parameter vector
    alone (mixture logits, then means, log-scales and coefficients, each channel by component)."""
    k, lk = 3, LogisticMixture(3, num_mixtures=3)
    g = torch.Generator().manual_seed(5)
    params = torch.cat([mixture_params(k, seed).reshape(1, -1, 1, 1) for seed in range(2 * 3 * 4)]).reshape(
        2, 3, 4, -1).permute(0, 3, 1, 2)  # (2, 10k, 3, 4), every pixel its own parameters
    noise = torch.rand(2, lk.noise_channels, 3, 4, generator=g)
    means, samples = lk.mean(params), lk.sample(params, noise)
    for n in range(2):
        for h in range(3):
            for w in range(4):
                p = params[n, :, h, w]
                logits, mu, log_s, c = p[:k], p[k:4 * k].view(3, k), p[4 * k:7 * k].view(3, k), p[7 * k:].view(3, k)
                c = torch.tanh(c)
                r, gr = mu[0], mu[1] + c[0] * mu[0]
                b = mu[2] + c[1] * r + c[2] * gr
                weights = torch.softmax(logits, 0)
                expected = (torch.stack([r, gr, b]) * weights).sum(1).clamp(-1, 1) / 2 + 0.5
                torch.testing.assert_close(means[n, :, h, w], expected)
                u = noise[n, :, h, w]
                j = int((logits - torch.log(-torch.log(u[:k].clamp(1e-7, 1 - 1e-7)))).argmax())
                scale = log_s[:, j].clamp_min(-7).exp()
                v = u[k:].clamp(1e-5, 1 - 1e-5)
                logistic = scale * (torch.log(v) - torch.log1p(-v))  # per channel, added to its coupled mean
                x_r = (mu[0, j] + logistic[0]).clamp(-1, 1)
                x_g = (mu[1, j] + c[0, j] * x_r + logistic[1]).clamp(-1, 1)
                x_b = mu[2, j] + c[1, j] * x_r + c[2, j] * x_g + logistic[2]
                expected = torch.round((torch.stack([x_r, x_g, x_b]).clamp(-1, 1) + 1) * 127.5) / 255
                torch.testing.assert_close(samples[n, :, h, w], expected)


def test_the_decoders_output_layer_is_its_1x1_convolution_written_plane_by_plane():
    from np_draw import NPDraw
    from tests.conftest import tiny_config

    for name in ("mnist", "cifar10", "celeba"):
        decoder = NPDraw(tiny_config(name)).decoder.eval()
        canvas = torch.rand(3, decoder.body[0][0].in_channels, 32 if name != "mnist" else 28,
                            32 if name != "mnist" else 28)
        params = decoder(canvas)
        assert params.is_contiguous()
        torch.testing.assert_close(params, decoder.out(decoder.body(2 * canvas - 1)))


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


@pytest.mark.parametrize("lk", [DiscretisedLogistic(3), LogisticMixture(3, num_mixtures=2), Bernoulli(3)],
                         ids=["logistic", "mixture", "bernoulli"])
def test_log_prob_is_computed_in_float32_on_the_exact_levels_for_half_precision_inputs(lk):
    g = torch.Generator().manual_seed(0)
    params = torch.randn(4, lk.num_params, 64, 64, generator=g).bfloat16()
    x = torch.randint(0, 256, (4, 3, 64, 64), generator=g).float() / 255
    if isinstance(lk, Bernoulli):
        x = x.round()
    half = lk.log_prob(params, x.bfloat16())
    assert half.dtype == torch.float32
    # The same as the bfloat16 parameters' values scored in float32 on the exact levels (in bfloat16 the sums of
    # about 12,000 pixels were multiples of 64 to 256 nats, and the levels were up to half a level off).
    torch.testing.assert_close(half, lk.log_prob(params.float(), x), rtol=1e-6, atol=1e-3)
