"""The bundled models draw the same samples for the same seed as they did before sampling was made faster: the
latents exactly, the images to float rounding (tests/fixtures/sample_pins.json was written by the code before)."""

from __future__ import annotations

import json

import pytest
import torch

from np_draw import NPDraw
from tests.conftest import FIXTURES

PINS = json.loads((FIXTURES / "sample_pins.json").read_text())["models"]


@pytest.mark.parametrize("name", sorted(PINS))
@pytest.mark.parametrize("batch_size", [8, 3])
def test_the_same_seed_draws_the_pinned_samples(name, batch_size):
    out = NPDraw.from_pretrained(name).sample(8, torch.Generator().manual_seed(0), batch_size=batch_size,
                                              progress=False)
    pin = PINS[name]
    assert out.latents.ids.tolist() == pin["ids"]
    assert out.latents.locs.tolist() == pin["locs"]
    assert out.latents.present.int().tolist() == pin["present"]
    sums = out.images.double().sum((1, 2, 3))
    torch.testing.assert_close(sums, torch.tensor(pin["image_sums"], dtype=torch.float64), rtol=1e-5, atol=1e-3)


def test_a_batch_split_over_threads_draws_the_same_drawings_as_one_thread():
    model = NPDraw.from_pretrained("mnist")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = model.sample(300, torch.Generator().manual_seed(3), progress=False, sample_pixels=True, batch_size=300)
        completed = model.complete(one.latents, 10, torch.Generator().manual_seed(4))
        torch.set_num_threads(3)  # two pieces of 150 images (pieces have at least 128), each on its own thread
        split = model.sample(300, torch.Generator().manual_seed(3), progress=False, sample_pixels=True,
                             batch_size=300)
        completed_split = model.complete(one.latents, 10, torch.Generator().manual_seed(4))
        assert torch.get_num_threads() == 3  # the caller's setting is given back
    finally:
        torch.set_num_threads(threads)
    for a, b in ((one, split), (completed, completed_split)):
        # The decoder's convolutions may round differently for another batch size, as for any batch_size.
        torch.testing.assert_close(a.images, b.images, rtol=0, atol=1e-6)
        for name in ("ids", "locs", "present", "canvas"):
            assert torch.equal(getattr(a.latents, name), getattr(b.latents, name)), name
    assert torch.equal(completed.latents.ids[:, :10], one.latents.ids[:, :10])
