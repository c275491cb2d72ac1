import torch
import torch.nn.functional as F

from np_draw import Grid, PartBank, Prior, PriorConfig

GRID = Grid(canvas_size=28, part_size=5, stride=5, padding=1)


def make_prior(seed: int = 0) -> tuple[Prior, PartBank]:
    torch.manual_seed(seed)
    prior = Prior(PriorConfig(), GRID, channels=1, num_parts=50).eval()
    bank = PartBank(50, 1, 5)
    bank.parts.uniform_()
    return prior, bank


def noise(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 36, 50 + 36 + 1, generator=torch.Generator().manual_seed(seed))


def test_cached_sampling_equals_prefix_recomputation():
    prior, bank = make_prior()
    u = noise(64, seed=1)
    cached = prior.sample(bank, u, use_cache=True)
    full = prior.sample(bank, u, use_cache=False)
    assert torch.equal(cached.ids, full.ids)
    assert torch.equal(cached.locs, full.locs)
    assert torch.equal(cached.present, full.present)
    assert torch.equal(cached.canvas, full.canvas)
    assert 0 < cached.present.mean() < 1  # something was drawn, and not everything


def test_teacher_forcing_reproduces_the_logits_seen_while_sampling():
    """The sampled latents, fed back by teacher forcing, give the probabilities they were drawn with: sampling
    with temperature -> 0 follows the argmax of the teacher-forced logits at every step."""
    prior, bank = make_prior()
    drawn = prior.sample(bank, noise(16, seed=2), temperature=1e-4)
    locations = F.one_hot(drawn.locs, 36).float()
    logits = prior(prior.history(bank.lookup(drawn.ids), locations, drawn.present))
    assert torch.equal(logits.ids.argmax(-1), drawn.ids)
    assert torch.equal(logits.locs.argmax(-1), drawn.locs)
    assert torch.equal((logits.present > 0).float(), drawn.present)


def test_the_prior_is_causal():
    prior, bank = make_prior()
    drawn = prior.sample(bank, noise(4, seed=3))
    canvases = prior.history(bank.lookup(drawn.ids), F.one_hot(drawn.locs, 36).float(), drawn.present)
    before = prior(canvases)
    canvases[:, 20:] = torch.rand_like(canvases[:, 20:])
    after = prior(canvases)
    assert torch.allclose(before.ids[:, :20], after.ids[:, :20], atol=1e-5)
    assert not torch.allclose(before.ids[:, 20:], after.ids[:, 20:], atol=1e-3)


def test_log_prob_is_a_normalised_sum_over_steps():
    prior, bank = make_prior()
    drawn = prior.sample(bank, noise(8, seed=4))
    log_p = prior.log_prob(drawn, bank)
    assert log_p.shape == (8,) and (log_p < 0).all()
    # A single step's three distributions are normalised: summing p(is) over {0, 1} gives 1.
    empty = prior(torch.zeros(1, 1, 2, 28, 28))
    assert torch.allclose(torch.sigmoid(empty.present) + torch.sigmoid(-empty.present), torch.ones(1, 1))
    assert torch.allclose(empty.ids.softmax(-1).sum(-1), torch.ones(1, 1))


def test_an_empty_batch_samples_to_empty_latents():
    prior, bank = make_prior()
    for use_cache in (True, False):
        out = prior.sample(bank, noise(0, seed=0), use_cache=use_cache)
        assert out.ids.shape == (0, 36) and out.canvas.shape == (0, 1, 28, 28)

