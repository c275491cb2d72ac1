import numpy as np
import pytest
import torch
from PIL import Image

from np_draw import Latents, NPDraw
from np_draw.errors import InvalidTypeError
from np_draw.images import make_grid
from np_draw.networks import ConvBlock
from np_draw.training import FitConfig
from tests.conftest import random_model

FAMILIES = ["mnist", "cifar10", "celeba"]


def images_for(model: NPDraw, n: int, seed: int = 0) -> torch.Tensor:
    c, s = model.config.channels, model.config.image_size
    return torch.rand(n, c, s, s, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", FAMILIES)
def test_encode_decode_shapes_and_ranges(name):
    model = random_model(name)
    cfg = model.config
    x = images_for(model, 3)
    latents = model.encode(x)
    t, b = cfg.num_steps, cfg.num_parts
    assert latents.ids.shape == latents.locs.shape == latents.present.shape == (3, t)
    assert latents.logits.ids.shape == (3, t, b) and latents.logits.locs.shape == (3, t, t)
    assert latents.canvas.shape == (3, cfg.channels, cfg.canvas_size, cfg.canvas_size)
    assert 0 <= latents.canvas.min() and latents.canvas.max() <= 1
    assert set(latents.present.unique().tolist()) <= {0.0, 1.0}
    for images in (model.decode(latents), model.decode(latents.canvas), model.reconstruct(x),
                   model.decode(latents, sample_pixels=True, generator=torch.Generator().manual_seed(0))):
        assert images.shape == x.shape
        assert 0 <= images.min() and images.max() <= 1
    # The canvas is the composition of the encoded parts: decoding the latents without it gives the same image.
    bare = Latents(latents.ids, latents.locs, latents.present)
    assert torch.equal(model.decode(bare), model.decode(latents))


@pytest.mark.parametrize("name", FAMILIES)
def test_sample_shapes_ranges_and_seeds(name):
    model = random_model(name)
    out = model.sample(5, generator=torch.Generator().manual_seed(0), batch_size=2, progress=False)
    cfg = model.config
    assert out.images.shape == (5, cfg.channels, cfg.image_size, cfg.image_size)
    assert 0 <= out.images.min() and out.images.max() <= 1
    assert out.latents.canvas.shape == (5, cfg.channels, cfg.canvas_size, cfg.canvas_size)
    again = model.sample(5, generator=torch.Generator().manual_seed(0), batch_size=2, progress=False)
    other = model.sample(5, generator=torch.Generator().manual_seed(1), batch_size=2, progress=False)
    assert torch.equal(out.images, again.images) and not torch.equal(out.images, other.images)


def test_sampling_leaves_every_submodule_in_its_own_mode():
    """A model being fine-tuned with frozen BatchNorm statistics (training mode, BatchNorm in eval) is sampled
    in eval mode and handed back exactly as it was: dropout off while sampling, the frozen layers still frozen."""
    model = random_model("mnist").train()
    frozen = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for module in frozen:
        module.eval()
    before = {name: module.training for name, module in model.named_modules()}
    seeded = model.sample(3, generator=torch.Generator().manual_seed(0), progress=False)
    assert {name: module.training for name, module in model.named_modules()} == before
    assert frozen and not any(m.training for m in frozen) and model.prior.training
    # Sampled in eval mode: the same as the model in eval mode throughout.
    model.eval()
    assert torch.equal(seeded.images, model.sample(3, generator=torch.Generator().manual_seed(0),
                                                   progress=False).images)


def test_encoding_and_decoding_a_model_in_training_mode_leaves_its_batchnorm_statistics_alone():
    """A user monitoring reconstructions inside their own training loop: encode and decode run in eval mode (the
    running statistics are not updated by the images, and the result is the eval-mode one), then hand the model
    back in training mode."""
    model = random_model("mnist")
    images = torch.rand(6, 1, 28, 28)
    expected = model.eval().reconstruct(images)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    assert torch.equal(model.train().reconstruct(images), expected)
    assert model.training and model.encoder.training and model.decoder.training
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())


def test_an_image_sampled_alone_equals_the_same_seed_inside_a_batch_of_64():
    model = random_model("mnist")
    generators = [torch.Generator().manual_seed(100 + i) for i in range(64)]
    batch = model.sample(64, generator=generators, progress=False, sample_pixels=True)
    for i in (0, 31, 63):
        alone = model.sample(1, generator=[torch.Generator().manual_seed(100 + i)], progress=False,
                             sample_pixels=True)
        assert torch.equal(alone.latents.ids[0], batch.latents.ids[i])
        assert torch.equal(alone.latents.present[0], batch.latents.present[i])
        assert torch.allclose(alone.images[0], batch.images[i], atol=1e-6)


def test_sampling_does_not_depend_on_the_batch_size_with_per_image_generators():
    model = random_model("cifar10")
    seeds = range(10)
    a = model.sample(10, [torch.Generator().manual_seed(s) for s in seeds], batch_size=10, progress=False)
    b = model.sample(10, [torch.Generator().manual_seed(s) for s in seeds], batch_size=3, progress=False)
    assert torch.equal(a.latents.ids, b.latents.ids)
    assert torch.allclose(a.images, b.images, atol=1e-6)


@pytest.mark.parametrize("name", FAMILIES)
def test_save_and_load_give_identical_samples(name, tmp_path):
    model = random_model(name)
    model.save_pretrained(tmp_path / "model")
    loaded = NPDraw.from_pretrained(tmp_path / "model")
    assert loaded.config == model.config
    a = model.sample(4, generator=torch.Generator().manual_seed(3), progress=False)
    b = loaded.sample(4, generator=torch.Generator().manual_seed(3), progress=False)
    assert torch.equal(a.images, b.images) and torch.equal(a.latents.ids, b.latents.ids)
    assert torch.equal(loaded.bank.parts, model.bank.parts)


def test_loading_is_strict(tmp_path):
    from safetensors.torch import load_file, save_file

    model = random_model("mnist")
    folder = model.save_pretrained(tmp_path / "model")
    state = load_file(folder / "model.safetensors")
    state["extra.weight"] = torch.zeros(1)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(ValueError, match="unexpected keys \\['extra.weight'\\]"):
        NPDraw.from_pretrained(folder)
    del state["extra.weight"], state["bank.parts"]
    save_file(state, folder / "model.safetensors")
    with pytest.raises(ValueError, match="missing keys \\['bank.parts'\\]"):
        NPDraw.from_pretrained(folder)


def test_the_model_follows_its_dtype():
    model = random_model("mnist").double()
    out = model.sample(2, generator=torch.Generator().manual_seed(0), progress=False)
    assert out.images.dtype == torch.float64 and out.latents.canvas.dtype == torch.float64
    assert model.reconstruct(images_for(model, 2)).dtype == torch.float64


def test_uint8_and_numpy_inputs_are_accepted():
    model = random_model("mnist")
    x = images_for(model, 2)
    as_uint8 = (x * 255).round().to(torch.uint8)
    assert torch.allclose(model.reconstruct(as_uint8), model.reconstruct(as_uint8.float() / 255))
    assert model.encode(as_uint8.numpy()).ids.shape == (2, 36)
    # NumPy's numbers where Python's are asked for: a temperature, a number of steps kept, a training budget.
    seeded = [model.sample(2, torch.Generator().manual_seed(0), temperature=t, progress=False) for t in
              (np.float32(0.5), 0.5)]
    assert torch.equal(seeded[0].images, seeded[1].images)
    assert torch.equal(model.complete(seeded[0].latents, np.int64(5), torch.Generator().manual_seed(1)).latents.ids,
                       model.complete(seeded[0].latents, 5, torch.Generator().manual_seed(1)).latents.ids)
    config = FitConfig(steps=np.int64(2), prior_lr=np.float32(1e-4))
    assert (type(config.steps), type(config.prior_lr)) == (int, float)


def test_outputs_convert_to_pil_and_grids(tmp_path):
    model = random_model("cifar10")
    out = model.sample(6, generator=torch.Generator().manual_seed(0), progress=False)
    pictures = out.to_pil()
    assert len(pictures) == 6 and pictures[0].size == (32, 32) and pictures[0].mode == "RGB"
    assert np.array_equal(np.asarray(pictures[2]), (out.images[2] * 255).round().byte().permute(1, 2, 0).numpy())
    grid = Image.open(out.save_grid(tmp_path / "grid.png", nrow=3))
    assert grid.size == (3 * 34 + 2, 2 * 34 + 2)
    # nrow beyond the count is one row of them, not empty columns (as torchvision's make_grid)
    assert Image.open(out.save_grid(tmp_path / "row.png", nrow=10)).size == (6 * 34 + 2, 34 + 2)
    with pytest.raises(ValueError, match=r"images must be a non-empty \(N, C, H, W\) tensor, got Tensor of shape"):
        make_grid(out.images[0])


@pytest.mark.parametrize("call, message", [
    (lambda m: m.encode(torch.rand(2, 1, 32, 32)), r"images must have shape \(N, 1, 28, 28\).*\(2, 1, 32, 32\)"),
    (lambda m: m.encode(torch.rand(2, 3, 28, 28)), r"images must have shape .*\(2, 3, 28, 28\)"),
    (lambda m: m.encode(torch.full((1, 1, 28, 28), float("nan"))), "images must be finite"),
    (lambda m: m.encode(torch.full((1, 1, 28, 28), 2.0)), r"images must lie in \[0, 1\]"),
    (lambda m: m.encode(torch.zeros(0, 1, 28, 28)), "empty batch"),
    (lambda m: m.sample(-1), "num_images must be a positive integer, got -1"),
    (lambda m: m.sample(0), "num_images must be a positive integer, got 0"),
    (lambda m: m.sample(2, batch_size=0), "batch_size must be a positive integer"),
    (lambda m: m.sample(2, temperature=0.0), "temperature must be a positive finite number"),
    (lambda m: m.sample(3, generator=[torch.Generator()] * 2), "list of 3"),
    (lambda m: m.decode(torch.rand(2, 1, 14, 14)), r"canvas must have shape \(N, 1, 28, 28\)"),
    (lambda m: m.sample(2, temperature=True), "temperature must be a positive finite number, got True"),
    (lambda m: m.decode(Latents(torch.full((2, 36), 50), torch.zeros(2, 36, dtype=torch.long), torch.ones(2, 36))),
     r"latents ids must lie in \[0, 50\) and locs in \[0, 36\)"),
    (lambda m: m.decode(Latents(torch.zeros(2, 36), torch.zeros(2, 36, dtype=torch.long), torch.ones(2, 36))),
     "latents ids and locs must be integer tensors, got torch.float32"),
    (lambda m: Latents.cat([]), "Latents.cat needs at least one Latents, got none"),
    (lambda m: m.encode(torch.zeros(28, 28)), r"got \(28, 28\): for one image, give a batch of one \(images\[None, None\]\)"),
])
def test_bad_arguments_raise_clear_errors(call, message):
    model = random_model("mnist")
    with pytest.raises(ValueError, match=message):
        call(model)


def test_decode_checks_a_latents_canvas_before_comparing_it_with_their_steps():
    """decode compared a Latents' canvas with its steps before checking it: a NumPy canvas (which decode takes as a
    canvas of its own) or a list was a TypeError from inside torch instead of a decoded image or a clear error."""
    model = random_model("mnist")
    latents = model.parse(images_for(model, 2))
    with_array = Latents(latents.ids, latents.locs, latents.present, canvas=latents.canvas.numpy())
    assert torch.equal(model.decode(with_array), model.decode(latents))
    with pytest.raises(InvalidTypeError, match="canvas must be a torch.Tensor or numpy.ndarray, got list"):
        model.decode(Latents(latents.ids, latents.locs, latents.present, canvas=latents.canvas.tolist()))


def test_a_3d_batch_for_a_colour_model_gets_the_hint_that_fits_it():
    model = random_model("cifar10")
    with pytest.raises(ValueError, match=r"got \(3, 32, 32\): for one colour image, give a batch of one"):
        model.encode(torch.rand(3, 32, 32))
    # Ten grey images (an .npz of grey drawings on the command line): images[None] would not help
    with pytest.raises(ValueError, match=r"got \(10, 32, 32\): to use grey images, repeat them over R, G and B"):
        model.encode(torch.rand(10, 32, 32))
    grey = torch.rand(10, 32, 32)
    assert model.encode(grey[:, None].expand(-1, 3, -1, -1)).ids.shape == (10, 64)  # the hint, as written, works


def test_wrong_types_raise_type_errors():
    model = random_model("mnist")
    with pytest.raises(TypeError, match="a list must hold only PIL images or only image tensors/arrays, got"):
        model.encode([[0.0]])
    with pytest.raises(TypeError, match="dtype torch.int32"):
        model.encode(torch.zeros(1, 1, 28, 28, dtype=torch.int32))


@pytest.mark.parametrize("transposed", [False, True])
def test_eval_mode_folds_batchnorm_into_the_convolution_with_the_same_result(transposed):
    torch.manual_seed(0)
    block = ConvBlock(3, 8, 4, 2, transposed=transposed)
    norm = block[1]
    # Statistics and affine parameters far from the identity, so a fold that forgot one of them would show.
    norm.running_mean.uniform_(-1, 1)
    norm.running_var.uniform_(0.2, 3)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    x = torch.randn(5, 3, 6, 6)
    reference = torch.nn.Sequential(*block).eval()(x)  # the three layers one after another, unfused
    folded = block.eval()(x)
    assert folded.shape == reference.shape
    torch.testing.assert_close(folded, reference, rtol=1e-5, atol=1e-5)
    # The fold follows the weights: a changed BatchNorm changes the result at once.
    with torch.no_grad():
        norm.bias.add_(1)
    moved = block(x)
    assert not torch.allclose(moved, folded)
    torch.testing.assert_close(moved, torch.nn.Sequential(*block)(x), rtol=1e-5, atol=1e-5)
    # Training, and BatchNorm frozen while the rest trains (fine-tuning), run the layers unfused: gradients reach
    # BatchNorm's affine parameters as before.
    block.train()
    norm.eval()
    out = block(x)
    assert torch.equal(out, torch.nn.Sequential(*block)(x))  # bit for bit: the unfused layers ran
    out.sum().backward()
    assert norm.weight.grad is not None and block[0].weight.grad is not None


def test_sample_refuses_a_count_whose_batches_and_their_concatenation_would_not_fit_in_memory(monkeypatch):
    """sample holds every batch and then torch.cat's copy of them (and its latents'), so its peak is at least twice
    what it returns: a count whose output is 60 % of the machine's memory runs for minutes and is killed."""
    import os

    model = random_model("mnist")
    cfg = model.config
    returned = 4 * cfg.channels * (cfg.image_size**2 + cfg.canvas_size**2) + 20 * cfg.num_steps  # bytes per image
    memory = 10**6 * returned  # a machine that holds the output of a million images, once
    monkeypatch.setattr(os, "sysconf", lambda name: {"SC_PHYS_PAGES": memory // 4096, "SC_PAGE_SIZE": 4096}[name])
    with pytest.raises(ValueError, match=r"num_images=600,000 images of 1x28x28 with their latents take"):
        model.sample(600_000, progress=False)
    assert model.sample(2, progress=False).images.shape == (2, 1, 28, 28)  # a small count is drawn


def test_a_generator_that_would_seed_nothing_is_refused(mnist_images, tmp_path):
    """encode(generator=g) without sample=True took the mode, decode(generator=g) without sample_pixels=True the mean:
    a caller who seeds expects a draw. A grid saved without a picture suffix names the path."""
    model = NPDraw.from_pretrained("mnist")
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"generator seeds a draw, which needs sample=True"):
        model.encode(mnist_images[:2], generator=generator)
    latents = model.encode(mnist_images[:2])
    with pytest.raises(ValueError, match=r"generator seeds a draw, which needs sample_pixels=True"):
        model.decode(latents, generator=generator)
    with pytest.raises(ValueError, match=r"path must end in a picture format's suffix"):
        model.sample(2, generator=generator, progress=False).save_grid(tmp_path / "grid")


def test_latents_compare_by_value():
    """The dataclass's == asked a tensor for its truth value: a RuntimeError for every batch but the same object."""
    import copy
    import pickle

    model = random_model("mnist")
    latents = model.encode(images_for(model, 3))
    assert latents == copy.deepcopy(latents) == pickle.loads(pickle.dumps(latents))
    assert latents.logits == copy.deepcopy(latents.logits)
    assert latents != latents[:2] and latents != Latents(latents.ids, latents.locs, latents.present)
    assert latents != latents.to(torch.float64)  # the same values in another dtype
    edited = copy.deepcopy(latents)
    edited.ids[0, 0] += 1
    assert latents != edited and latents != "latents"
    with pytest.raises(TypeError, match="unhashable"):  # mutable: equal now, not later
        hash(latents)


def test_latents_index_the_batch_axis_only():
    """latents[:, :k] indexed every field's second axis: k steps beside a canvas of k channels, which decode then
    refused as a canvas of the wrong shape, or decoded with the steps silently cut. (StepLogits, whose fields all
    have the steps second, still take logits[:, t].)"""
    model = random_model("celeba")
    latents = model.encode(images_for(model, 3))
    for index in ((slice(None), slice(None, 2)), (slice(None), 0), (Ellipsis, slice(None, 5)), None, Ellipsis,
                  torch.ones(3, 64, dtype=torch.bool), np.zeros((3, 1), dtype=np.int64)):
        with pytest.raises(ValueError, match="index the batch axis only"):
            latents[index]
    picked = (-1, slice(1, None), [0, 2], torch.tensor([2, 0]), torch.tensor([True, False, True]), np.int64(1),
              torch.tensor(1), np.array([True, False, True]))
    for index in picked:
        assert latents[index] == Latents(*(getattr(latents, f)[index] for f in ("ids", "locs", "present", "canvas")),
                                         logits=latents.logits[index])
    assert torch.equal(latents[1:].canvas, latents.canvas[1:]) and latents[-1].ids.shape == (64,)


def test_latents_to_moves_every_tensor_and_converts_only_the_floating_ones():
    """A tensor's device moved the floating tensors only (ids and locs stayed where they were), and an integer dtype
    turned present and the canvas into integers."""
    model = random_model("mnist")
    latents = model.encode(images_for(model, 2))
    moved = latents.to(torch.empty(0, device="meta"))  # like a CUDA tensor: only its device is used
    tensors = [moved.ids, moved.locs, moved.present, moved.canvas, *vars(moved.logits).values()]
    assert {t.device.type for t in tensors} == {"meta"}
    assert (moved.ids.dtype, moved.present.dtype) == (torch.int64, torch.float32)
    half = latents.to("cpu", torch.float16, copy=True)
    assert (half.ids.dtype, half.present.dtype, half.canvas.dtype, half.logits.ids.dtype) == (torch.int64,) + \
        (torch.float16,) * 3
    assert half.ids.data_ptr() != latents.ids.data_ptr()  # copy=True copies the integer tensors too
    assert latents.to(torch.zeros(1, dtype=torch.long)) == latents  # an integer tensor's dtype is not taken
    with pytest.raises(TypeError, match="Latents.to takes a floating dtype"):
        latents.to(torch.int64)


def test_log_weights_takes_targets_in_any_float_dtype_and_uint8():
    """float32 targets for a float64 (or bfloat16) model failed inside the encoder's first convolution."""
    model = random_model("mnist").to(torch.float64)
    x = (images_for(model, 2) > 0.5).float()
    with torch.no_grad():
        weights = [model.log_weights(targets, 3, torch.Generator().manual_seed(0))
                   for targets in (x, x.double(), x.to(torch.uint8) * 255)]
    assert weights[0].shape == (2, 3) and torch.equal(weights[0], weights[1]) and torch.equal(weights[0], weights[2])
