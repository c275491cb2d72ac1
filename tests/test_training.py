import json
import logging
import math
import os
import subprocess
import sys
import textwrap
from dataclasses import asdict

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from np_draw import InvalidInputError, Latents, NPDraw, PriorConfig, StepLogits, parse, training
from np_draw.checkpoint import optimizer_from_checkpoint, optimizer_to_checkpoint
from np_draw.elbo import (
    RelaxedLatents,
    gumbel_temperature,
    kl_per_step,
    substitute,
    substitution_probability,
)
from np_draw.images import TensorImages
from np_draw.training import FitConfig, adam
from tests.conftest import FIXTURES, random_model, tiny_config


def random_logits(n: int, t: int, b: int, seed: int) -> StepLogits:
    g = torch.Generator().manual_seed(seed)
    return StepLogits(torch.randn(n, t, b, generator=g), torch.randn(n, t, t, generator=g),
                      torch.randn(n, t, generator=g))


def test_kl_per_step_matches_enumeration_and_vanishes_for_equal_distributions():
    q, p = random_logits(2, 3, 4, seed=0), random_logits(2, 3, 4, seed=1)
    present = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    kl = kl_per_step(q, p, present)
    # Enumerate each distribution's support.
    def cat_kl(a, b):
        pa, pb = a.softmax(-1), b.softmax(-1)
        return (pa * (pa / pb).log()).sum(-1)
    qa, pa = torch.sigmoid(q.present), torch.sigmoid(p.present)
    bern = qa * (qa / pa).log() + (1 - qa) * ((1 - qa) / (1 - pa)).log()
    expected = (cat_kl(q.ids, p.ids) + cat_kl(q.locs, p.locs)) * present + bern
    assert torch.allclose(kl, expected, atol=1e-5)
    assert torch.allclose(kl_per_step(q, q, present), torch.zeros(2, 3), atol=1e-6)


def test_kl_per_step_of_bfloat16_logits_is_computed_in_float32():
    """A bfloat16 model's KL (which the validation bound adds to its float32 reconstruction) is exact to float32
    for its own logits: computed in bfloat16, KLs near 150 nats were rounded to whole nats, off by up to 0.36."""
    q, p = random_logits(8, 36, 50, seed=0), random_logits(8, 36, 50, seed=1)
    q = StepLogits(4 * q.ids, 4 * q.locs, 4 * q.present)
    half = [StepLogits(*(x.to(torch.bfloat16) for x in (s.ids, s.locs, s.present))) for s in (q, p)]
    exact = [StepLogits(*(x.double() for x in (s.ids, s.locs, s.present))) for s in half]
    present = (torch.rand(8, 36, generator=torch.Generator().manual_seed(2)) < 0.6).float()
    kl = kl_per_step(*half, present.to(torch.bfloat16))
    expected = kl_per_step(*exact, present.double())
    assert (kl.sum(1).double() - expected.sum(1)).abs().max() < 1e-3
    assert kl.dtype == torch.float32 and expected.dtype == torch.float64


def test_schedules_follow_the_reference_code():
    assert gumbel_temperature(0) == 1.0
    assert math.isclose(gumbel_temperature(10), math.exp(-0.139))
    assert gumbel_temperature(1000) == 0.5
    assert substitution_probability(0, 0.005) == 1.0
    assert math.isclose(substitution_probability(9, 0.005), math.exp(-0.005 * 45))


def test_substitution_replaces_exactly_the_masked_images():
    sample = RelaxedLatents(torch.full((2, 3, 4), 0.25), F.one_hot(torch.zeros(2, 3, dtype=torch.long), 3).float(),
                            torch.zeros(2, 3))
    parse = Latents(torch.tensor([[1, 2, 3]] * 2), torch.tensor([[0, 1, 2]] * 2), torch.ones(2, 3))
    out = substitute(sample, parse, torch.tensor([True, False]))
    assert torch.equal(out.ids[0], F.one_hot(parse.ids[0], 4).float()) and torch.equal(out.ids[1], sample.ids[1])
    assert torch.equal(out.locs[0].argmax(-1), parse.locs[0]) and torch.equal(out.present[1], torch.zeros(3))


def test_the_parse_term_is_small_for_a_posterior_that_puts_its_mass_on_the_parse():
    # The objective's parse cross-entropy is -log q(parse | x).
    parse = Latents(torch.tensor([[1, 2]]), torch.tensor([[0, 1]]), torch.tensor([[1.0, 0.0]]))
    confident = StepLogits(20 * F.one_hot(parse.ids, 4).float(), 20 * F.one_hot(parse.locs, 2).float(),
                           torch.tensor([[20.0, -20.0]]))
    assert -confident.log_prob(parse).item() < 1e-6
    assert -random_logits(1, 2, 4, seed=3).log_prob(parse).item() > 0.5


def test_fit_trains_a_tiny_model_end_to_end(mnist_images):
    torch.manual_seed(0)
    model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=2)))
    config = FitConfig(prior_epochs=3, prior_lr=3e-3, epochs=4, batch_size=50, encoder_lr=3e-3, decoder_lr=3e-3)
    history = model.fit((mnist_images[:200] * 255).round().to(torch.uint8), config, progress=False)
    assert history.prior_val[-1] < history.prior_val[0]
    assert history.train[-1]["loss"] < history.train[0]["loss"]
    assert history.train[-1]["reconstruction"] < history.train[0]["reconstruction"]
    assert history.val_bound[-1] < history.val_bound[0]
    assert not model.training
    out = model.sample(4, generator=torch.Generator().manual_seed(0), progress=False)
    assert out.images.shape == (4, 1, 28, 28) and torch.isfinite(out.images).all()


RESUME_SCRIPT = """
import sys, torch, numpy as np
from np_draw import NPDraw, PriorConfig
from np_draw.training import FitConfig
from tests.conftest import tiny_config
images = torch.from_numpy(np.load("tests/fixtures/mnist_300.npz")["images"][:80]).float() / 255
torch.manual_seed(0)
model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
config = FitConfig(prior_epochs=1, epochs=4, batch_size=16, prior_batch_size=16, checkpoint_every=2, seed=7)
model.fit(images, config, output_dir=sys.argv[1], resume=True, progress=False)
model.save_pretrained(sys.argv[1] + "/final")
"""


def run_fit(folder, kill_after: float | None = None) -> int:
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen([sys.executable, "-c", RESUME_SCRIPT, str(folder)], cwd=root)
    if kill_after is None:
        return process.wait(timeout=300)
    deadline = time.time() + 300
    # Kill once a checkpoint past the first stages exists, so the run dies in the middle of training.
    while time.time() < deadline and process.poll() is None:
        pointer = Path(folder) / "checkpoints" / "latest.json"
        if pointer.exists() and "vae" in pointer.read_text():
            time.sleep(kill_after)
            break
        time.sleep(0.05)
    process.kill()
    return process.wait()


def test_a_run_killed_with_sigkill_and_resumed_ends_with_the_same_weights(tmp_path):
    from safetensors.torch import load_file

    assert run_fit(tmp_path / "straight") == 0
    assert run_fit(tmp_path / "killed", kill_after=0.1) == -9  # SIGKILL, a moment into the VAE stage
    assert not (tmp_path / "killed" / "final").exists()
    assert run_fit(tmp_path / "killed") == 0
    expected = load_file(tmp_path / "straight" / "final" / "model.safetensors")
    resumed = load_file(tmp_path / "killed" / "final" / "model.safetensors")
    assert expected.keys() == resumed.keys()
    for key in expected:
        assert torch.equal(expected[key], resumed[key]), key


def test_resuming_a_finished_run_with_more_epochs_matches_a_run_given_them_from_the_start(mnist_images, tmp_path,
                                                                                           caplog, monkeypatch):
    images = mnist_images[:60]

    def run(folder: str, epochs: int, **changes) -> NPDraw:
        torch.manual_seed(0)
        model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
        config = FitConfig(prior_epochs=1, epochs=epochs, batch_size=20, seed=5, **changes)
        model.fit(images, config, output_dir=tmp_path / folder, resume=True, progress=False)
        return model

    with caplog.at_level(logging.INFO, logger="np_draw"):
        straight = run("straight", 3)
    assert f"nothing to resume from in {tmp_path / 'straight' / 'checkpoints'}: a new run starts" in caplog.text
    run("extended", 1)
    extended = run("extended", 3)
    caplog.clear()
    parsed = []
    monkeypatch.setattr(training, "parse", lambda *args, **kwargs: parsed.append(1) or parse(*args, **kwargs))
    with caplog.at_level(logging.INFO, logger="np_draw"):
        assert len(extended.fit(images, FitConfig(prior_epochs=1, epochs=3, batch_size=20, seed=5),
                                output_dir=tmp_path / "extended", resume=True, progress=False).val_bound) == 3
    assert "resumed a finished run (3 epochs)" in caplog.text
    assert not parsed, "a finished run resumed parsed its images again"
    expected, actual = straight.state_dict(), extended.state_dict()
    assert all(torch.equal(expected[key], actual[key]) for key in expected)
    with pytest.raises(ValueError, match="it has trained or begun 3 epochs; pass at least epochs=3"):
        run("extended", 2)
    with pytest.raises(ValueError, match=r"another FitConfig \(decoder_lr=0.0001, now 0.001\); only epochs and steps"):
        run("extended", 4, decoder_lr=1e-3)


def test_an_optimizer_restored_from_a_checkpoint_updates_channels_last_weights_as_the_saved_one_would():
    """fit's Adam is torch's fused kernel, which walks a parameter's memory and its state's in step; the state is
    saved contiguous, so a channels-last weight (the encoder's and decoder's convolutions) must get its state back
    in its own layout, or the restored optimizer pairs the wrong values."""
    torch.manual_seed(0)
    start = torch.randn(4, 3, 2, 2).to(memory_format=torch.channels_last)
    grads = [torch.randn(4, 3, 2, 2).to(memory_format=torch.channels_last) for _ in range(3)]

    def train(restore_after: int | None) -> torch.Tensor:
        weight = torch.nn.Parameter(start.clone(memory_format=torch.preserve_format))
        optimizer = adam([{"params": [weight], "lr": 0.1}])
        for i, grad in enumerate(grads):
            if i == restore_after:
                tensors, meta = optimizer_to_checkpoint(optimizer)
                optimizer = adam([{"params": [weight], "lr": 0.1}])
                optimizer_from_checkpoint(optimizer, {k: v.contiguous() for k, v in tensors.items()}, meta)
            weight.grad = grad.clone(memory_format=torch.preserve_format)
            optimizer.step()
        return weight.detach()

    assert torch.equal(train(restore_after=1), train(restore_after=None))
    # A checkpoint of an unfused optimizer (earlier code) restores into the fused one, and a group may give its
    # parameters as one tensor, as torch's optimizers take them.
    weight = torch.nn.Parameter(torch.zeros(3))
    unfused = torch.optim.Adam([weight])
    weight.grad = torch.ones(3)
    unfused.step()
    fused = adam([{"params": weight, "lr": 1e-3}])
    optimizer_from_checkpoint(fused, *optimizer_to_checkpoint(unfused))
    assert fused.param_groups[0]["fused"] and torch.allclose(fused.state[weight]["exp_avg"], torch.full((3,), 0.1))


def test_fit_accepts_arrays_datasets_loaders_and_folders(mnist_images, tmp_path):
    from PIL import Image
    from torch.utils.data import DataLoader, TensorDataset

    from np_draw.images import as_image_tensor

    as_uint8 = (mnist_images[:12] * 255).round().to(torch.uint8)
    expected = as_uint8
    nhw = as_uint8[:, 0].numpy()
    assert torch.equal(as_image_tensor(nhw, channels=1, size=28), expected)
    assert torch.equal(as_image_tensor(nhw[..., None], channels=1, size=28), expected)
    dataset = TensorDataset(as_uint8, torch.zeros(12))
    assert torch.equal(as_image_tensor(dataset, channels=1, size=28), expected)
    assert torch.equal(as_image_tensor(DataLoader(dataset, batch_size=5), channels=1, size=28), expected)
    (tmp_path / "sub").mkdir()
    for i, image in enumerate(nhw):
        Image.fromarray(image).save(tmp_path / ("sub" if i % 2 else ".") / f"{i:02d}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "cut.png").write_bytes((tmp_path / "00.png").read_bytes()[:40])
    from_folder = as_image_tensor(tmp_path, channels=1, size=28)
    assert from_folder.shape == (12, 1, 28, 28)
    assert {bytes(x.numpy()) for x in from_folder} == {bytes(x.numpy()) for x in expected}
    with pytest.raises(TypeError, match="images must be a tensor"):
        as_image_tensor(42, channels=1, size=28)


def test_a_given_validation_set_is_held_out_and_all_training_images_are_trained_on(mnist_images):
    from np_draw.images import to_canvas

    train, validation = mnist_images[:60], mnist_images[200:240]
    torch.manual_seed(0)
    model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
    history = model.fit(train, FitConfig(prior_epochs=1, epochs=1, batch_size=20, seed=3), validation=validation,
                        progress=False)
    expected = NPDraw(model.config).bank
    expected.fit(to_canvas(train, 28), model.grid, empty_threshold=model.config.empty_threshold, seed=3)
    assert torch.equal(model.bank.parts, expected.parts)  # the bank saw every training image and no validation one
    parsed = model.parse(validation)
    val_nats = model.prior.log_prob(parsed, model.bank).neg().mean().item()
    assert history.prior_val[0] == pytest.approx(val_nats, rel=1e-4)  # the prior was validated on ``validation``
    with pytest.raises(ValueError, match=r"validation must have shape \(N, 1, 28, 28\)"):
        model.fit(train, epochs=1, validation=torch.rand(4, 3, 28, 28), progress=False)


def test_val_fraction_with_a_given_validation_set_says_it_has_no_effect(mnist_images, caplog):
    """validation= holds out its own images: a val_fraction asked for beside it was ignored without a word."""
    model = random_model("mnist")
    options = {"fit_bank": False, "fit_prior": False, "steps": 0, "validation": mnist_images[200:210],
               "progress": False}
    with caplog.at_level(logging.WARNING, logger="np_draw.training"):
        model.fit(mnist_images[:20], val_fraction=0.3, **options)
    assert "val_fraction=0.3 has no effect: validation= holds out its own 10 images, and all 20 images are " \
           "trained on" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="np_draw.training"):
        model.fit(mnist_images[:20], **options)  # the default share: nothing to say
    assert "val_fraction" not in caplog.text


def test_resuming_with_the_images_split_otherwise_between_training_and_validation_is_refused(mnist_images, tmp_path):
    """The fingerprint is of the training and validation images in a row: a run on 50 images (5 held out at random)
    resumed with 40 of them and validation= the other 10 matched it, and the resumed run trained on images held
    out before and validated on images its bank and prior were fitted on."""
    images, config = mnist_images[:50], FitConfig(prior_epochs=1, epochs=1, batch_size=25, checkpoint_every=0)

    def fit(train, validation=None, folder="run"):
        torch.manual_seed(0)
        model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
        return model.fit(train, config, validation=validation, output_dir=tmp_path / folder, resume=True,
                         progress=False)

    fit(images)
    for train, validation in ((images[:40], images[40:]), (images[:45], images[45:])):
        with pytest.raises(InvalidInputError, match="held-out images cannot change"):
            fit(train, validation)
    fit(images[:40], images[40:], folder="given")
    with pytest.raises(InvalidInputError, match=r"the last 10 images held out \(validation=\), now the last 5"):
        fit(images[:45], images[45:], folder="given")
    assert len(fit(images[:40], images[40:], folder="given").val_bound) == 1  # the same split resumes
    # A checkpoint written before checkpoints recorded the split (no "validation" in its state) still resumes
    checkpoints = tmp_path / "given" / "checkpoints"
    state = checkpoints / json.loads((checkpoints / "latest.json").read_text())["latest"] / "state.json"
    state.write_text(json.dumps({key: value for key, value in json.loads(state.read_text()).items()
                                 if key != "validation"}))
    assert len(fit(images[:40], images[40:], folder="given").val_bound) == 1


def test_a_short_run_from_scratch_warns_and_val_fraction_0_trains_and_validates_on_every_image(mnist_images, caplog):
    """A user's trial: `np-draw fit` from scratch on 244 drawings ran 10 epochs of 2 steps and saved grey blobs
    without a word; val_fraction=0 still held out one image."""
    torch.manual_seed(0)
    model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
    with caplog.at_level(logging.INFO, logger="np_draw"):
        history = model.fit(mnist_images[:20], FitConfig(prior_epochs=1, epochs=2, batch_size=8, val_fraction=0.0),
                            progress=False)
    assert "training from scratch with 6 encoder/decoder steps" in caplog.text  # 2 epochs of 20 images at batch 8
    # As the run starts, not after the bank and prior stages (minutes, on a user's photos)
    assert caplog.text.index("training from scratch with") < caplog.text.index("images parsed")
    assert "no images held out (val_fraction=0): the validation bound and model selection use the training images" \
        in caplog.text
    # Every image trained on: the bank saw all 20 (it is fitted on the training images only, in the split's order)
    order = torch.randperm(20, generator=torch.Generator().manual_seed(FitConfig().seed))
    expected = NPDraw(model.config).bank
    expected.fit(mnist_images[:20][order], model.grid, empty_threshold=model.config.empty_threshold,
                 seed=FitConfig().seed)
    assert torch.equal(model.bank.parts, expected.parts) and len(history.val_bound) == 2
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="np_draw"):  # a fine-tune of the trained model: no warning
        model.fit(mnist_images[:20], steps=2, prior_steps=1, progress=False)
        # nor a stage skipped on purpose (0 steps)
        NPDraw(model.config).fit(mnist_images[:20], FitConfig(prior_epochs=1, steps=0, batch_size=8), progress=False)
    assert "training from scratch" not in caplog.text


def test_fit_leaves_torch_s_global_generator_as_it_found_it(mnist_images):
    """fit seeds torch's generator from FitConfig.seed for its own draws; the caller's stream went on from that
    seed afterwards (the draws after two fits with different seeds before them were the same)."""
    model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
    torch.manual_seed(999)
    expected = torch.rand(3)
    torch.manual_seed(999)
    model.fit(mnist_images[:8], FitConfig(prior_steps=1, steps=1, batch_size=4), progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_fit_on_a_trained_model_fine_tunes_it_from_where_it_stands_and_improves_held_out_images(mnist_images):
    import copy

    from np_draw.metrics import nll
    from np_draw.training import validation_bound

    omniglot = torch.from_numpy(np.load(FIXTURES / "omniglot_100.npz", allow_pickle=False)["images"])[:, None]
    train, validation, test = omniglot[:60], omniglot[60:75].float() / 255, omniglot[75:].float() / 255
    torch.manual_seed(0)
    model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
    model.fit(mnist_images[:200], FitConfig(prior_epochs=2, prior_lr=3e-3, epochs=3, batch_size=50, encoder_lr=3e-3,
                                            decoder_lr=3e-3), progress=False)
    pretrained = copy.deepcopy(model)
    before = nll(model, test, 5, progress=False).mean_nats

    history = model.fit(train, validation=validation, prior_steps=40, steps=120, eval_every=20, progress=False)
    defaults = FitConfig.finetune()
    assert torch.equal(model.bank.parts, pretrained.bank.parts)  # the bank is kept: latent ids mean what they meant
    # val_bound_start is the pretrained model's bound, measured before the prior's stage; the encoder and decoder
    # then start from the pretrained weights, at the fine-tuning temperature.
    assert history.val_bound_start == pytest.approx(
        validation_bound(pretrained, validation, pretrained.parse(validation), seed=defaults.seed), rel=1e-5)
    assert [round["tau"] for round in history.train] == [defaults.tau_start] * len(history.train)
    assert len(history.prior_val) == 2 and len(history.val_bound) <= 6
    # A round is kept here, the best candidate on the validation images, measured the same way.
    assert history.best_epoch >= 0 and history.val_bound[history.best_epoch] == min(history.val_bound)
    assert history.val_bound_kept == min(history.val_bound)
    assert validation_bound(model, validation, model.parse(validation), seed=defaults.seed) == pytest.approx(
        min(history.val_bound), rel=1e-5) and min(history.val_bound) < history.val_bound_start
    assert nll(model, test, 5, progress=False).mean_nats < before - 5  # held-out characters, never seen


def test_fine_tuning_keeps_the_starting_weights_when_no_round_beats_them(mnist_images, caplog):
    torch.manual_seed(0)
    model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
    model.fit(mnist_images[:100], FitConfig(prior_epochs=1, epochs=1, batch_size=50), progress=False)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    # A learning rate this large, without warm-up, wrecks the encoder and decoder at the first step.
    with caplog.at_level(logging.INFO, logger="np_draw"):
        history = model.fit(mnist_images[100:140], fit_prior=False, steps=4, eval_every=2, encoder_lr=1.0,
                            decoder_lr=1.0, warmup_steps=0, full_rate_images=None, progress=False)
    assert history.best_epoch == -1 and min(history.val_bound) > history.val_bound_start
    # The encoder and decoder as given, and nothing said of a prior, which was not trained (it said "the starting
    # weights" also where the retrained prior was kept)
    assert f"kept the starting encoder and decoder (validation bound {history.val_bound_kept:.2f} nats)" in caplog.text
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items() if "running" not in k)


def test_a_fine_tune_whose_retrained_prior_worsens_the_bound_keeps_the_model_as_given(mnist_images, tmp_path, caplog):
    """The prior's stage keeps the prior that scores best on the parses; with the starting encoder its KL made the
    held-out bound worse (484.5 -> 523.1 nats in a review's case), and that was the first candidate of the last
    stage: the fine-tune ended worse than it started, against its promise."""
    from np_draw.training import validation_bound

    torch.manual_seed(0)
    model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
    model.fit(mnist_images[:200], FitConfig(prior_epochs=2, prior_lr=3e-3, epochs=3, batch_size=50, encoder_lr=3e-3,
                                            decoder_lr=3e-3), progress=False)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    images, defaults = mnist_images[200:260], FitConfig.finetune()
    # A fast prior, and encoder and decoder rates that wreck every round
    options = {"prior_steps": 40, "prior_lr": 3e-3, "steps": 4, "eval_every": 2, "encoder_lr": 1.0,
               "decoder_lr": 1.0, "location_lr": 1.0, "warmup_steps": 0, "full_rate_images": None, "progress": False}
    with caplog.at_level(logging.INFO, logger="np_draw"):
        history = model.fit(images, **options)
    assert "with the retrained prior, before the encoder and decoder train" in caplog.text
    assert "kept the model as it was given, its prior included" in caplog.text
    # The retrained prior scored better on the parses; the model as given scored better on the bound
    assert min(history.prior_val) < history.prior_val_start - 10
    assert history.prior_best_epoch == -1 and history.best_epoch == -1
    assert history.val_bound_kept == history.val_bound_start
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items() if "running" not in k)
    held_out = images[torch.randperm(60, generator=torch.Generator().manual_seed(defaults.seed))[:6]]
    assert validation_bound(model, held_out, model.parse(held_out), seed=defaults.seed) == pytest.approx(
        history.val_bound_start, rel=1e-6)
    # Without patience nothing is kept back, and val_bound_start is still the bound of the model as given
    again = NPDraw(model.config)
    again.load_state_dict(start)
    history = again.fit(images[:54], validation=held_out, **{**options, "patience": None})
    assert history.val_bound_start == pytest.approx(
        validation_bound(model, held_out, model.parse(held_out), seed=defaults.seed), rel=1e-6)
    # Resumed from its checkpoints (the weights as given are in them), the run ends the same way
    again = NPDraw(model.config)
    again.load_state_dict(start)
    resumed = again.fit(images, output_dir=tmp_path / "run", **options)
    resumed = again.fit(images, output_dir=tmp_path / "run", resume=True, **options)
    assert resumed.prior_best_epoch == -1 and resumed.best_epoch == -1
    assert all(torch.equal(v, start[k]) for k, v in again.state_dict().items() if "running" not in k)


def test_fine_tuning_on_few_images_scales_its_learning_rates_and_the_parse_canvas_term(mnist_images):
    import copy

    torch.manual_seed(0)
    model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
    model.fit(mnist_images[:100], FitConfig(prior_epochs=1, epochs=1, batch_size=50), progress=False)
    tuned = {}
    # 40 images hold 4 out: 36 train, a sixteenth of full_rate_images=576, so the prior's and decoder's rates and
    # the parse canvas term's weight are divided by 16, and the encoder's rate, full from 57.6 images on, is
    # multiplied by 36 / 57.6 = 0.625 (all exact in binary).
    encoder_lr, location_lr = FitConfig.finetune().encoder_lr, FitConfig.finetune().location_lr
    for name, (prior_lr, decoder_lr, weight, encoder, location, full) in {
            "scaled": (2**-12, 2**-10, 1.0, encoder_lr, location_lr, 576),
            "given scaled": (2**-16, 2**-14, 2**-4, encoder_lr * 0.625, location_lr * 0.625, None),
            "full": (2**-12, 2**-10, 1.0, encoder_lr, location_lr, None)}.items():
        copy_ = copy.deepcopy(model)
        copy_.fit(mnist_images[100:140], prior_steps=2, steps=2, patience=None, prior_lr=prior_lr,
                  decoder_lr=decoder_lr, encoder_lr=encoder, location_lr=location, parse_canvas_weight=weight,
                  full_rate_images=full, progress=False)
        tuned[name] = copy_.state_dict()
    trained = [key for key in tuned["full"] if key.startswith(("prior.", "encoder.", "decoder."))]
    assert all(torch.equal(tuned["scaled"][key], tuned["given scaled"][key]) for key in trained)
    for part in ("prior.", "encoder.", "decoder."):
        assert not all(torch.equal(tuned["scaled"][key], tuned["full"][key]) for key in trained
                       if key.startswith(part))
    with pytest.raises(ValueError, match="full_rate_images"):
        FitConfig(full_rate_images=0)


def test_warm_up_starts_a_stage_at_a_fraction_of_its_learning_rates(mnist_images):
    import copy

    torch.manual_seed(0)
    model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
    model.fit(mnist_images[:100], FitConfig(prior_epochs=1, epochs=1, batch_size=50), progress=False)
    weights = {}
    # One step of a 4-step warm-up at rate 4e-3 is one step at 1e-3 (4 x 1e-3 is 4e-3 exactly in binary).
    for name, rate, warmup in (("warm", 4e-3, 4), ("slow", 1e-3, 0), ("fast", 4e-3, 0)):
        tuned = copy.deepcopy(model)
        tuned.fit(mnist_images[100:140], fit_prior=False, steps=1, patience=None, encoder_lr=rate, decoder_lr=rate,
                  warmup_steps=warmup, progress=False)
        weights[name] = tuned.decoder.state_dict()
    assert all(torch.equal(weights["warm"][key], weights["slow"][key]) for key in weights["warm"])
    assert not all(torch.equal(weights["warm"][key], weights["fast"][key]) for key in weights["warm"])
    with pytest.raises(ValueError, match="warmup_steps must be a non-negative int"):
        FitConfig(warmup_steps=-1)


def test_a_stage_measured_in_steps_runs_exactly_that_many_optimizer_steps(mnist_images, tmp_path, caplog):
    from np_draw.checkpoint import load_checkpoint

    torch.manual_seed(0)
    model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
    config = FitConfig(prior_steps=7, steps=11, eval_every=4, batch_size=8, prior_batch_size=8, checkpoint_every=0)
    history = model.fit(mnist_images[:20], config, output_dir=tmp_path, progress=False)  # 18 train images
    assert len(history.prior_val) == 2 and len(history.val_bound) == 3  # rounds of 4 steps: 4+3 and 4+4+3
    _, state = load_checkpoint(tmp_path / "checkpoints")
    assert state["global_step"] == 7 + 11 and (history.prior_steps, history.steps) == (7, 11)
    # On few images a budget in steps is cut to max_passes over them: 2 passes of 18 images at batch 8 = 5 steps.
    with caplog.at_level(logging.INFO, logger="np_draw"):
        capped = model.fit(mnist_images[:20], config.replace(max_passes=2.0, fit_bank=False), progress=False)
    assert (capped.prior_steps, capped.steps, len(capped.val_bound)) == (5, 5, 2)
    for name, asked in (("prior_steps", 7), ("steps", 11)):  # said, not only seen in the history
        assert f"{name}={asked} is cut to 5: max_passes=2.0 over the 18 training images" in caplog.text
    # A finished run in steps is extended by whole rounds: exactly as if given the steps from the start, unless
    # its last round was cut short (3 of 4 steps), which more steps would not continue: refused.
    def run(folder: str, steps: int) -> NPDraw:
        torch.manual_seed(0)
        model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
        model.fit(mnist_images[:20], config.replace(steps=steps), output_dir=tmp_path / folder, resume=True,
                  progress=False)
        return model

    straight, _ = run("straight", 12), run("extended", 8)
    extended = run("extended", 12).state_dict()
    assert all(torch.equal(value, extended[key]) for key, value in straight.state_dict().items())
    for changes, message in [({"steps": 15}, r"hold \[4, 4, 3\] steps, which this budget would make \[4, 4, 4\]"),
                             ({"steps": 10}, r"hold \[4, 4, 3\] steps, which this budget would make \[4, 4, 2\]"),
                             ({"steps": None, "epochs": 5}, "trained in steps; give the budget in the same unit"),
                             ({"steps": 5}, ("trained or begun 3 rounds of eval_every=4 steps, 11 steps; pass at "
                                             "least steps=11")),
                             ({"steps": None, "epochs": 1}, "trained in steps; give the budget in the same unit")]:
        with pytest.raises(ValueError, match=message):
            NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1))).fit(
                mnist_images[:20], config.replace(**changes), output_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match="give epochs or steps, not both; got epochs=2 and steps=3"):
        FitConfig(epochs=2, steps=3)
    assert FitConfig.finetune(epochs=3).steps is None  # a budget in epochs replaces the default one in steps


def test_an_interrupted_fine_tune_resumes_exactly_and_an_early_stop_stays_stopped(mnist_images, tmp_path):
    torch.manual_seed(0)
    start = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
    start.fit(mnist_images[:100], FitConfig(prior_epochs=1, epochs=1, batch_size=50), progress=False)
    images = mnist_images[100:160]

    def tune(folder: str, interrupt: bool = False, **changes) -> NPDraw:
        model = NPDraw(start.config)
        model.load_state_dict(start.state_dict())

        def stop(epoch, history):
            if interrupt and epoch == 1:
                raise KeyboardInterrupt

        config = FitConfig.finetune(**{"prior_steps": 6, "steps": 20, "eval_every": 4, "batch_size": 8,
                                       "patience": 2, "checkpoint_every": 3, **changes})
        model.fit(images, config, output_dir=tmp_path / folder, resume=True, progress=False, callback=stop)
        return model

    straight = tune("straight")
    with pytest.raises(KeyboardInterrupt):
        tune("stopped", interrupt=True)
    resumed = tune("stopped")
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in straight.state_dict().items())
    # Once patience has stopped a run (a learning rate that makes every round worse), a larger budget changes
    # nothing, as if it had been given from the start.
    wrecked = tune("wrecked", encoder_lr=1.0, decoder_lr=1.0, warmup_steps=0, full_rate_images=None)
    again = tune("wrecked", encoder_lr=1.0, decoder_lr=1.0, warmup_steps=0, full_rate_images=None,
                   steps=40)
    history = NPDraw(start.config).fit(images, output_dir=tmp_path / "wrecked", resume=True, progress=False)
    assert history.stopped_early and len(history.val_bound) == 2 and history.best_epoch == -1
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in wrecked.state_dict().items())
    with pytest.raises(ValueError, match="patience must be a positive integer, got 0"):
        FitConfig(patience=0)
    with pytest.raises(ValueError, match="fit_bank=True with fit_prior=False"):
        FitConfig(fit_prior=False)


def test_running_out_of_patience_at_the_last_round_is_no_early_stop_and_stays_stopped_when_extended(mnist_images,
                                                                                                    tmp_path):
    """history.stopped_early said True for a run whose patience ran out at its last round, its budget spent."""
    torch.manual_seed(0)
    start = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
    start.fit(mnist_images[:100], FitConfig(prior_epochs=1, epochs=1, batch_size=50), progress=False)

    def wreck(folder: str, steps: int):  # a learning rate that makes every round worse than the starting weights
        model = NPDraw(start.config)
        model.load_state_dict(start.state_dict())
        history = model.fit(mnist_images[100:140], fit_prior=False, steps=steps, eval_every=2, patience=2,
                            encoder_lr=1.0, decoder_lr=1.0, warmup_steps=0, full_rate_images=None,
                            output_dir=tmp_path / folder, resume=True, progress=False)
        return model, history

    _, spent = wreck("run", 4)
    assert len(spent.val_bound) == 2 and spent.best_epoch == -1 and not spent.stopped_early
    (longer, stopped), (extended, resumed) = wreck("longer", 8), wreck("run", 8)
    assert stopped.stopped_early and resumed.stopped_early and len(resumed.val_bound) == 2
    assert all(torch.equal(v, extended.state_dict()[k]) for k, v in longer.state_dict().items())


def test_val_bound_kept_is_the_bound_of_the_weights_fit_returns(mnist_images):
    """The starting encoder and decoder kept beside a retrained prior scored a bound that the history did not hold
    (val_bound_start is the model as given's, its old prior included), and np-draw fit's card called that kept."""
    from np_draw.training import validation_bound

    torch.manual_seed(0)
    model = NPDraw(tiny_config("mnist"))
    model.fit(mnist_images[:100], FitConfig(prior_epochs=1, epochs=1, batch_size=20), progress=False)
    images, defaults = mnist_images[100:200], FitConfig.finetune()
    history = model.fit(images, prior_steps=60, steps=0, batch_size=10, patience=1, progress=False)
    assert history.prior_best_epoch >= 0 and history.best_epoch == -1  # the retrained prior, the starting rest
    assert history.val_bound_kept < history.val_bound_start
    held_out = images[torch.randperm(100, generator=torch.Generator().manual_seed(defaults.seed))[:10]]
    assert validation_bound(model, held_out, model.parse(held_out), seed=defaults.seed) == pytest.approx(
        history.val_bound_kept, rel=1e-6)


def test_a_rounds_training_figures_are_means_over_its_images_a_short_last_batch_included(mnist_images):
    """history.prior_train (and train) averaged the batches' means: 10 images in batches of 4, 4 and 2 counted the
    last two images twice as much as the others."""
    model = random_model("mnist", prior=PriorConfig(num_layers=1, dropout=0.0))
    images = mnist_images[:10]
    # A rate too small to move the weights: every batch is scored by the same prior
    history = model.fit(images, validation=mnist_images[10:12], prior_epochs=1, epochs=0, prior_batch_size=4,
                        prior_lr=1e-30, warmup_steps=0, progress=False)
    with torch.no_grad():
        expected = -model.prior.log_prob(model.parse(images), model.bank).mean().item()
    assert history.prior_train == [pytest.approx(expected, rel=1e-5)]


def test_a_resumed_budget_cut_by_max_passes_and_an_overwritten_run_are_logged(tmp_path, mnist_images, caplog):
    torch.manual_seed(0)
    model = NPDraw(tiny_config("mnist"))
    model.fit(mnist_images[:40], FitConfig(prior_epochs=1, epochs=1, batch_size=20), progress=False)
    start = {key: value.clone() for key, value in model.state_dict().items()}
    images = mnist_images[40:60]  # 18 training images: max_passes=2 at batch 6 caps steps at 6
    options = {"prior_steps": 2, "steps": 4, "eval_every": 2, "batch_size": 6, "max_passes": 2, "progress": False}
    model.fit(images, output_dir=tmp_path / "run", **options)
    model.load_state_dict(start)
    with caplog.at_level(logging.INFO):
        history = model.fit(images, output_dir=tmp_path / "run", resume=True, **{**options, "steps": 20})
    assert history.steps == 6 and len(history.val_bound) == 3  # rounds of 2, 2 and 2 steps: extended, cut to 6
    assert "steps=20 is cut to 6: max_passes=2" in caplog.text
    caplog.clear()
    model.load_state_dict(start)
    with caplog.at_level(logging.WARNING):
        model.fit(images, output_dir=tmp_path / "run", **options)
    assert "holds the checkpoints of an earlier run" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        model.fit(images, output_dir=tmp_path / "fresh", **options)
    assert "earlier run" not in caplog.text


def test_a_budget_cut_by_max_passes_is_logged_once_when_a_run_stopped_before_stage_4_resumes(
        tmp_path, mnist_images, caplog, monkeypatch):
    # Logged on resume and again when stage 4 started
    torch.manual_seed(0)
    model = NPDraw(tiny_config("mnist"))
    options = {"prior_steps": 2, "steps": 4, "eval_every": 2, "batch_size": 6, "max_passes": 2, "progress": False}

    def stop(self):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(training._Run, "_vae_stage", stop)
        with pytest.raises(KeyboardInterrupt):
            model.fit(mnist_images[:20], output_dir=tmp_path, **options)
    with caplog.at_level(logging.INFO):
        model.fit(mnist_images[:20], output_dir=tmp_path, resume=True, **{**options, "steps": 20})
    assert caplog.text.count("steps=20 is cut to 6") == 1


def test_fit_config_takes_numpy_values_as_python_ones_and_refuses_what_is_not_a_number():
    config = FitConfig(fit_bank=np.True_, freeze_batchnorm=np.False_, epochs=np.int64(3), val_fraction=np.float32(0.25))
    assert config.fit_bank is True and config.freeze_batchnorm is False and config.epochs == 3
    json.dumps(asdict(config))  # what a checkpoint's state.json holds
    for name, value, message in (("val_fraction", None, r"val_fraction must be in \[0, 1\), got None"),
                                 ("val_fraction", False, r"val_fraction must be in \[0, 1\), got False"),
                                 ("tau_min", "0.5", r"tau_min must be in \(0, 1\], got '0.5'"),
                                 ("tau_start", None, r"tau_start must be in \(0, 1\], got None"),
                                 ("substitution_start", [1], r"substitution_start must be in \[0, 1\], got \[1\]")):
        with pytest.raises(InvalidInputError, match=message):
            FitConfig(**{name: value})


def test_keeping_the_bank_of_a_model_without_one_is_refused_before_a_checkpoint_is_written(mnist_images, tmp_path):
    model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
    with pytest.raises(InvalidInputError, match="fit_bank=False needs a model whose part bank is already fitted"):
        model.fit(mnist_images[:20], fit_bank=False, output_dir=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())
    # Images refused while they are read (a streamed dataset's item that is not finite) leave no folder either
    class Streamed(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 30

        def __getitem__(self, i: int) -> torch.Tensor:
            return mnist_images[i] * (math.nan if i == 20 else 1.0)

    with pytest.raises(InvalidInputError, match="must be finite"):
        NPDraw.from_pretrained("mnist").fit(Streamed(), output_dir=tmp_path / "new" / "run", progress=False)
    assert not any(tmp_path.iterdir())
    # The first checkpoint that code before this check wrote for such a run is refused too when resumed
    config = FitConfig(fit_bank=False, epochs=1, prior_epochs=1)
    training._Run(model, TensorImages(mnist_images[:20]), config, tmp_path / "checkpoints", False, None)._save()
    with pytest.raises(InvalidInputError, match="fit_bank=False needs a model whose part bank is already fitted"):
        model.fit(mnist_images[:20], config, output_dir=tmp_path, resume=True, progress=False)


def test_fine_tuning_works_from_ten_images_and_keeps_bank_and_prior(mnist_images):
    torch.manual_seed(0)
    model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
    model.fit(mnist_images[:60], FitConfig(prior_epochs=1, epochs=1, batch_size=20), progress=False)
    bank, prior = model.bank.parts.clone(), {k: v.clone() for k, v in model.prior.state_dict().items()}
    history = model.fit(mnist_images[60:70], fit_bank=False, fit_prior=False, epochs=2, batch_size=4, progress=False)
    assert len(history.val_bound) == 2 and not history.prior_val
    assert torch.equal(model.bank.parts, bank)
    assert all(torch.equal(v, prior[k]) for k, v in model.prior.state_dict().items())


def test_validation_bound_measures_in_eval_mode_and_leaves_the_model_as_it_was(mnist_images):
    # Called on a model in training mode it normalised by each batch and moved BatchNorm's running statistics
    from np_draw.training import validation_bound

    torch.manual_seed(0)
    model = NPDraw(tiny_config("mnist"))
    model.fit(mnist_images[:40], FitConfig(prior_epochs=1, epochs=1), progress=False)
    images = mnist_images[40:60]
    parses = model.parse(images)
    expected = validation_bound(model.eval(), images, parses)
    model.train()
    statistics = {key: value.clone() for key, value in model.state_dict().items() if "running" in key}
    assert statistics
    assert validation_bound(model, images, parses) == expected
    assert model.training and all(module.training for module in model.modules())
    assert all(torch.equal(value, model.state_dict()[key]) for key, value in statistics.items())


def test_a_checkpoint_written_before_every_process_s_generators_were_kept_resumes_and_says_so(mnist_images, tmp_path,
                                                                                               caplog):
    # Such a checkpoint holds process 0's generator as "torch": it resumes, on a seeded stream, and the warning names
    # what wrote it (it said "written by 1 processes on cpu", as if the run had been another's)
    from safetensors.torch import load_file, save_file

    def run(epochs: int) -> None:
        torch.manual_seed(0)
        model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
        config = FitConfig(prior_epochs=1, prior_batch_size=16, epochs=epochs, batch_size=8, seed=3, checkpoint_every=0)
        model.fit(mnist_images[:32], config, output_dir=tmp_path, resume=True, progress=False)

    run(1)
    checkpoints = tmp_path / "checkpoints"
    latest = checkpoints / json.loads((checkpoints / "latest.json").read_text())["latest"]
    rng = load_file(latest / "rng.safetensors")
    save_file({"torch": rng.pop("process0"), **rng}, latest / "rng.safetensors")
    state = json.loads((latest / "state.json").read_text())
    del state["processes"], state["device"]
    (latest / "state.json").write_text(json.dumps(state))
    with caplog.at_level(logging.WARNING, logger="np_draw"):
        run(2)
    assert "holds no generator state for it (written by an earlier version of np-draw)" in caplog.text


def test_two_gloo_processes_resume_each_with_its_own_random_stream(tmp_path):
    # Only process 0's generator was kept, and every process took it on resume: the others' Gumbel noise and
    # binarisations then repeated process 0's, and an extended run ended with other weights than a straight one
    import json
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import load_file

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(PYTHONPATH=str(root), TMPDIR=str(tmp_path))
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    "tests/ddp_resume.py", str(tmp_path)], cwd=root, check=True, env=env, timeout=300)
    straight = load_file(tmp_path / "straight-model" / "model.safetensors")
    extended = load_file(tmp_path / "extended-model" / "model.safetensors")
    assert straight.keys() == extended.keys()
    assert all(torch.equal(straight[key], extended[key]) for key in straight), "the resumed run drew other noise"
    assert "fit under torchrun with 2 processes needs at least 2 training images, got 1" in json.loads(
        (tmp_path / "refused.json").read_text())


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import load_file

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(root)
    env["TMPDIR"] = str(tmp_path)  # torchrun's own torchelastic_* folders, which it leaves behind
    subprocess.run([sys.executable, "tests/ddp_fit.py", str(tmp_path / "one")], cwd=root, check=True, env=env,
                   timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    "tests/ddp_fit.py", str(tmp_path / "two")], cwd=root, check=True, env=env, timeout=300)
    one = load_file(tmp_path / "one" / "model.safetensors")
    two = load_file(tmp_path / "two" / "model.safetensors")
    assert torch.equal(one["bank.parts"], two["bank.parts"])
    prior_keys = [k for k in one if k.startswith("prior.")]
    torch.manual_seed(0)
    initial = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=2, dropout=0.0))).state_dict()
    assert all(not torch.equal(one[k], initial[k]) for k in prior_keys if k.endswith("weight"))  # it trained
    for key in prior_keys:
        a, b = one[key], two[key]
        if key.endswith("attn.qkv.bias"):
            # The key bias has an exact gradient of zero (softmax ignores a shift shared by all keys); Adam
            # rescales the rounding noise left in it into steps of size lr, so it alone may differ.
            a, b = torch.cat([a[:64], a[128:]]), torch.cat([b[:64], b[128:]])
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), key


def test_the_parse_canvas_term_is_the_decoders_loss_on_the_parse_and_trains_the_decoder_only(mnist_images):
    torch.manual_seed(0)
    model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
    model.fit(mnist_images[:100], FitConfig(prior_epochs=1, epochs=1, batch_size=50), progress=False)
    x = torch.bernoulli(mnist_images[100:108], generator=torch.Generator().manual_seed(0))
    parse = model.parse(x)
    terms, gradients = {}, {}
    for decode_parse in (False, True):
        model.zero_grad()
        torch.manual_seed(1)
        terms[decode_parse] = model.objective(x, parse, tau=0.5, decode_parse=decode_parse)
        terms[decode_parse].reconstruction.sum().backward(retain_graph=True)
        gradients[decode_parse] = [p.grad.clone() for p in model.encoder.parameters()]
    assert terms[False].parse_reconstruction is None
    # The sample's terms, and the encoder's gradient through its reconstruction, are those without the parse term.
    for name in ("reconstruction", "kl", "parse_ce"):
        torch.testing.assert_close(getattr(terms[True], name), getattr(terms[False], name))
    assert all(torch.equal(a, b) for a, b in zip(gradients[True], gradients[False], strict=True))
    assert any(g.abs().sum() > 0 for g in gradients[True])
    with torch.no_grad():
        expected = -model.likelihood.log_prob(model.decoder(model.render(parse.ids, parse.locs, parse.present)), x)
    torch.testing.assert_close(terms[True].parse_reconstruction, expected)
    model.zero_grad()
    terms[True].parse_reconstruction.sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in [*model.encoder.parameters(), *model.prior.parameters()])
    assert all(p.grad is not None and p.grad.any() for p in model.decoder.parameters() if p.dim() > 1)
    assert not model.bank.parts.requires_grad


def test_fine_tuning_with_the_parse_canvas_term_teaches_the_decoder_the_parses(mnist_images):
    import copy

    omniglot = torch.from_numpy(np.load(FIXTURES / "omniglot_100.npz", allow_pickle=False)["images"])[:, None]
    train, test = omniglot[:80], torch.bernoulli(omniglot[80:].float() / 255, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = NPDraw(tiny_config("mnist", prior=PriorConfig(num_layers=1)))
    model.fit(mnist_images[:200], FitConfig(prior_epochs=1, epochs=2, batch_size=50, encoder_lr=3e-3,
                                            decoder_lr=3e-3), progress=False)

    def parse_loss(m: NPDraw) -> float:  # the decoder's loss on held-out drawings' parse canvases
        with torch.no_grad():
            return -m.likelihood.log_prob(m.decoder(m.parse(test).canvas), test).mean().item()

    losses = {}
    for weight in (0.0, 1.0):
        tuned = copy.deepcopy(model)
        tuned.fit(train, prior_steps=10, steps=40, eval_every=20, patience=None, full_rate_images=None,
                  decoder_lr=3e-3, parse_canvas_weight=weight, progress=False)
        losses[weight] = parse_loss(tuned)
    assert FitConfig.finetune().parse_canvas_weight == 1.0 and FitConfig().parse_canvas_weight == 0.0
    assert losses[1.0] < 0.97 * losses[0.0], losses
    with pytest.raises(ValueError, match="parse_canvas_weight"):
        FitConfig(parse_canvas_weight=-1.0)


def test_keeping_freed_memory_lets_large_tensors_reuse_freed_pages_and_gives_them_back_after():
    """With glibc's defaults every 64 MiB tensor is fresh memory, a page fault per 4 KiB at its first write; inside
    keeping_freed_memory() (where fit trains on the CPU) freed blocks are reused, and after it the memory they kept
    is given back to the system. Process-wide, so in a child."""
    code = textwrap.dedent("""
        import os, platform, resource, torch
        from np_draw.memory import keeping_freed_memory
        def faults(count):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(count):
                torch.ones(16 * 2**20)
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        def resident_mib():
            return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        default = faults(8)
        with keeping_freed_memory() as kept:
            faults(3)  # the first blocks under the new setting come from the system
            inside = faults(8)
            kept_mib = resident_mib()  # the freed 64 MiB blocks, still held
        print(platform.libc_ver()[0], default, kept, inside, kept_mib - resident_mib())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    libc, default, kept, inside, given_back = out[0], int(out[1]), out[2] == "True", int(out[3]), float(out[4])
    if libc == "glibc":
        # 8 fresh blocks of 16,384 pages by default; inside at most one more (where the heap's free blocks lie
        # depends on what else the interpreter allocated); after it, at least one block's 64 MiB given back
        assert kept and default > 8 * 16_000 and inside <= default / 4 and given_back > 60, (default, inside, given_back)
    else:
        assert not kept  # other C libraries are left as they are


def test_a_new_run_refused_for_too_few_patches_leaves_no_folder_behind(tmp_path):
    # The bank is fitted after the run's first checkpoint is written: the refusal left that checkpoint (8 MB of an
    # untrained model, nothing to resume) in a folder the call had made
    model = NPDraw(tiny_config("mnist"))
    with pytest.raises(InvalidInputError, match="fewer than num_parts"):
        model.fit(torch.zeros(2, 1, 28, 28), FitConfig(), output_dir=tmp_path / "run" / "out", progress=False)
    assert list(tmp_path.iterdir()) == []
