"""Half precision and autocast: the random choices of sampling are made in float32 whatever the weights' dtype.

NP_DRAW_TEST_DEVICE=cuda runs them on a GPU (scripts/gpu_check.py does).
"""

import logging
import math
import os

import pytest
import torch

from np_draw import InvalidInputError, InvalidTypeError, NPDraw
from np_draw.training import FitConfig, validation_bound

DEVICE = torch.device(os.environ.get("NP_DRAW_TEST_DEVICE", "cpu"))


@pytest.fixture(scope="module")
def reference() -> NPDraw:
    return NPDraw.from_pretrained("mnist", device=DEVICE)


def mean_log_prior(model: NPDraw, reference: NPDraw, **sample_options) -> float:
    """Mean log p(z) under the float32 prior of 64 latents sampled by ``model`` with per-image seeds."""
    generators = [torch.Generator(DEVICE).manual_seed(i) for i in range(64)]
    out = model.sample(64, generators, progress=False, **sample_options)
    return reference.prior.log_prob(out.latents, reference.bank).mean().item()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_samples_drawn_in_half_precision_are_as_likely_under_the_float32_prior(reference, dtype):
    full = mean_log_prior(reference, reference)
    half = NPDraw.from_pretrained("mnist", device=DEVICE, dtype=dtype)
    # Before the noise was kept in float32, bfloat16 samples scored about 19 nats lower and float16 ones about 2.
    assert abs(mean_log_prior(half, reference) - full) < 1.0
    out = half.sample(8, generator=torch.Generator(DEVICE).manual_seed(0), progress=False, sample_pixels=True)
    assert out.images.dtype == dtype and torch.isfinite(out.images.float()).all()
    assert set(out.images.unique().float().tolist()) <= {0.0, 1.0}


def test_sampling_under_autocast_matches_float32_sampling_closely(reference):
    full = mean_log_prior(reference, reference)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        assert abs(mean_log_prior(reference, reference) - full) < 1.0


def test_logistic_pixels_sampled_in_half_precision_stay_finite_and_on_the_256_levels():
    from np_draw.likelihoods import make_likelihood

    likelihood = make_likelihood("logistic", 3)
    params = torch.zeros(2, 6, 4, 4, dtype=torch.bfloat16)
    noise = torch.full((2, 3, 4, 4), 1 - 1e-6)  # rounds to 1.0 in bfloat16: an infinite logistic draw there
    pixels = likelihood.sample(params, noise)
    assert pixels.dtype == torch.bfloat16 and torch.isfinite(pixels.float()).all()
    assert pixels.float().max().item() == 1.0


def test_sampled_tensors_are_ordinary_tensors_that_can_be_edited_and_differentiated(reference):
    out = reference.sample(2, generator=torch.Generator(DEVICE).manual_seed(0), progress=False)
    out.latents.canvas[:, :, :14] = 0  # raised "Inplace update to inference tensor outside InferenceMode"
    out.images.requires_grad_()
    completed = reference.complete(out.latents, steps=18, generator=torch.Generator(DEVICE).manual_seed(1))
    completed.images.requires_grad_()
    assert reference.prior.log_prob(completed.latents, reference.bank).shape == (2,)


def test_a_bfloat16_model_renders_float32_latents_and_takes_a_training_step_with_parse_substitution(reference):
    import copy

    model = copy.deepcopy(reference).to(torch.bfloat16)
    images = reference.sample(4, torch.Generator(DEVICE).manual_seed(0), progress=False).images
    parses = reference.parse(images)  # float32 present, as fit's parses are
    weights = torch.softmax(torch.randn(4, 36, 50, device=DEVICE), -1)  # float32 relaxed ids
    canvas = model.render(weights, parses.locs, parses.present)
    assert canvas.dtype == torch.bfloat16 and canvas.shape == (4, 1, 28, 28)
    terms = model.objective(torch.bernoulli(images).to(torch.bfloat16), parses, tau=0.5, substitution=1.0)
    (terms.negative_elbo + terms.parse_ce).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.decoder.parameters() if p.grad is not None)


@pytest.mark.parametrize("change", ["float16", "mixed_precision"])
def test_a_fit_refused_for_its_precision_leaves_no_output_folder(tmp_path, change):
    """fit refuses a float16 model, and mixed precision off CUDA, before it creates output_dir: a refused run leaves
    nothing behind (before, it left an empty checkpoints folder)."""
    model = NPDraw.from_pretrained("mnist", dtype=torch.float16 if change == "float16" else torch.float32)
    config = FitConfig.finetune(mixed_precision=change == "mixed_precision")
    images = torch.rand(4, 1, 28, 28)
    error = InvalidTypeError if change == "float16" else InvalidInputError
    with pytest.raises(error, match="float16" if change == "float16" else "mixed_precision"):
        model.fit(images, config, output_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_mixed_precision_fit_trains_on_cuda_and_is_refused_elsewhere(reference):
    """fit's own bf16 autocast (FitConfig.mixed_precision) on the test device: on CUDA (scripts/gpu_check.py) a few
    steps train to a finite held-out bound, which no other test or check ran; elsewhere it is refused."""
    import copy

    model = copy.deepcopy(reference)
    images = reference.sample(16, torch.Generator(DEVICE).manual_seed(0), progress=False).images
    config = FitConfig.finetune(mixed_precision=True, prior_steps=2, steps=4, eval_every=2)
    if DEVICE.type != "cuda":
        with pytest.raises(InvalidInputError, match="mixed_precision=True needs the model on CUDA"):
            model.fit(images, config, progress=False)
        return
    before = [p.clone() for p in model.decoder.parameters()]
    history = model.fit(images, config, progress=False)
    assert len(history.val_bound) == 2 and all(math.isfinite(bound) for bound in history.val_bound)
    assert model.dtype == torch.float32  # autocast computes in bf16; the weights stay float32
    assert history.best_epoch == -1 or any(not torch.equal(a, b) for a, b in zip(before, model.decoder.parameters()))


def test_the_prior_draw_refuses_a_temperature_that_is_not_a_positive_number(reference):
    """StepLogits.sample checks its temperature as NPDraw.sample does (0 gave meaningless argmaxes, -1 drew the
    unlikely end, NaN all zeros)."""
    cfg = reference.config
    logits = reference.encoder(torch.rand(2, 1, 28, 28, device=DEVICE))
    noise = torch.rand(2, cfg.num_steps, cfg.num_parts + cfg.num_steps + 1, device=DEVICE)
    for bad in (0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(InvalidInputError, match="temperature"):
            logits.sample(noise, bad)
    assert logits.sample(noise, 0.5)[0].shape == (2, cfg.num_steps)


def test_a_bfloat16_fit_reports_its_validation_bound_to_more_than_bfloat16_steps(reference, caplog, monkeypatch):
    """The validation bound is summed in float32 whatever the model's dtype: a bfloat16 sum of a batch of bounds
    near 9,000 moves in steps of 64, and rounds compared for model selection tie."""
    images = reference.sample(40, torch.Generator(DEVICE).manual_seed(0), progress=False).images
    from np_draw import networks

    monkeypatch.setattr(networks, "_cpu_flags", lambda: frozenset({"sse2", "avx2"}))  # a CPU without bfloat16's
    with caplog.at_level(logging.WARNING, logger="np_draw"):
        half = NPDraw.from_pretrained("mnist", device=DEVICE, dtype=torch.bfloat16)
    # A user told on such a CPU, where half precision runs many times slower than float32
    assert ("bfloat16 on the CPU: half precision is for GPUs; this CPU has no AVX512-BF16 or AMX instructions"
            in caplog.text) == (DEVICE.type == "cpu")
    total = validation_bound(half, images, half.parse(images), batch_size=40) * 40
    step = 2.0 ** (math.floor(math.log2(total)) - 7)  # bfloat16's spacing at the total: 8 bits of mantissa
    assert total % step != 0, (total, step)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_half_precision_model_saved_comes_back_in_its_dtype_with_auto(reference, dtype, tmp_path):
    half = NPDraw.from_pretrained("mnist", dtype=dtype)
    half.save_pretrained(tmp_path / "half")
    kept = NPDraw.from_pretrained(tmp_path / "half", dtype="auto", device=DEVICE)
    assert kept.dtype == dtype and kept.device.type == DEVICE.type
    for key, value in half.state_dict().items():
        assert torch.equal(kept.state_dict()[key].cpu(), value), key
    assert NPDraw.from_pretrained(tmp_path / "half").dtype == torch.float32  # the default, as in transformers
    assert NPDraw.from_pretrained("mnist", dtype="auto").dtype == torch.float32  # stored in float32
    # A dtype's name, as transformers takes it; a name that is none, or not a float's, is refused
    assert NPDraw.from_pretrained(tmp_path / "half", dtype="bfloat16").dtype == torch.bfloat16
    assert NPDraw.from_pretrained(tmp_path / "half", dtype="torch.float64").dtype == torch.float64
    with pytest.raises(InvalidTypeError, match=r"dtype must be a floating torch dtype such as .*, or 'auto', got 'halff'"):
        NPDraw.from_pretrained(tmp_path / "half", dtype="halff")
    with pytest.raises(InvalidTypeError, match=r"or 'auto', got torch.int8"):
        NPDraw.from_pretrained(tmp_path / "half", dtype="int8")


def test_auto_takes_the_part_banks_dtype_and_warns_about_weights_stored_otherwise(tmp_path, caplog):
    mixed = NPDraw.from_pretrained("mnist")
    mixed.prior.to(torch.bfloat16)  # the part bank stays float32
    mixed.save_pretrained(tmp_path / "mixed")
    with caplog.at_level("WARNING", logger="np_draw"):
        loaded = NPDraw.from_pretrained(tmp_path / "mixed", dtype="auto")
    assert loaded.dtype == torch.float32 and loaded.prior.head.weight.dtype == torch.float32
    assert "holds weights in BF16 beside the part bank's F32: all are loaded in torch.float32" in caplog.text


def test_float32_latents_decoded_by_a_half_precision_model_are_not_called_edited(reference, caplog):
    """The canvas of float32 latents is the half model's own canvas, rounded: decoding it warned that the latents'
    canvas was 'changed in place, or drawn by another model'. A real edit still warns."""
    half = NPDraw.from_pretrained("mnist", device=DEVICE, dtype=torch.bfloat16)
    latents = reference.sample(4, generator=torch.Generator(DEVICE).manual_seed(0), progress=False).latents
    with caplog.at_level(logging.WARNING, logger="np_draw"):
        half.decode(latents)
        reference.decode(half.encode(reference.decode(latents)))
    assert "not that of their ids" not in caplog.text
    latents.canvas[:, :, :14] = 0
    with caplog.at_level(logging.WARNING, logger="np_draw"):
        half.decode(latents)
    assert "not that of their ids" in caplog.text


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, "float8_e5m2", torch.complex64])
def test_a_dtype_the_model_cannot_compute_in_is_refused_when_loading_and_moving(reference, dtype):
    """float8 dtypes are floating, so from_pretrained took them, and Module.to takes complex ones: the model loaded or
    moved, then its first call failed deep inside ("mul_cpu_reduced_float" not implemented for 'Float8_e4m3fn';
    clamp is not supported for complex types)."""
    name = str(dtype).removeprefix("torch.")
    if name != "complex64":  # complex was refused already
        with pytest.raises(InvalidTypeError, match=f"got torch.{name}: a storage format"):
            NPDraw.from_pretrained("mnist", dtype=dtype)
    with pytest.raises(InvalidTypeError, match=f"dtype must be a floating torch dtype .*got torch.{name}"):
        reference.to(getattr(torch, name))
    with pytest.raises(InvalidTypeError, match=f"got torch.{name}"):
        reference.to(DEVICE, dtype=getattr(torch, name))
    assert reference.dtype == torch.float32  # nothing moved
    with pytest.raises(InvalidTypeError, match="got torch.int64"):
        reference.to(torch.zeros(1, dtype=torch.long))  # torch's TypeError, now the package's (a TypeError too)
    assert reference.to(DEVICE, torch.float32) is reference  # what works is Module.to's
