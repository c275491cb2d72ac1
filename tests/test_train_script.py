"""scripts/train_pretrained.py's likelihood change: a discretised logistic's decoder grown into a mixture of
logistics coupled over RGB, which must start as the same likelihood and learn the channels' coupling."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from tests.conftest import random_model

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
