"""scripts/train_pretrained.py's likelihood change: a discretised logistic's decoder grown into a mixture of
logistics coupled over RGB, which must start as the same likelihood and learn the channels' coupling."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from np_draw.errors import InvalidInputError
from tests.conftest import FIXTURES, random_model

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "train_pretrained.py"
spec = importlib.util.spec_from_file_location("train_pretrained", SCRIPT)
train_pretrained = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_pretrained)


def correlated_faces(count: int, seed: int) -> torch.Tensor:
    """(count, 3, 64, 64) in [0, 1] whose channels share most of their variation, as faces' do."""
    g = torch.Generator().manual_seed(seed)
    grey = torch.rand(count, 1, 8, 8, generator=g).repeat_interleave(8, 2).repeat_interleave(8, 3)
    return (0.8 * grey + 0.2 * torch.rand(count, 3, 64, 64, generator=g)).clamp(0, 1)


def reconstruction_term(model, images: torch.Tensor) -> torch.Tensor:
    """-log p(x | canvas of the encoder's most likely latents), nats per image: (N,)."""
    canvas = model.encode(images).canvas
    with torch.no_grad():
        return -model.likelihood.log_prob(model.decoder(canvas), images)


def test_mixture_head_starts_as_the_logistic_and_keeps_every_other_weight():
    model = random_model("celeba")
    images = correlated_faces(6, seed=0)
    before = reconstruction_term(model, images)
    one = train_pretrained.with_mixture_head(model, 1).eval()
    assert one.config.likelihood == "logistic_mixture" and one.config.num_mixtures == 1
    torch.testing.assert_close(reconstruction_term(one, images), before, rtol=1e-5, atol=1e-2)
    # Several components start apart by about a grey level: nearly the same likelihood, no longer one function.
    five = train_pretrained.with_mixture_head(model, 5).eval()
    after = reconstruction_term(five, images)
    assert (after - before).abs().max() < 1e-3 * before.abs().max()
    assert not torch.equal(after, before)
    kept = {key: value for key, value in model.state_dict().items() if not key.startswith("decoder.out.")}
    for key, value in kept.items():
        assert torch.equal(five.state_dict()[key], value), key


def test_fit_head_learns_the_coupling_on_held_out_images():
    train, held_out = correlated_faces(64, seed=1), correlated_faces(16, seed=2)
    logistic = random_model("celeba")
    before = reconstruction_term(logistic, held_out).mean()
    train_pretrained.fit_head(logistic, train, held_out, steps=100, lr=2e-2, batch_size=16)
    trained = reconstruction_term(logistic, held_out).mean()
    assert trained < before
    mixture = train_pretrained.with_mixture_head(logistic, 2)
    body = {key: value.clone() for key, value in mixture.state_dict().items() if not key.startswith("decoder.out.")}
    terms = {}
    for name, model in (("logistic", logistic), ("mixture", mixture)):
        torch.manual_seed(0)
        train_pretrained.fit_head(model, train, held_out, steps=100, lr=2e-2, batch_size=16)
        terms[name] = reconstruction_term(model, held_out).mean()
    # The logistic's head had converged; channels that share their variation cost less once the mixture couples
    # them (about 14 % here).
    assert terms["mixture"] < 0.95 * terms["logistic"]
    assert terms["logistic"] > 0.99 * trained
    assert mixture.decoder.out.bias[2 + 2 * 3 * 2:].abs().max() > 0.05  # the coupling moved off zero
    for key, value in body.items():
        assert torch.equal(mixture.state_dict()[key], value), key


def test_a_prior_budget_of_zero_epochs_is_kept_and_a_zero_rate_refused(tmp_path, monkeypatch):
    """--prior-epochs 0 trained the prior 2 epochs, and --prior-lr 0 ran at the default rate, without a word."""
    data = tmp_path / "data" / "mnist"
    data.mkdir(parents=True)
    digits = np.load(FIXTURES / "mnist_300.npz", allow_pickle=False)["images"].reshape(-1, 28, 28)  # (N, 28, 28)
    for split, images in (("train", digits[:40]), ("test", digits[40:50])):
        np.savez(data / f"{split}.npz", images=images, labels=np.zeros(len(images), dtype=np.int64))
    monkeypatch.setattr(train_pretrained.WallClock, "_keep", lambda self: None)  # no thread left writing tmp_path
    argv = ["train_pretrained.py", "--name", "mnist", "--data", str(data.parent), "--channels", "8", "--epochs", "0"]
    out = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(out), "--prior-epochs", "0"])
    train_pretrained.main()
    record = json.loads((out / "training.json").read_text())
    assert record["fit_config"]["prior_epochs"] == 0 and record["prior_val"] == []
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(tmp_path / "refused"), "--prior-lr", "0"])
    with pytest.raises(InvalidInputError, match="prior_lr must be a positive finite number, got 0.0"):
        train_pretrained.main()
