"""fit streams folders and datasets: read a batch at a time, with the same result as the images in memory."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from np_draw import NPDraw, NPDrawConfig
from np_draw.errors import ConfigMismatchError, InvalidInputError, InvalidTypeError
from np_draw.images import LazyImages, TensorImages, from_pil_images, image_source
from np_draw.parsing import parse
from np_draw.training import FitConfig, _Parses
from tests.conftest import tiny_config

# Two short stages: enough to show that every read goes through the source and the weights come out the same.
SHORT = {"prior_steps": 4, "steps": 4, "eval_every": 2, "batch_size": 16, "prior_batch_size": 16}


class CountingDataset(torch.utils.data.Dataset):
    """uint8 (1, 28, 28) images by index, with a record of the indices read by each call of a batch."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images, self.reads = images, []

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        self.reads.append(i)
        return self.images[i], 0


def _uint8(mnist_images: torch.Tensor, n: int) -> torch.Tensor:
    return (mnist_images[:n] * 255).round().to(torch.uint8)


def _fit(images, seed: int = 0, **config) -> tuple[NPDraw, object]:
    torch.manual_seed(seed)
    model = NPDraw(tiny_config("mnist"))
    history = model.fit(images, FitConfig(**{**SHORT, **config}), progress=False)
    return model, history


def _same_weights(a: NPDraw, b: NPDraw) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def test_a_folder_is_read_lazily_and_trains_exactly_as_the_same_images_in_memory(mnist_images, tmp_path, capsys):
    images = _uint8(mnist_images, 60)
    for i, image in enumerate(images):
        Image.fromarray(image[0].numpy()).save(tmp_path / f"{i:03d}.png")
    source = image_source(tmp_path, channels=1, size=28)
    assert isinstance(source, LazyImages) and len(source) == 60
    assert source.fingerprint() == TensorImages(images.float() / 255).fingerprint()
    assert "fingerprint" not in capsys.readouterr().err
    assert source.fingerprint(progress=True) == source.fingerprint() and "fingerprint" in capsys.readouterr().err
    from_folder, history_folder = _fit(tmp_path)
    in_memory, history_memory = _fit(images)
    _same_weights(from_folder, in_memory)
    assert history_folder.val_bound == history_memory.val_bound


def test_a_dataset_is_read_a_batch_at_a_time_not_gathered(mnist_images, caplog):
    dataset = CountingDataset(_uint8(mnist_images, 80))
    loader = torch.utils.data.DataLoader(dataset, batch_size=7, shuffle=True)
    with caplog.at_level(logging.INFO, logger="np_draw"):
        from_loader, history = _fit(loader, bank_images=40)
    assert "the loader's sampler, batch size and workers are not used" in caplog.text
    reads = dataset.reads
    # The bank's sample of 40, one pass to parse all 80, then the four training batches of 16 and the 8 held-out
    # images at the end of each of the two rounds: nothing else, so no copy of the data set is gathered.
    assert sorted(set(reads)) == list(range(80))
    assert len(reads) == 40 + 80 + 4 * 16 + 2 * 8
    in_memory, _ = _fit(dataset.images, bank_images=40)
    _same_weights(from_loader, in_memory)
    assert history.steps == 4


def test_the_bank_is_fitted_on_a_seeded_sample_of_bank_images(mnist_images):
    images = _uint8(mnist_images, 60)
    a, _ = _fit(images, bank_images=30, steps=0, prior_steps=0)
    b, _ = _fit(images, bank_images=30, steps=0, prior_steps=0)
    everything, _ = _fit(images, bank_images=None, steps=0, prior_steps=0)
    assert torch.equal(a.bank.parts, b.bank.parts)
    assert not torch.equal(a.bank.parts, everything.bank.parts)
    with pytest.raises(InvalidInputError, match="bank_images must be a positive integer, got 0"):
        FitConfig(bank_images=0)


def test_a_hugging_face_dataset_streams_its_image_column(mnist_images):
    datasets = pytest.importorskip("datasets", reason="the dev extra installs Hugging Face datasets")
    images = _uint8(mnist_images, 60)
    rows = datasets.Dataset.from_dict({"label": list(range(60)),
                                       "image": [Image.fromarray(x[0].numpy()) for x in images]})
    rows = rows.cast_column("image", datasets.Image())
    source = image_source(rows, channels=1, size=28)
    assert isinstance(source, LazyImages)
    assert torch.equal(source.read(torch.tensor([3, 1])), images[[3, 1]].float() / 255)
    from_rows, _ = _fit(rows)
    in_memory, _ = _fit(images)
    _same_weights(from_rows, in_memory)
    # A DatasetDict's items are its splits (datasets' KeyError "Invalid key: 0" before); arrays come back as lists
    splits = datasets.DatasetDict({"train": rows})
    for call in (lambda: image_source(splits, channels=1, size=28), lambda: NPDraw(tiny_config("mnist")).encode(splits)):
        with pytest.raises(TypeError, match=r"images is a dataset of splits \['train'\] \(a DatasetDict\): pass one "
                                            r"split, e.g. images\['train'\]"):
            call()
    arrays = datasets.Dataset.from_dict({"image": [x[0].numpy() / 255 for x in images[:4]]})
    with pytest.raises(TypeError, match=r"got list; a Hugging Face dataset of arrays gives them back as lists"):
        image_source(arrays, channels=1, size=28).read(torch.tensor([0]))
    formatted = image_source(arrays.with_format("numpy"), channels=1, size=28)  # the hint, as written, works
    assert torch.allclose(formatted.read(torch.tensor([2])), images[[2]].float() / 255)


def test_an_iterable_dataset_is_held_in_memory_and_says_so(mnist_images, caplog):
    images = _uint8(mnist_images, 20)

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(images)

    with caplog.at_level(logging.INFO, logger="np_draw"):
        source = image_source(Stream(), channels=1, size=28)
    assert isinstance(source, TensorImages) and torch.equal(source.images, images.float() / 255)
    assert "cannot be read by index: its images are held in memory" in caplog.text


def test_bad_items_are_named_when_their_batch_is_read(tmp_path):
    rows = [{"label": 1, "text": "no image here"}]

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return rows[i]

    with pytest.raises(InvalidInputError, match=r"images\[0\]: a dataset row must hold one image"):
        image_source(Rows(), channels=1, size=28).read(torch.tensor([0]))
    Image.new("RGB", (5, 5), (255, 0, 0)).save(tmp_path / "red.png")
    with pytest.raises(InvalidInputError, match=r"red.png is a colour image"):  # a folder's: before any training
        image_source(tmp_path, channels=1, size=28)
    with pytest.raises(InvalidInputError, match="an ImageSource of 1x28x28 images for a model of 3x32x32"):
        image_source(TensorImages(torch.zeros(2, 1, 28, 28)), channels=3, size=32)


def test_a_folder_read_lazily_logs_what_loading_changes_as_the_in_memory_loader_does(tmp_path, caplog):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (32, 32), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "a_grey.png")
    Image.fromarray(grey).convert("P").save(tmp_path / "b_palette.png")  # grey levels in a palette
    Image.fromarray(np.stack([grey, grey // 2, grey, grey], -1)).save(tmp_path / "c_rgba.png")
    Image.fromarray(np.stack([grey] * 3, -1)).resize((40, 40)).save(tmp_path / "d_large.png")
    for how in ("lazy", "memory"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="np_draw"):
            if how == "lazy":
                source = image_source(tmp_path, channels=3, size=32)
            else:
                from_pil_images([Image.open(path) for path in sorted(tmp_path.iterdir())], channels=3, size=32)
        assert "2 of 4 images are grey" in caplog.text
        assert "1 of 4 images have transparency" in caplog.text
        assert "1 of 4 images centre-cropped and resized to 32x32" in caplog.text
        # Both lines name the folder (the second named the argument: "images: 4 images, read a batch at a time")
        assert how == "memory" or f"{tmp_path}: 4 images, read a batch at a time" in caplog.text
    assert len(source) == 4 and source.read(torch.arange(4)).shape == (4, 3, 32, 32)
    # Images smaller than the model's size are enlarged, and aligned CelebA photos taken whole get the crop that
    # frames them as the celeba model's faces; with that crop, the photo is not named again.
    Image.fromarray(np.stack([grey] * 3, -1)).resize((20, 24)).save(tmp_path / "e_small.png")
    Image.fromarray(np.stack([grey] * 3, -1)).resize((178, 218)).save(tmp_path / "f_face.png")
    for crop in (None, 20):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="np_draw"):
            image_source(tmp_path, channels=3, size=32, crop=crop)
        if crop is None:
            assert "1 of 6 images are smaller than 32x32 (the smallest 20 px a side) and are enlarged" in caplog.text
        else:
            assert "6 of 6 images are smaller than 32x32 (the smallest 20 px a side)" in caplog.text
        assert "aligned CelebA" not in caplog.text  # a model of CIFAR-10's size: the celeba model's crop is no help
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="np_draw"):
        image_source(tmp_path, channels=3, size=64)
    assert ("1 of 6 images are 178x218 px, as aligned CelebA photos are: the celeba model was trained on their 148 px "
            "centre, which --crop 148 frames them to (in Python, np_draw.images.image_source(folder, channels=3, "
            "size=64, crop=148))") in caplog.text


def test_parses_kept_in_three_bytes_a_step_give_back_the_same_latents(mnist_images):
    model = NPDraw(tiny_config("mnist"))
    model.bank.fit(mnist_images, model.grid)
    latents = parse(mnist_images, model.bank, model.grid)
    store = _Parses(len(mnist_images), model.grid.num_cells, model.config.num_parts, torch.device("cpu"))
    store[0:len(mnist_images)] = latents
    index = torch.tensor([5, 0, 299, 5])
    back = store[index]
    for name in ("ids", "locs", "present"):
        assert torch.equal(getattr(back, name), getattr(latents, name)[index]), name
        assert getattr(back, name).dtype == getattr(latents, name).dtype
    assert store.ids.element_size() + store.present.element_size() == 3


def test_a_streamed_run_resumes_exactly_and_refuses_other_images(mnist_images, tmp_path):
    images = _uint8(mnist_images, 40)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image[0].numpy()).save(folder / f"{i:03d}.png")
    config = FitConfig(**SHORT)
    torch.manual_seed(0)
    straight = NPDraw(tiny_config("mnist"))
    straight.fit(folder, config, progress=False)
    torch.manual_seed(0)
    stopped = NPDraw(tiny_config("mnist"))
    stopped.fit(folder, config.replace(steps=2), output_dir=tmp_path / "run", progress=False)
    resumed = NPDraw(tiny_config("mnist"))
    resumed.fit(folder, config, output_dir=tmp_path / "run", resume=True, progress=False)
    _same_weights(resumed, straight)
    (folder / "039.png").unlink()
    with pytest.raises(InvalidInputError, match="it was written for other images"):
        NPDraw(tiny_config("mnist")).fit(folder, config, output_dir=tmp_path / "run", resume=True, progress=False)


def test_validation_images_may_be_streamed_on_either_side(mnist_images):
    images = _uint8(mnist_images, 60)
    torch.manual_seed(0)
    in_memory = NPDraw(tiny_config("mnist"))
    expected = in_memory.fit(images[:40], FitConfig(**SHORT), validation=images[40:], progress=False)
    for train, held in ((images[:40], CountingDataset(images[40:])), (CountingDataset(images[:40]), images[40:]),
                        (CountingDataset(images[:40]), CountingDataset(images[40:]))):
        torch.manual_seed(0)
        model = NPDraw(tiny_config("mnist"))
        history = model.fit(train, FitConfig(**SHORT), validation=held, progress=False)
        assert history.val_bound == expected.val_bound
        _same_weights(model, in_memory)


def test_a_loader_that_chooses_its_images_is_gathered_not_read_by_index(mnist_images, caplog):
    dataset = CountingDataset(_uint8(mnist_images, 80))
    loader = torch.utils.data.DataLoader(dataset, batch_size=8,
                                         sampler=torch.utils.data.SubsetRandomSampler(range(40)))
    with caplog.at_level(logging.INFO, logger="np_draw"):
        source = image_source(loader, channels=1, size=28)
    assert isinstance(source, TensorImages) and len(source) == 40
    assert "read through once and its images held in memory" in caplog.text


def test_a_bad_item_is_named_when_its_batch_is_read(mnist_images):
    items = list(_uint8(mnist_images, 3))
    items[1] = torch.zeros(1, 20, 20, dtype=torch.uint8)
    source = LazyImages(len(items), items.__getitem__, channels=1, size=28, name="images")
    assert len(source.read(torch.tensor([0, 2]))) == 2
    with pytest.raises(InvalidInputError, match=r"images\[1\] must have shape \(N, 1, 28, 28\)"):
        source.read(torch.tensor([0, 1, 2]))
    assert source.read(torch.tensor([], dtype=torch.long)).shape == (0, 1, 28, 28)


def test_folder_order_is_by_path_components(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("L", (28, 28), 10).save(tmp_path / "a" / "b.png")
    Image.new("L", (28, 28), 20).save(tmp_path / "a-c.png")
    first_pixels = image_source(tmp_path, channels=1, size=28).read(torch.tensor([0, 1]))[:, 0, 0, 0]
    assert (first_pixels * 255).round().tolist() == [10, 20]  # "a/b.png" sorts before "a-c.png", as pathlib sorts


def test_a_checkpoint_from_before_an_option_existed_resumes_with_the_option_at_its_default(mnist_images, tmp_path):
    images = _uint8(mnist_images, 40)
    torch.manual_seed(0)
    NPDraw(tiny_config("mnist")).fit(images, FitConfig(**{**SHORT, "steps": 2}), output_dir=tmp_path, progress=False)
    state_files = list((tmp_path / "checkpoints").rglob("state.json"))
    assert state_files
    for state_file in state_files:
        state = json.loads(state_file.read_text())
        del state["config"]["bank_images"]  # as written before the field existed
        state_file.write_text(json.dumps(state))
    history = NPDraw(tiny_config("mnist")).fit(images, FitConfig(**SHORT), output_dir=tmp_path, resume=True,
                                               progress=False)
    assert len(history.val_bound) == 2


def test_a_checkpoint_whose_weights_do_not_fit_the_model_is_refused_by_name(mnist_images, tmp_path):
    images = _uint8(mnist_images, 40)
    torch.manual_seed(0)
    NPDraw(tiny_config("mnist")).fit(images, FitConfig(**{**SHORT, "steps": 2}), output_dir=tmp_path, progress=False)
    for weights_file in (tmp_path / "checkpoints").rglob("model.safetensors"):
        weights = load_file(weights_file)
        del weights["encoder.location_bias"]  # as a checkpoint of the code before the bias was written
        save_file(weights, weights_file)
    with pytest.raises(ConfigMismatchError, match=r"missing keys \['encoder.location_bias'\]"):
        NPDraw(tiny_config("mnist")).fit(images, FitConfig(**SHORT), output_dir=tmp_path, resume=True, progress=False)


def test_a_checkpoint_of_another_config_is_refused_by_shape_before_loading(mnist_images, tmp_path):
    images = _uint8(mnist_images, 40)
    torch.manual_seed(0)
    NPDraw(tiny_config("mnist")).fit(images, FitConfig(**{**SHORT, "steps": 2}), output_dir=tmp_path, progress=False)
    wider = NPDrawConfig.preset("mnist", encoder_channels=32, decoder_channels=16)  # tiny_config's encoder: 16
    with pytest.raises(ConfigMismatchError, match=r"cannot resume from .*encoder\.\S+ has shape \[\d+, .*"
                                                  r"in the checkpoint's model.safetensors, the config makes it"):
        NPDraw(wider).fit(images, FitConfig(**SHORT), output_dir=tmp_path, resume=True, progress=False)


@pytest.mark.parametrize("flag", ["no", 0, None])
def test_fingerprint_progress_must_be_a_bool(flag):
    # as every other progress= flag: "no" would count as True and show the bar
    with pytest.raises(TypeError, match=rf"progress must be True or False, got {flag!r}"):
        TensorImages(torch.rand(2, 1, 28, 28)).fingerprint(progress=flag)


def test_a_folder_of_dark_drawings_on_white_is_told_to_invert_them(mnist_images, tmp_path, caplog):
    # A user's scans are dark ink on white paper; a grey model draws light ink on black and trained on them silently
    (tmp_path / "paper").mkdir(), (tmp_path / "screen").mkdir()
    for i, image in enumerate(_uint8(mnist_images, 6)):
        Image.fromarray(255 - image[0].numpy()).save(tmp_path / "paper" / f"{i}.png")
        Image.fromarray(image[0].numpy()).save(tmp_path / "screen" / f"{i}.png")
    with caplog.at_level(logging.WARNING, logger="np_draw"):
        image_source(tmp_path / "screen", channels=1, size=28)
        assert not caplog.records
        image_source(tmp_path / "paper", channels=1, size=28)
    assert "6 of 6 images are mostly light, as dark drawings on white paper are" in caplog.text
    assert "invert such images first" in caplog.text


class _Iterable(torch.utils.data.IterableDataset):
    def __init__(self, items: list) -> None:
        self.items = items

    def __iter__(self):
        return iter(self.items)


def test_images_of_several_dtypes_are_scaled_each_in_memory_as_when_streamed():
    """torch.stack and torch.cat promoted uint8 beside floats to floats: levels 0..255 were refused as floats outside
    [0, 1] (or, for levels 0 and 1, taken as [0, 1] in silence), and a bool image passed as floats."""
    levels = torch.arange(784, dtype=torch.int64).reshape(28, 28) % 256
    uint8, floats, binary = levels.to(torch.uint8), levels.float() / 255, (levels > 127).to(torch.uint8)
    streamed = image_source(CountingDataset([floats[None], uint8[None], binary[None]]), channels=1, size=28)
    expected = streamed.read(torch.arange(3))
    assert torch.equal(expected[1], expected[0]) and expected[2].max() == 1 / 255
    for given in ([floats, uint8, binary], _Iterable([floats[None], uint8[None], binary[None]])):
        held = image_source(given, channels=1, size=28)
        assert isinstance(held, TensorImages) and torch.equal(held.images, expected)
    with pytest.raises(InvalidTypeError, match=r"images\[1\] must be uint8 \(0..255\) or floating point in \[0, 1\], "
                                               r"got dtype torch.bool"):
        image_source([floats, levels > 127], channels=1, size=28)
