import pytest
import torch
import torch.nn.functional as F

from np_draw import Grid, Latents, NPDraw, PartBank, Prior, PriorConfig
from np_draw import prior as prior_module
from np_draw.errors import InvalidInputError, InvalidTypeError
from np_draw.prior import Block, CausalSelfAttention, KVCache, dropout

GRID = Grid(canvas_size=28, part_size=5, stride=5, padding=1)


def make_prior(seed: int = 0) -> tuple[Prior, PartBank]:
    torch.manual_seed(seed)
    prior = Prior(PriorConfig(), GRID, channels=1, num_parts=50).eval()
    bank = PartBank(50, 1, 5)
    bank.parts.uniform_()
    return prior, bank


def whole_history(grid: Grid, parts: torch.Tensor, locations: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """The prior's input as whole canvases, (N, T, C + 1, S, S), for parts (N, T, C, K, K) at one-hot locations: the
    canvas and footprint after the steps before each, the running maximum of each step's placed part and box."""
    drawn = torch.cat([grid.place(parts * present[:, :, None, None, None], locations), grid.box(locations, present)], 2)
    return torch.cat([torch.zeros_like(drawn[:, :1]), torch.cummax(drawn[:, :-1], 1).values], 1)


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


@pytest.mark.parametrize(("grid", "channels", "batch"),
                         [(GRID, 1, 1), (GRID, 1, 5), (Grid(32, 4, 4, 0), 3, 1), (Grid(32, 4, 4, 0), 3, 3)])
def test_cached_sampling_embeds_each_canvas_as_convolving_all_its_tiles(monkeypatch, grid, channels, batch):
    """Sampling keeps its tiles' features and convolves again only the tiles a step drew on (4 tiles per step on
    the 28 px grid, 1 on the 32 px one: 3 or 20 rows, padded to 16), or for one drawing all its tiles: the features
    of every step's canvas are exactly those of all its tiles convolved at once, as the embedding computes them for
    a whole canvas. Exact with float32 on MKL's default kernels (prior._FEWEST_ROWS), which CI runs; with
    MKL_CBWR=COMPATIBLE rows round by the product's size."""
    torch.manual_seed(0)
    prior = Prior(PriorConfig(), grid, channels=channels, num_parts=50).eval()
    bank = PartBank(50, channels, grid.part_size)
    bank.parts.uniform_()
    seen = []
    embed_step = prior_module._embed_step
    monkeypatch.setattr(prior_module, "_embed_step", lambda features, *rest: seen.append(features.clone())
                        or embed_step(features, *rest))
    u = torch.rand(batch, grid.num_cells, 50 + grid.num_cells + 1, generator=torch.Generator().manual_seed(2))
    drawn = prior.sample(bank, u)
    assert len(seen) == grid.num_cells and 0 < drawn.present.mean() < 1
    footprinted = torch.cat([bank.parts, torch.ones_like(bank.parts[:, :1])], 1)
    parts = footprinted[drawn.ids] * drawn.present[..., None, None, None]
    history = grid.history(parts, F.one_hot(drawn.locs, grid.num_cells).float(), prior.embed.patch)
    weights = prior.embed._step_weights()
    cells = prior.embed.cells
    for t, features in enumerate(seen):
        whole = prior_module._tile_features(history[:, t].flatten(0, 1), weights).view(batch, cells + 1, -1)
        assert torch.equal(features.view(batch, cells + 1, -1)[:, :cells], whole[:, :cells]), t


def test_a_prefix_of_any_integer_dtype_is_drawn_as_int64_indices():
    """Prefix ids and locs in a narrow integer dtype draw what the same int64 values draw: with 36 drawings on 36
    cells, uint8 locations used as they are would index the cells as a mask."""
    prior, bank = make_prior()
    u = noise(36, seed=3)
    drawn = prior.sample(bank, u)
    given = Latents(drawn.ids[:, :10], drawn.locs[:, :10], drawn.present[:, :10])
    narrow = Latents(given.ids.to(torch.int16), given.locs.to(torch.uint8), given.present)
    assert torch.equal(prior.sample(bank, u, prefix=narrow).ids, prior.sample(bank, u, prefix=given).ids)
    assert torch.equal(prior.sample(bank, u, prefix=narrow).canvas, drawn.canvas)


@pytest.mark.parametrize("temperature", [1e-4, 1e-39, 1e-300])
def test_teacher_forcing_reproduces_the_logits_seen_while_sampling(temperature):
    """The sampled latents, fed back by teacher forcing, give the probabilities they were drawn with: sampling
    with temperature -> 0 follows the argmax of the teacher-forced logits at every step, however small the
    temperature (below 1e-38 the logits divided by it overflowed float32, and the first inf won the argmax; below
    1e-45 it rounded to 0, and NaN logits drew nothing)."""
    prior, bank = make_prior()
    drawn = prior.sample(bank, noise(16, seed=2), temperature=temperature)
    locations = F.one_hot(drawn.locs, 36).float()
    logits = prior(whole_history(GRID, bank.lookup(drawn.ids), locations, drawn.present))
    assert torch.equal(logits.ids.argmax(-1), drawn.ids)
    assert torch.equal(logits.locs.argmax(-1), drawn.locs)
    assert torch.equal((logits.present > 0).float(), drawn.present)


def test_the_prior_is_causal():
    prior, bank = make_prior()
    drawn = prior.sample(bank, noise(4, seed=3))
    canvases = whole_history(GRID, bank.lookup(drawn.ids), F.one_hot(drawn.locs, 36).float(), drawn.present)
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


def test_log_prob_takes_latents_of_any_integer_dtype():
    # Latents.check and render take any integer dtype; log_prob indexed with the locs as given, which uint8 made a
    # mask and int8 or int16 an IndexError
    prior, bank = make_prior()
    drawn = prior.sample(bank, noise(4, seed=2))
    expected = prior.log_prob(drawn, bank)
    for dtype in (torch.int32, torch.int16, torch.uint8):
        cast = Latents(drawn.ids.to(dtype), drawn.locs.to(dtype), drawn.present)
        assert torch.equal(prior.log_prob(cast, bank), expected), dtype


def test_log_prob_draws_the_same_canvases_as_the_history_of_whole_canvases():
    """log_prob draws its teacher-forced canvases a step at a time in the embedding's tiles; they must equal
    history()'s whole canvases cut into tiles, on a grid that reaches past the canvas and on a colour grid whose
    cells are the tiles, and give the same log-probabilities up to float rounding."""
    colour = Grid(canvas_size=32, part_size=4, stride=4, padding=0)
    for grid, channels, num_parts in ((GRID, 1, 50), (colour, 3, 20)):
        torch.manual_seed(0)
        prior = Prior(PriorConfig(), grid, channels=channels, num_parts=num_parts).eval()
        bank = PartBank(num_parts, channels, grid.part_size)
        bank.parts.uniform_()
        u = torch.rand(6, grid.num_cells, num_parts + grid.num_cells + 1, generator=torch.Generator().manual_seed(5))
        drawn = prior.sample(bank, u)
        whole = whole_history(grid, bank.lookup(drawn.ids), F.one_hot(drawn.locs, grid.num_cells).float(), drawn.present)
        tiles, new, replaced, _, touched = prior._drawn_tiles(drawn, bank)
        cells = touched[drawn.locs]
        # Replaying the steps' tiles gives every canvas before each step, tile for tile.
        rows = torch.zeros(6, prior.embed.cells + 1, dtype=torch.long)
        for t in range(grid.num_cells):
            assert torch.equal(tiles[rows[:, :-1]], prior.embed.tiles(whole)[:, t])
            assert torch.equal(replaced[:, t], rows.gather(1, cells[:, t]))
            rows.scatter_(1, cells[:, t], new[:, t])
        # The tiles each step drew on, not T whole canvases: a 5 px part falls in at most 2 x 2 of the 4 px tiles,
        # a 4 px part on the colour grid in one.
        drawn_on = 4 if grid is GRID else 1
        assert len(tiles) == 1 + 6 * grid.num_cells * drawn_on
        with torch.no_grad():
            torch.testing.assert_close(prior.log_prob(drawn, bank), prior(whole).log_prob(drawn))
        # Step by step, the embedding is that of the canvases, and so are its weights' gradients; also when every
        # step draws at one place (the grouping by cell at its largest).
        prior.train()
        for locs in (drawn.locs, torch.full_like(drawn.locs, 7)):
            latents = Latents(drawn.ids, locs, drawn.present)
            stepwise = prior.embed.stepwise(*prior._drawn_tiles(latents, bank))
            grads = torch.autograd.grad(stepwise.square().sum(), list(prior.embed.parameters()))
            placed = whole_history(grid, bank.lookup(latents.ids), F.one_hot(locs, grid.num_cells).float(),
                                   latents.present)
            of_canvases = prior.embed(prior.embed.tiles(placed))
            torch.testing.assert_close(stepwise, of_canvases)
            for grad, expected in zip(grads, torch.autograd.grad(of_canvases.square().sum(),
                                                                 list(prior.embed.parameters()))):
                # (the changes of each step summed, where the projection summed every canvas: float rounding)
                torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())


def test_prior_sample_refuses_what_it_cannot_draw_from():
    """Prior.sample (exported) checks its temperature as NPDraw.sample and StepLogits.sample do (0 drew meaningless
    argmaxes, -1 the unlikely end, NaN nothing) and its noise: a shorter T was an IndexError, a longer one was
    silently cut, a wrong last axis a broadcasting error, and values outside [0, 1] drew latents of no
    distribution."""
    prior, bank = make_prior()
    u = noise(2, seed=0)
    for bad in (0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(InvalidInputError, match="temperature must be a positive finite number"):
            prior.sample(bank, u, temperature=bad)
    with pytest.raises(InvalidTypeError, match="use_cache must be True or False"):
        prior.sample(bank, u, use_cache="no")
    for bad in (u[:, :-1], torch.rand(2, 37, 87), u[:, :, 1:], torch.rand(2, 36, 88), u[0], (u * 10).long()):
        with pytest.raises(InvalidInputError, match=r"noise must be floating uniform draws of shape \(N, T, B \+ L"):
            prior.sample(bank, bad)
    for bad in (u + 1, u - 1, torch.full_like(u, float("nan"))):
        with pytest.raises(InvalidInputError, match=r"uniform draws in \[0, 1\]"):
            prior.sample(bank, bad)
    with pytest.raises(InvalidTypeError, match="noise must be a torch tensor"):
        prior.sample(bank, u.tolist())
    with pytest.raises(InvalidInputError, match="noise must be on the prior's device cpu"):
        prior.sample(bank, u.to("meta"))
    assert prior.sample(bank, u.double(), temperature=0.5) == prior.sample(bank, u, temperature=0.5)


def test_an_empty_batch_samples_to_empty_latents():
    prior, bank = make_prior()
    for use_cache in (True, False):
        out = prior.sample(bank, noise(0, seed=0), use_cache=use_cache)
        assert out.ids.shape == (0, 36) and out.canvas.shape == (0, 1, 28, 28)
        assert prior.log_prob(out, bank).shape == (0,)



def test_dropout_zeroes_a_share_p_and_scales_the_rest():
    torch.manual_seed(0)
    x = torch.rand(200_000) + 0.5
    y = dropout(x, 0.25)
    zero = y == 0
    assert abs(zero.float().mean().item() - 0.25) < 0.01
    torch.testing.assert_close(y[~zero], x[~zero] / 0.75)
    assert torch.equal(dropout(x, 0.0), x)
    # p is rounded to a multiple of 2^-16 and the scale is the rounded p's, so the mean is kept exactly; any size
    # (four values per draw) and x's dtype.
    ones = torch.ones(1_000_003, dtype=torch.float64)
    y = dropout(ones, 0.1)
    kept = y != 0
    assert y.dtype == torch.float64 and abs(1 - kept.double().mean().item() - 0.1) < 0.002
    scale = torch.tensor(2**16 / (2**16 - round(0.1 * 2**16)), dtype=torch.float32).item()
    assert torch.equal(y[kept], torch.full_like(y[kept], scale))
    half = dropout(torch.ones(7, 3, dtype=torch.bfloat16), 0.5)
    assert half.dtype == torch.bfloat16 and set(half.unique().tolist()) <= {0.0, 2.0}
    torch.manual_seed(1)
    first = dropout(x, 0.25)
    torch.manual_seed(1)
    assert torch.equal(dropout(x, 0.25), first)  # the masks come from torch's generator


def test_training_attention_with_dropout_is_causal_and_unbiased():
    """The attention written out for dropout on the CPU: averaged over many dropout masks it gives the eval-mode
    (scaled_dot_product_attention) output, and no token is moved by tokens after it."""
    torch.manual_seed(0)
    attention = CausalSelfAttention(PriorConfig(hidden_size=16, num_heads=2, dropout=0.3))
    x = torch.randn(2, 5, 16)
    expected = attention.eval()(x)
    attention.train()
    with torch.no_grad():
        mean = torch.stack([attention(x) for _ in range(4000)]).mean(0)
        torch.testing.assert_close(mean, expected, atol=0.03, rtol=0)
        changed = x.clone()
        changed[:, 3:] += 1
        torch.manual_seed(1)
        before = attention(x)
        torch.manual_seed(1)
        after = attention(changed)
    torch.testing.assert_close(before[:, :3], after[:, :3])
    assert not torch.allclose(before[:, 3:], after[:, 3:])


def test_a_bfloat16_prior_trains_in_bfloat16():
    """Training-mode dropout keeps the activations' dtype (a float mask would turn them float32 and fail at the next
    bfloat16 layer), and keeps about 1 - p of them."""
    x = torch.ones(100_000, dtype=torch.bfloat16)
    kept = dropout(x, 0.1)
    assert kept.dtype == torch.bfloat16 and abs((kept != 0).float().mean().item() - 0.9) < 0.005
    prior, bank = make_prior()
    drawn = prior.sample(bank, noise(4, seed=6))
    prior, bank = prior.to(torch.bfloat16).train(), bank.to(torch.bfloat16)
    log_p = prior.log_prob(drawn, bank)
    log_p.sum().backward()
    assert torch.isfinite(log_p).all() and prior.head.weight.grad.dtype == torch.bfloat16


def test_cached_single_tokens_equal_attention_over_the_whole_sequence():
    """Fed one token at a time, the cache attends as a causal forward over the whole sequence does; it refuses
    several new tokens at once, which would need an offset mask, a step past its length, and gradients."""
    torch.manual_seed(0)
    attention = CausalSelfAttention(PriorConfig()).eval()
    x = torch.randn(5, 6, PriorConfig().hidden_size)
    with torch.no_grad():
        cache = KVCache([attention], 5, 6)
        whole = attention(x)
        pieces = []
        for t in range(6):
            pieces.append(attention(x[:, t], cache))
            cache.length += 1
        with pytest.raises(InvalidInputError, match=r"one token per image, \(N, D\) = \(5, 64\), got \(5, 2, 64\)"):
            attention(x[:, :2], KVCache([attention], 5, 6))
        with pytest.raises(InvalidInputError, match="the cache is full: it holds 6 steps"):
            attention(x[:, 0], cache)
    with pytest.raises(InvalidInputError, match=r"for sampling: build and use it under torch.no_grad\(\)"):
        KVCache([attention], 5, 6)
    torch.testing.assert_close(torch.stack(pieces, 1), whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch, ff_size", [(5, 128), (3, 33), (1, 7)])
def test_a_cached_block_equals_the_block_over_the_whole_sequence(batch, ff_size):
    """Block's cached path (the function sampling runs, with the MLP's hidden layer in a transposed buffer of odd
    sizes too) gives the uncached block's outputs token by token, and keeps the residual stream in float32 under
    bfloat16 autocast."""
    torch.manual_seed(0)
    config = PriorConfig(ff_size=ff_size)
    block = Block(config).eval()
    x = torch.randn(batch, 4, config.hidden_size)
    with torch.no_grad():
        cache = KVCache([block.attn], batch, 4)
        pieces = []
        for t in range(4):
            pieces.append(block(x[:, t], cache))
            cache.length += 1
        torch.testing.assert_close(torch.stack(pieces, 1), block(x), rtol=1e-5, atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert block(x[:, 0], KVCache([block.attn], batch, 4)).dtype == torch.float32


def test_the_sampler_s_building_blocks_refuse_what_they_cannot_take():
    """complete refuses more kept steps than the latents hold (they were kept silently), StepLogits.draw refuses
    untransformed noise with a message naming gumbel, and Grid.draw refuses a non-contiguous canvas (the copy
    flatten made was drawn on, and the caller's canvas stayed blank)."""
    model = NPDraw.from_pretrained("mnist")
    latents = model.sample(2, torch.Generator().manual_seed(0), progress=False).latents
    short = Latents(latents.ids[:, :4], latents.locs[:, :4], latents.present[:, :4])
    with pytest.raises(InvalidInputError, match="at most the latents' 4 steps, got 6"):
        model.complete(short, 6)
    assert model.complete(short, 4, torch.Generator().manual_seed(1)).latents.ids.shape == (2, 36)
    logits = model.encoder(torch.rand(2, 1, 28, 28))
    with pytest.raises(InvalidTypeError, match="gumbel"):
        logits.draw(torch.rand(2, 36, 87))
    grid = model.grid
    tiled = grid.new_tiled(2, 2, 4, torch.zeros(0)).transpose(1, 2).contiguous().transpose(1, 2)
    parts = torch.ones(2, 2, grid.part_size, grid.part_size)
    with pytest.raises(InvalidInputError, match="contiguous"):
        grid.draw(tiled, parts, torch.tensor([0, 5]), grid.tile_index(2, 4))
