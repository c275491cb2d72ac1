"""Metrics against values computed another way: exact enumeration, closed-form Gaussians, direct PSNR."""

import itertools
import math
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from np_draw import NPDraw, NPDrawConfig, PriorConfig
from np_draw.latents import Latents
from np_draw.metrics import FeatureStatistics, feature_statistics, fid, frechet_distance, nll, reconstruction_psnr

TINY = NPDrawConfig(image_size=8, channels=1, canvas_size=8, part_size=4, num_parts=2, grid_size=2, stride=4,
                    padding=0, likelihood="bernoulli", binarize=True, encoder_channels=8, decoder_channels=8,
                    prior=PriorConfig(num_layers=1, hidden_size=16, num_heads=2, ff_size=16, dropout=0.0,
                                      cnn_channels=4))


def enumerable_model() -> NPDraw:
    """T = 4 steps, B = 2 parts, L = 4 cells: 1 + B·L = 9 states a step, 9^4 = 6,561 latents in all."""
    torch.manual_seed(0)
    model = NPDraw(TINY)
    model.bank.parts.copy_((torch.rand(2, 1, 4, 4) > 0.5).float())
    return model.eval()


@torch.no_grad()
def exact_nll(model: NPDraw, x: torch.Tensor) -> torch.Tensor:
    """−log p(x) = −logsumexp over every latent of log p(z) + log p(x | z), absent steps marginalised."""
    steps = [(0, 0, 0.0)] + [(b, loc, 1.0) for b in range(2) for loc in range(4)]
    table = torch.tensor(list(itertools.product(steps, repeat=4)))  # (6561, T, 3)
    z = Latents(table[..., 0].long(), table[..., 1].long(), table[..., 2].float())
    log_pz = model.prior.log_prob(z, model.bank)
    params = model.decoder(model.render(z.ids, z.locs, z.present))
    rows = [torch.logsumexp(log_pz + model.likelihood.log_prob(params, image.expand(len(table), -1, -1, -1)), 0)
            for image in x]
    return -torch.stack(rows)


def test_the_importance_bound_lies_above_the_exact_nll_and_tightens_to_it():
    model = enumerable_model()
    x = (torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.6).float()
    exact = exact_nll(model, x)
    bounds = {s: nll(model, x, num_samples=s, seed=2, progress=False).nats for s in (1, 20, 4000)}
    assert (bounds[1].mean() > exact.mean() + 0.5) and (bounds[20].mean() > exact.mean())
    assert bounds[1].mean() > bounds[20].mean() > bounds[4000].mean()
    torch.testing.assert_close(bounds[4000], exact, atol=0.05, rtol=0)


def test_nll_is_seeded_reports_bits_per_dim_and_binarises_grey_images():
    model = enumerable_model()
    grey = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    a, b = nll(model, grey, 10, seed=4, progress=False), nll(model, grey, 10, seed=4, progress=False)
    assert torch.equal(a.nats, b.nats)
    assert torch.equal(a.nats, nll(model, grey, 10, seed=4, batch_size=2, progress=False).nats)  # as documented
    assert not torch.equal(a.nats, nll(model, grey, 10, seed=5, progress=False).nats)
    torch.testing.assert_close(a.bits_per_dim, a.nats / (64 * math.log(2)))
    # The grey images are scored as one binarisation drawn from the seed: the tight bound finds those images' NLL.
    binary = torch.bernoulli(grey, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(nll(model, grey, 4000, seed=4, progress=False).nats, exact_nll(model, binary),
                               atol=0.1, rtol=0)
    with pytest.raises(ValueError, match="num_samples must be a positive integer, got 0"):
        nll(model, grey, num_samples=0)


def closed_form(mean_a, var_a, mean_b, var_b) -> float:
    """FID of two Gaussians with diagonal covariances."""
    return ((mean_a - mean_b) ** 2).sum().item() + ((var_a.sqrt() - var_b.sqrt()) ** 2).sum().item()


def test_frechet_distance_matches_the_closed_form_and_another_matrix_square_root():
    g = torch.Generator().manual_seed(0)
    ma, mb = torch.randn(5, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    va, vb = torch.rand(5, generator=g, dtype=torch.float64) + 0.1, torch.rand(5, generator=g, dtype=torch.float64)
    a, b = FeatureStatistics(ma, torch.diag(va), 10, "f"), FeatureStatistics(mb, torch.diag(vb), 10, "f")
    assert frechet_distance(a, b) == pytest.approx(closed_form(ma, va, mb, vb), rel=1e-10)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-10)
    # Non-commuting covariances: Tr (Σa Σb)^½ is the sum of the square roots of Σa Σb's (real, positive) eigenvalues.
    wa, wb = torch.randn(5, 5, generator=g, dtype=torch.float64), torch.randn(5, 5, generator=g, dtype=torch.float64)
    sa, sb = wa @ wa.T + 0.1 * torch.eye(5), wb @ wb.T + 0.1 * torch.eye(5)
    root_trace = torch.linalg.eigvals(sa @ sb).real.sqrt().sum().item()
    expected = ((ma - mb) ** 2).sum().item() + sa.trace().item() + sb.trace().item() - 2 * root_trace
    a, b = FeatureStatistics(ma, sa, 10, "f"), FeatureStatistics(mb, sb, 10, "f")
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    with pytest.raises(ValueError, match="different feature networks: 'f' and 'g'"):
        frechet_distance(a, FeatureStatistics(mb, sb, 10, "g"))


class Probit(nn.Module):
    """Features Φ⁻¹(pixel): uniform pixels become standard normal features, so Gaussian sets can be made as images."""

    name = "probit"

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the module a device

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return torch.special.ndtri(images.flatten(1).double().clamp(1e-12, 1 - 1e-12))


def test_fid_of_a_set_against_itself_is_zero_and_against_a_shifted_gaussian_is_the_closed_form(tmp_path):
    g = torch.Generator().manual_seed(0)
    uniform = torch.rand(40000, 1, 2, 2, generator=g, dtype=torch.float64)
    # Pixels whose probit features are N(0.5, 0.8²) in each of 4 dimensions.
    shifted = torch.special.ndtr(0.8 * torch.special.ndtri(torch.rand(40000, 1, 2, 2, generator=g,
                                                                      dtype=torch.float64)) + 0.5)
    assert fid(uniform, uniform, Probit(), progress=False).value == pytest.approx(0.0, abs=1e-9)
    result = fid(uniform, shifted, Probit(), progress=False)
    expected = closed_form(torch.zeros(4), torch.ones(4), torch.full((4,), 0.5), torch.full((4,), 0.64))
    assert result.label == "FID-probit"
    assert result.value == pytest.approx(expected, abs=0.03)
    cached = feature_statistics(shifted, Probit(), progress=False).save(tmp_path / "reference.safetensors")
    assert fid(uniform, cached, Probit(), progress=False).value == pytest.approx(result.value, rel=1e-12)
    assert FeatureStatistics.load(cached).count == 40000


def test_the_shipped_digit_features_separate_digits_from_noise(mnist_images):
    from np_draw.features import feature_network

    network = feature_network("cnn-mnist")
    assert network.record["test_accuracy"] > 0.98
    a, b = mnist_images[:150], mnist_images[150:]
    noise = torch.rand(150, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    same = fid(a, b, "cnn-mnist", progress=False)
    assert same.label == "FID-cnn-mnist"
    assert same.value < fid(a, noise, "cnn-mnist", progress=False).value / 10


def test_fid_takes_images_in_every_form_the_model_does(mnist_images, tmp_path):
    """NHW and NHWC arrays, PIL images and a folder of files give the NCHW tensors' distance (to float rounding:
    uint8 files are scaled back to the same floats)."""
    digits = (mnist_images[:60] * 255).round().to(torch.uint8)
    expected = fid(digits[:30], digits[30:], progress=False).value
    for i, image in enumerate(digits[30:, 0].numpy()):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    forms = [(digits[:30, 0].numpy(), digits[30:].permute(0, 2, 3, 1).numpy()),
             ([Image.fromarray(image) for image in digits[:30, 0].numpy()], tmp_path)]
    for samples, reference in forms:
        assert fid(samples, reference, progress=False).value == pytest.approx(expected, rel=1e-5)


def test_the_shipped_rgb_features_separate_photos_from_noise():
    import numpy as np

    from np_draw.features import feature_network

    assert feature_network("cnn-cifar10").record["test_accuracy"] > 0.75
    photos = torch.from_numpy(np.load("tests/fixtures/cifar10_100.npz")["images"]) / 255  # (100, 3, 32, 32)
    noise = torch.rand(50, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    same = fid(photos[:50], photos[50:], "cnn-cifar10", progress=False)
    assert same.label == "FID-cnn-cifar10"
    assert same.value < fid(photos[:50], noise, "cnn-cifar10", progress=False).value / 5


def test_reconstructions_match_their_own_images_best(mnist_images):
    model = NPDraw.from_pretrained("mnist")
    x = mnist_images[:40]
    own = reconstruction_psnr(model, x)
    torch.testing.assert_close(own, reconstruction_psnr(model, x))
    shuffled = x.roll(1, 0)
    from np_draw import psnr

    assert (own > psnr(model.reconstruct(x), shuffled)).float().mean() > 0.9
    # Half-precision images are compared in float32: bfloat16's own mean squared error was good to ~0.1 dB
    reconstruction = model.reconstruct(x)
    half = psnr(reconstruction.bfloat16(), x.bfloat16())
    exact = psnr(reconstruction.bfloat16().float(), x.bfloat16().float())
    assert half.dtype == torch.float32 and torch.equal(half, exact)
    # The peak value may be given as a one-element tensor, e.g. the images' maximum
    assert torch.equal(psnr(reconstruction, x, max_value=torch.tensor(1.0)), psnr(reconstruction, x))


def test_inception_loads_pytorch_fid_style_files_only_when_they_fit_and_hash_right(tmp_path):
    from safetensors.torch import save_file

    from np_draw.inception import InceptionV3, inception_v3

    torch.manual_seed(0)
    reference = InceptionV3().eval()
    state = dict(reference.state_dict())
    state["fc.weight"] = torch.zeros(1008, 2048)  # pytorch-fid's file carries the classifier; it is not used
    pth = tmp_path / "inception.pth"
    torch.save(state, pth)
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "inception.safetensors")
    images = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference.features(images)
        assert expected.shape == (1, 2048)
        for path in (pth, tmp_path / "inception.safetensors"):
            torch.testing.assert_close(inception_v3(path).features(images), expected)
        grey = images[:, :1]
        torch.testing.assert_close(reference.features(grey), reference.features(grey.expand(-1, 3, -1, -1)))
    misnamed = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    pth.rename(misnamed)
    with pytest.raises(ValueError, match="does not start with 6726825d"):
        inception_v3(misnamed)
    del state["Mixed_7c.branch_pool.conv.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"missing \['Mixed_7c.branch_pool.conv.weight'\]"):
        inception_v3(tmp_path / "partial.pth")
    with pytest.raises(FileNotFoundError, match="this package downloads nothing"):
        inception_v3(tmp_path / "absent.pth")


def test_inception_refuses_a_file_that_is_not_weights_with_a_clear_error(tmp_path):
    from np_draw.errors import CorruptWeightsError
    from np_draw.inception import inception_v3

    # A picture given for the weights, as pytorch-fid's .pth or as a safetensors copy: the reader's own error
    # (pickle's UnpicklingError, safetensors' SafetensorError) was a traceback before
    Image.new("L", (8, 8)).save(tmp_path / "photo.png", format="PNG")
    for name in ("weights.pth", "weights.safetensors"):
        (tmp_path / name).write_bytes((tmp_path / "photo.png").read_bytes())
        with pytest.raises(CorruptWeightsError, match=f"{name} is not a readable .* weights file"):
            inception_v3(tmp_path / name)
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")  # readable, but not a state dict
    with pytest.raises(CorruptWeightsError, match="holds a Tensor, not the state dict"):
        inception_v3(tmp_path / "tensor.pth")


def test_metric_arguments_are_checked_at_the_door_with_clear_errors(tmp_path):
    from np_draw.errors import CorruptWeightsError, InvalidInputError, InvalidTypeError, MissingFileError
    from np_draw.metrics import evaluate, psnr

    model, x = enumerable_model(), torch.rand(3, 1, 8, 8)
    for seed in ("0", 1.5, None):
        with pytest.raises(InvalidTypeError, match="seed must be an int, got"):
            nll(model, x, 2, seed=seed, progress=False)
    with pytest.raises(InvalidTypeError, match="features must be a shipped network's name .* got int"):
        fid(x, x, features=3, progress=False)
    # evaluate refuses what it would otherwise ignore (0 samples meant "as many as images") or find out only after
    # the bound and the samples were computed.
    for count in (0, 1):
        with pytest.raises(InvalidInputError, match="num_generated"):
            evaluate(model, x, num_samples=1, num_generated=count, progress=False)
    # More samples than this machine's memory holds: refused by name before the bound is computed (it came after it)
    import np_draw.metrics
    with pytest.raises(InvalidInputError, match=r"num_generated=10,000,000,000,000: num_images=.* more than this "
                                                r"machine's"), mock.patch.object(np_draw.metrics, "nll", wraps=nll) as bound:
        evaluate(model, x, num_samples=1, num_generated=10**13, progress=False)
    bound.assert_not_called()
    with pytest.raises(InvalidTypeError, match="features must be"):
        evaluate(model, x, num_samples=1, features=object(), progress=False)
    with pytest.raises(InvalidTypeError, match="reconstruction and target must be torch tensors, got ndarray"):
        psnr(x.numpy(), x.numpy())
    for bad in (0, -1.0, "255", float("nan")):
        with pytest.raises(InvalidInputError, match="max_value must be a positive finite number"):
            psnr(x, x / 2, max_value=bad)
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CorruptWeightsError, match="junk.safetensors is not a FeatureStatistics file"):
        fid(x, tmp_path / "junk.safetensors", progress=False)
    from safetensors.torch import save_file
    save_file({"mean": torch.zeros(2)}, tmp_path / "half.safetensors", metadata={"count": "2", "features": "cnn-mnist"})
    with pytest.raises(CorruptWeightsError, match="lacks the tensors 'mean' and 'covariance'"):
        FeatureStatistics.load(tmp_path / "half.safetensors")
    with pytest.raises(MissingFileError, match="no FeatureStatistics file at"):
        FeatureStatistics.load(tmp_path / "none.safetensors")
    # Statistics held as NumPy arrays (pytorch-fid's mu and sigma), which frechet_distance takes, save too
    array_stats = FeatureStatistics(np.arange(3.0), np.eye(3), 7, "cnn-mnist")
    loaded = FeatureStatistics.load(array_stats.save(tmp_path / "arrays.safetensors"))
    assert torch.equal(loaded.mean, torch.arange(3.0, dtype=torch.float64)) and loaded.count == 7
    assert frechet_distance(loaded, array_stats) == 0.0
    save_file({"mean": torch.zeros(3), "covariance": torch.eye(4)}, tmp_path / "odd.safetensors",
              metadata={"features": "cnn-mnist", "count": "5"})
    with pytest.raises(CorruptWeightsError, match=r"a mean \(D,\) and a covariance \(D, D\) are expected, got \(3,\) "
                                                  r"and \(4, 4\)"):
        FeatureStatistics.load(tmp_path / "odd.safetensors")
    save_file({"mean": torch.zeros(2), "covariance": torch.eye(2)}, tmp_path / "count.safetensors",
              metadata={"features": "cnn-mnist", "count": "many"})
    with pytest.raises(CorruptWeightsError, match="its metadata's count must be a whole number, got 'many'"):
        FeatureStatistics.load(tmp_path / "count.safetensors")


def test_feature_statistics_use_a_feature_network_in_eval_mode_and_leave_its_mode_and_statistics_alone(mnist_images):
    """A network handed over in training mode (e.g. one just trained) gave features normalised by each batch's own
    BatchNorm statistics: an FID that moved with batch_size, and running statistics overwritten by the images."""
    from np_draw.features import feature_network

    a, b = mnist_images[:60], mnist_images[60:120]
    expected = fid(a, b, "cnn-mnist", progress=False).value
    network = feature_network("cnn-mnist").train()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    assert fid(a, b, network, batch_size=7, progress=False).value == pytest.approx(expected, rel=1e-6)
    assert network.training and all(m.training for m in network.modules())
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())


def test_nll_binarises_grey_images_for_every_bernoulli_model():
    """A Bernoulli likelihood is a distribution over binary images only: scored against grey targets its
    cross-entropy is no log-probability, and the "bound" bounds nothing. A model with binarize=False (the default
    config's) gets the seed's binarisation too."""
    import dataclasses

    torch.manual_seed(0)
    model = NPDraw(dataclasses.replace(TINY, binarize=False)).eval()
    model.bank.parts.copy_((torch.rand(2, 1, 4, 4) > 0.5).float())
    grey = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    binary = torch.bernoulli(grey, generator=torch.Generator().manual_seed(4))
    scored = nll(model, grey, 3000, seed=4, progress=False).nats
    torch.testing.assert_close(scored, exact_nll(model, binary), atol=0.1, rtol=0)


def test_a_folder_and_pil_images_give_the_fid_of_the_same_images_as_a_tensor(tmp_path, mnist_images):
    """Files were resized to the network's size by PIL's bicubic at read, tensors by the network's bilinear: the same
    150 digits at 56 px were 0.92 apart, a fifth of the FID between two halves of the test set."""
    from np_draw.images import to_pil

    digits = (torch.nn.functional.interpolate(mnist_images[:150], size=56, mode="bilinear") * 255).round() / 255
    for i, image in enumerate(to_pil(digits)):
        image.save(tmp_path / f"{i:03d}.png")
    assert fid(digits, tmp_path, "cnn-mnist", progress=False).value < 1e-6
    assert fid(digits, list(to_pil(digits)), "cnn-mnist", progress=False).value < 1e-6

    class Pairs(torch.utils.data.Dataset):  # (PIL image, label) items, as torchvision's data sets give them
        def __len__(self) -> int:
            return len(digits)

        def __getitem__(self, i: int):
            return to_pil(digits[i:i + 1])[0], i % 10

    assert fid(digits, Pairs(), "cnn-mnist", progress=False).value < 1e-6  # 0.92 when read at the network's size


def test_evaluate_s_binarised_fid_compares_binarised_samples_with_the_nll_s_binarisation(mnist_images):
    """The paper binarises both the samples and the test images of MNIST and Omniglot for its FID (spec section 8);
    evaluate compared mean pixels with grey images only."""
    from np_draw.errors import InvalidInputError
    from np_draw.metrics import evaluate
    from tests.conftest import random_model

    model, images = random_model("mnist"), mnist_images[:20]
    results = evaluate(model, images, num_samples=2, binarised_fid=True, seed=3, progress=False)
    samples = model.sample(20, generator=torch.Generator().manual_seed(3), sample_pixels=True, progress=False).images
    assert ((samples == 0) | (samples == 1)).all()
    binary = torch.bernoulli(images, generator=torch.Generator().manual_seed(3))
    assert results["FID-cnn-mnist"] == pytest.approx(fid(samples, binary, "cnn-mnist", progress=False).value)
    plain = evaluate(model, images, num_samples=2, seed=3, progress=False)
    assert plain["nll_nats"] == results["nll_nats"] and plain["FID-cnn-mnist"] != results["FID-cnn-mnist"]
    with pytest.raises(InvalidInputError, match="binarised_fid=True .* needs a Bernoulli model"):
        evaluate(random_model("cifar10"), torch.rand(4, 3, 32, 32), num_samples=1, binarised_fid=True,
                 progress=False)


def test_fid_of_saved_statistics_refuses_another_feature_network_asked_for(mnist_images):
    """fid(stats_a, stats_b, features="cnn-cifar10") answered FID-cnn-mnist when both were cnn-mnist statistics."""
    from np_draw.errors import InvalidInputError

    a = feature_statistics(mnist_images[:20], "cnn-mnist", progress=False)
    b = feature_statistics(mnist_images[20:40], "cnn-mnist", progress=False)
    assert fid(a, b, progress=False).label == fid(a, b, "cnn-mnist", progress=False).label == "FID-cnn-mnist"
    with pytest.raises(InvalidInputError, match="samples are statistics of the cnn-mnist features, and "
                                                "features='cnn-cifar10' was asked for"):
        fid(a, b, "cnn-cifar10", progress=False)
    assert fid(mnist_images[:20], b, progress=False).value == pytest.approx(fid(a, b, progress=False).value)
    # Not a network: refused as such, not read as "cnn-mnist" (an empty name) or named by its type (a number)
    from np_draw.errors import InvalidTypeError, UnknownModelError

    with pytest.raises(UnknownModelError, match="unknown feature network ''"):
        fid(mnist_images[:20], b, "", progress=False)
    with pytest.raises(InvalidTypeError, match="features must be a shipped network's name"):
        fid(a, b, 5, progress=False)


def test_nll_binarises_grey_images_alike_whatever_the_model_s_dtype():
    """The binarisation was drawn in the model's dtype: a float64 model scored another binarisation for the same seed
    (a third of the pixels differed), a bfloat16 one drew from rounded grey levels."""
    grey = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    scored = {}
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        model = enumerable_model().to(dtype)
        original = model.log_weights

        def spy(x, num_samples, generator, original=original, dtype=dtype):
            scored[dtype] = x.float()
            return original(x, num_samples, generator)

        model.log_weights = spy
        bound = nll(model, grey, 10, seed=4, progress=False).nats
        if dtype == torch.float64:
            torch.testing.assert_close(bound, nll(enumerable_model(), grey, 10, seed=4, progress=False).nats)
    assert torch.equal(scored[torch.float32], scored[torch.float64])
    assert torch.equal(scored[torch.float32], scored[torch.bfloat16])


def test_nll_draws_an_image_s_samples_in_pieces_when_they_exceed_a_pass():
    """All S draws of an image went through one pass: memory grew with S (4.6 GB for S = 2,000 on one CIFAR-10
    image). Beyond a pass's draws (1,771 for MNIST) they are split, drawing the same latents from the stream."""
    from tests.conftest import random_model

    model = random_model("mnist")
    x = (torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.7).float()
    original, passes = model.log_weights, []

    def spy(chunk, num_samples, generator):
        passes.append(len(chunk) * num_samples)
        return original(chunk, num_samples, generator)

    model.log_weights = spy
    bound = nll(model, x, 1800, seed=1, progress=False)
    assert passes == [1771, 29] and bound.num_samples == 1800
    with torch.no_grad():
        whole = original(x, 1800, torch.Generator().manual_seed(1)).double()
    torch.testing.assert_close(bound.nats, (math.log(1800) - torch.logsumexp(whole, 1)).float())


def test_frechet_distance_takes_float32_and_numpy_statistics_and_refuses_bad_ones():
    """float32 statistics (e.g. pytorch-fid's arrays) beside float64 ones were a matmul dtype error; NaN ones were
    torch's "linalg.eigh: The algorithm failed to converge", other dimensions a matmul shape error."""
    import numpy as np

    from np_draw.errors import InvalidInputError, InvalidTypeError

    g = torch.Generator().manual_seed(0)
    fa, fb = torch.randn(50, 6, generator=g, dtype=torch.float64), torch.randn(50, 6, generator=g, dtype=torch.float64)
    a = FeatureStatistics(fa.mean(0), torch.cov(fa.T), 50, "f")
    b = FeatureStatistics(fb.mean(0) + 1, torch.cov(fb.T), 50, "f")
    expected = frechet_distance(a, b)
    single = FeatureStatistics(a.mean.float(), a.covariance.float(), 50, "f")
    arrays = FeatureStatistics(a.mean.numpy(), a.covariance.numpy().astype(np.float32), 50, "f")
    assert frechet_distance(single, b) == pytest.approx(expected, rel=1e-5)
    assert frechet_distance(arrays, b) == pytest.approx(expected, rel=1e-5)
    nan = FeatureStatistics(a.mean, a.covariance * float("nan"), 50, "f")
    with pytest.raises(InvalidInputError, match="a's statistics hold NaN or inf values"):
        frechet_distance(nan, b)
    with pytest.raises(InvalidInputError, match="different dimensions: 6 and 3 features"):
        frechet_distance(a, FeatureStatistics(b.mean[:3], b.covariance[:3, :3], 50, "f"))
    with pytest.raises(InvalidInputError, match=r"b must hold a mean \(D,\) and a covariance \(D, D\)"):
        frechet_distance(a, FeatureStatistics(b.mean, b.covariance[:3], 50, "f"))
    with pytest.raises(InvalidTypeError, match="a and b must be FeatureStatistics"):
        frechet_distance(fa, b)


def test_feature_statistics_feed_a_network_its_own_dtype_and_refuse_non_finite_features(mnist_images):
    """A half-precision or float64 feature network got float32 images ("Input type (float) and bias type
    (c10::Half) should be the same"); a module without parameters was a bare StopIteration; NaN activations became a
    LinAlgError in the distance."""
    from np_draw.errors import InvalidInputError
    from np_draw.features import feature_network

    a, b = mnist_images[:40], mnist_images[40:80]
    expected = fid(a, b, "cnn-mnist", progress=False).value
    for dtype, tolerance in ((torch.float64, 1e-5), (torch.bfloat16, 0.05)):
        assert fid(a, b, feature_network("cnn-mnist").to(dtype), progress=False).value == pytest.approx(
            expected, rel=tolerance)

    class Pixels(nn.Module):
        name = "pixels"

        def features(self, images: torch.Tensor) -> torch.Tensor:
            return images.flatten(1)[:, :5]

    assert feature_statistics(a, Pixels(), progress=False).count == 40

    class Broken(Pixels):
        def features(self, images: torch.Tensor) -> torch.Tensor:
            return super().features(images) / 0 * 0

    with pytest.raises(InvalidInputError, match="'pixels' gave .* NaN or inf activations"):
        feature_statistics(a, Broken(), progress=False)


def test_statistics_files_fid_references_and_inception_weights_expand_the_home_folder(tmp_path, monkeypatch):
    """'~/…' paths were read literally: fid's reference '~/stats.safetensors' or '~/test_images' was "nothing there",
    where the model's image folders expand '~'."""
    from safetensors.torch import save_file

    from np_draw.images import to_pil
    from np_draw.inception import InceptionV3, inception_v3

    monkeypatch.setenv("HOME", str(tmp_path))
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    expected = fid(x[:3], x[3:], progress=False).value
    feature_statistics(x[3:], progress=False).save("~/stats.safetensors")
    assert (tmp_path / "stats.safetensors").is_file()
    assert fid(x[:3], "~/stats.safetensors", progress=False).value == pytest.approx(expected)
    assert FeatureStatistics.load("~/stats.safetensors").count == 3
    (tmp_path / "images").mkdir()
    grey = (x * 255).round() / 255
    for i, image in enumerate(to_pil(grey[3:])):
        image.save(tmp_path / "images" / f"{i}.png")
    assert fid(grey[:3], "~/images", progress=False).value == pytest.approx(fid(grey[:3], grey[3:], progress=False)
                                                                            .value, rel=1e-5)
    save_file({k: v.contiguous() for k, v in InceptionV3().state_dict().items()}, tmp_path / "inception.safetensors")
    assert isinstance(inception_v3("~/inception.safetensors"), InceptionV3)


def test_evaluate_refuses_an_empty_feature_network_name_as_fid_does():
    """features="" fell back to the default network (a falsy name), where fid refuses it."""
    from np_draw.errors import UnknownModelError
    from np_draw.metrics import evaluate

    with pytest.raises(UnknownModelError, match="unknown feature network ''"):
        evaluate(enumerable_model(), torch.rand(3, 1, 8, 8), num_samples=1, features="", progress=False)


def test_an_image_source_scores_as_its_images_do_whatever_its_size(tmp_path, mnist_images):
    """image_source is how Python frames a folder (crop=, as the CelebA hint says) and fit takes its result: the
    metrics and the model's methods take it too, at the model's size, and the FID at any size (a 56 px source for
    the 28 px network was refused as not the network's size)."""
    from np_draw.errors import InvalidInputError
    from np_draw.images import TensorImages, image_source, to_pil
    from np_draw.metrics import evaluate

    digits = (mnist_images[:20] * 255).round() / 255
    for i, image in enumerate(to_pil(digits)):
        image.save(tmp_path / f"{i:03d}.png")
    source = image_source(tmp_path, channels=1, size=28)
    model = NPDraw.from_pretrained("mnist")
    assert torch.equal(nll(model, source, num_samples=2, progress=False).nats,
                       nll(model, digits, num_samples=2, progress=False).nats)
    assert torch.equal(reconstruction_psnr(model, source), reconstruction_psnr(model, digits))
    assert torch.equal(model.encode(source).ids, model.encode(digits).ids)
    assert set(evaluate(model, source, num_samples=1, progress=False)) >= {"nll_nats", "FID-cnn-mnist"}
    larger = TensorImages(torch.nn.functional.interpolate(digits, size=56, mode="bilinear"))
    assert fid(larger, larger.images, "cnn-mnist", progress=False).value < 1e-6
    with pytest.raises(InvalidInputError, match="an ImageSource of 1x56x56 images for a model of 1x28x28"):
        model.encode(larger)


def test_psnr_refuses_integer_levels_above_max_value_rather_than_scoring_them():
    """uint8 images scored with the default max_value=1, or beside floats in [0, 1], gave about -43 dB silently."""
    from np_draw.errors import InvalidInputError
    from np_draw.metrics import psnr

    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    levels = (x * 255).round().to(torch.uint8)
    for reconstruction, target in ((levels, x), (x, levels), (levels, levels)):
        with pytest.raises(InvalidInputError, match=r"holds integer levels up to 255, above max_value=1.0"):
            psnr(reconstruction, target)
    assert torch.allclose(psnr(levels, x * 255, max_value=255), psnr(levels.double() / 255, x.double()))
    binary = (levels > 127).to(torch.uint8)  # integer levels within max_value=1 are scored as before
    assert torch.allclose(psnr(binary, x), psnr(binary.double(), x.double()))


def test_feature_statistics_save_names_the_path_it_cannot_write_and_leaves_nothing_behind(mnist_images, tmp_path):
    """safetensors' own error (not one of np_draw.errors) named a temporary file of its own, '/missing/.tmpXXXX'."""
    from np_draw.errors import InvalidTypeError, UnwritablePathError

    stats = feature_statistics(mnist_images[:10], "cnn-mnist", progress=False)
    with pytest.raises(UnwritablePathError, match="missing"):
        stats.save(tmp_path / "missing" / "stats.safetensors")
    (tmp_path / "taken").mkdir()
    with pytest.raises(UnwritablePathError, match="taken"):
        stats.save(tmp_path / "taken")
    with pytest.raises(InvalidTypeError, match="path must be a str or a path"):
        stats.save(5)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["taken"]
    assert FeatureStatistics.load(stats.save(tmp_path / "stats.safetensors")).count == 10


def test_fid_measures_images_with_the_network_of_saved_statistics_beside_them(mnist_images, tmp_path):
    """fid(images, "cifar10_stats.safetensors") measured the images with cnn-mnist, then refused the pair as of two
    networks, and the refusal of features="cnn-mnist" beside those statistics advised leaving features out."""
    from np_draw.errors import InvalidInputError

    rgb = mnist_images[:30].expand(-1, 3, -1, -1)
    path = feature_statistics(rgb[10:], "cnn-cifar10", progress=False).save(tmp_path / "rgb.safetensors")
    expected = fid(rgb[:10], path, "cnn-cifar10", progress=False)
    assert fid(rgb[:10], path, progress=False) == expected
    assert fid(path, rgb[:10], progress=False).label == "FID-cnn-cifar10"
    with pytest.raises(InvalidInputError, match="features='cnn-mnist' was asked for.*leave features out"):
        fid(rgb[:10], path, "cnn-mnist", progress=False)
    # Not a shipped network's statistics (Inception's, a module's): the images cannot be measured with it by name
    other = FeatureStatistics.load(path)
    other.features = "inception-v3"
    with pytest.raises(InvalidInputError, match="reference holds statistics of the inception-v3 features.*"
                                                "pass features="):
        fid(rgb[:10], other, progress=False)


def test_fid_of_two_saved_statistics_takes_the_name_of_their_network_whatever_it_is():
    """With no images to measure, features= only names the statistics' network: "inception-v3" (Inception's label,
    no shipped network's name) was taken, then loaded as a shipped network and refused as unknown."""
    a, b = (FeatureStatistics(torch.full((4,), value, dtype=torch.float64), torch.eye(4, dtype=torch.float64), 10,
                              "inception-v3") for value in (0.0, 1.0))
    result = fid(a, b, "inception-v3", progress=False)
    assert (result.value, result.label) == (4.0, "FID-inception-v3")
    # A misspelt name beside statistics only is still refused, by them
    with pytest.raises(ValueError, match="samples are statistics of the inception-v3 features, and features='cnn-mn'"):
        fid(a, b, "cnn-mn", progress=False)


def test_fid_refuses_an_array_file_as_statistics_naming_the_argument(mnist_images, tmp_path):
    """An .npz of images was read as a safetensors file: "grey.npz is not a FeatureStatistics file: not readable as
    safetensors (header too large)", naming neither the argument nor what to do."""
    from np_draw.errors import CorruptWeightsError, InvalidInputError

    np.savez(tmp_path / "grey.npz", images=(mnist_images[:10, 0] * 255).byte().numpy())
    with pytest.raises(InvalidInputError, match=r"reference must be a folder of images, images, or a "
                                                r"FeatureStatistics file, got the array file .*grey.npz"):
        fid(mnist_images[:10], tmp_path / "grey.npz", progress=False)
    with pytest.raises(InvalidInputError, match="samples must be"):
        fid(str(tmp_path / "grey.npz"), mnist_images[:10], progress=False)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "one.png")
    with pytest.raises(CorruptWeightsError, match="reference: .*one.png is not a FeatureStatistics file"):
        fid(mnist_images[:10], tmp_path / "one.png", progress=False)


def test_evaluate_shows_progress_bars_for_the_psnrs_too(mnist_images, capsys):
    """parse_psnr and reconstruction_psnr ran without a bar: the last 11 s of evaluate on MNIST's test split."""
    from np_draw.metrics import evaluate, parse_psnr

    model = NPDraw.from_pretrained("mnist")
    reconstruction_psnr(model, mnist_images[:4], batch_size=2)
    parse_psnr(model, mnist_images[:4], batch_size=2)
    err = capsys.readouterr().err
    assert "reconstruction" in err and "parse" in err
    assert torch.equal(reconstruction_psnr(model, mnist_images[:4], progress=False),
                       reconstruction_psnr(model, mnist_images[:4], batch_size=3, progress=False))
    evaluate(model, mnist_images[:4], num_samples=1, progress=False)
    assert capsys.readouterr().err == ""
