"""What a user does right after the README: their own images in any form, folders named like models, a copy of a
model for offline use, and the licences that come with the package."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_model
from huggingface_hub import ModelCard
from PIL import Image

from np_draw import InvalidInputError, InvalidTypeError, Latents, NPDraw, NPDrawConfig
from np_draw.cli import infer_preset, main
from np_draw.images import from_pil_images, load_images, make_grid, save_pairs, to_pil
from np_draw.manifest import read_manifest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mnist() -> NPDraw:
    return NPDraw.from_pretrained("mnist")


def test_encode_and_reconstruct_take_what_fit_takes(mnist, mnist_images):
    x = mnist_images[:3]
    expected = mnist.reconstruct(x)
    uint8 = (x * 255).round().to(torch.uint8)
    assert torch.allclose(mnist.reconstruct(uint8), expected, atol=1e-3)
    nhwc = uint8.permute(0, 2, 3, 1).numpy()
    pil = [Image.fromarray(image[..., 0]) for image in nhwc]
    for form in (nhwc, nhwc[..., 0], pil, list(uint8), pil[0]):
        out = mnist.reconstruct(form)
        assert torch.allclose(out, expected[:len(out)], atol=1e-3)
    assert torch.equal(mnist.encode(pil).ids, mnist.encode(uint8).ids)
    # A PIL image of another size is centre-cropped and resized, as fit does with a folder.
    assert mnist.reconstruct(pil[0].resize((56, 56))).shape == (1, 1, 28, 28)


def test_channels_last_images_of_another_size_are_refused_in_the_layout_given(mnist, tmp_path):
    """An NHWC array at the wrong size was transposed first, and the error named (3, 1, 32, 32), a shape the user
    never had; the command line's .npz said the same."""
    nhwc = np.zeros((3, 32, 32, 1), dtype=np.uint8)
    with pytest.raises(InvalidInputError, match=r"images must have shape \(N, 28, 28, 1\) \(NHWC\) or \(N, 1, 28, "
                                                r"28\) \(NCHW\), got \(3, 32, 32, 1\)$"):
        mnist.reconstruct(nhwc)
    np.savez(tmp_path / "digits.npz", images=nhwc)
    with pytest.raises(InvalidInputError, match=r"got \(3, 32, 32, 1\)$"):
        load_images(tmp_path / "digits.npz", channels=1, size=28)
    assert mnist.reconstruct(np.zeros((3, 28, 28, 1), dtype=np.uint8)).shape == (3, 1, 28, 28)


def test_colour_images_for_a_grey_model_are_refused_not_silently_turned_grey(mnist, tmp_path):
    colour = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"is a colour image \(40x40 RGB\) but the model takes grey images"):
        mnist.reconstruct(colour)
    colour.save(tmp_path / "face.png")
    with pytest.raises(ValueError, match="face.png is a colour image"):
        mnist.fit(tmp_path, steps=1, progress=False)
    grey_as_rgb = Image.fromarray(np.full((28, 28, 3), 128, dtype=np.uint8))
    assert mnist.reconstruct(grey_as_rgb).shape == (1, 1, 28, 28)  # an RGB file of grey pixels is grey


def test_colour_arrays_for_a_grey_model_are_refused_as_colour_in_the_layout_given(mnist, tmp_path):
    """An (N, 28, 28, 3) array was refused as "must have shape (N, 1, 28, 28) (NCHW)", which no transpose gives."""
    rgb = np.zeros((3, 28, 28, 3), dtype=np.uint8)
    with pytest.raises(InvalidInputError, match=r"images holds colour images \(3 channels\), got shape \(3, 28, "
                                                r"28, 3\), and the model takes grey ones, \(N, 1, 28, 28\)"):
        mnist.reconstruct(rgb)
    with pytest.raises(InvalidInputError, match=r"images must have shape \(N, 1, 28, 28\) \(NCHW\), got \(3, 3, "):
        mnist.reconstruct(rgb.transpose(0, 3, 1, 2))  # in the layout the message names
    np.savez(tmp_path / "rgb.npz", images=rgb)
    with pytest.raises(InvalidInputError, match=r"rgb.npz\['images'\] holds colour images"):
        load_images(tmp_path / "rgb.npz", channels=1, size=28)


def test_16_bit_grey_files_keep_their_grey_levels_and_lossy_grey_files_count_as_grey(mnist, mnist_images, tmp_path):
    """Pillow turns a 16-bit grey PNG into 8 bits by clipping every level above 255 to white; a grey image saved as
    lossy WebP or JPEG comes back as RGB with channels a few levels apart."""
    levels = (mnist_images[0, 0] * 255).round().to(torch.int32).numpy()
    # From uint16 levels: Pillow 9's conversion of mode "I" to "I;16" clips at 32767 (and it reads the file back as
    # "I", which the 16-bit reading must take as 16-bit too)
    Image.fromarray((levels * 257).astype(np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(levels.astype(np.uint8)).save(tmp_path / "flat.png")
    assert torch.equal(*(mnist.prepare_images(Image.open(tmp_path / name)) for name in ("deep.png", "flat.png")))
    # Floating-point grey images (Pillow's mode "F"), in [0, 1] as tensors hold them or in 0..255: Pillow's own
    # conversion truncated the first to black
    flat = mnist.prepare_images(Image.open(tmp_path / "flat.png"))
    for scale in (1 / 255, 1):
        assert torch.equal(mnist.prepare_images(Image.fromarray(levels.astype(np.float32) * scale, mode="F")), flat)
    Image.fromarray(levels.astype(np.uint8)).convert("RGB").save(tmp_path / "lossy.webp", quality=50)
    rgb = np.asarray(Image.open(tmp_path / "lossy.webp"))
    assert (rgb[..., 0] != rgb[..., 1]).any()  # the channels do differ
    assert mnist.prepare_images(Image.open(tmp_path / "lossy.webp")).shape == (1, 1, 28, 28)


def test_a_colour_model_says_how_many_grey_images_it_widened_and_keeps_near_grey_rgb_as_it_is(caplog):
    """A grey image for a colour model has its grey levels copied to R, G and B, and the log says how many; an RGB
    image whose channels are a few levels apart is not grey for this count and keeps its own channels."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (16, 16), dtype=np.uint8)
    near = np.stack([grey, grey, np.clip(grey.astype(int) + 3, 0, 255).astype(np.uint8)], -1)
    with caplog.at_level(logging.INFO, logger="np_draw"):
        out = from_pil_images([Image.fromarray(grey), Image.fromarray(near)], channels=3, size=16)
    assert "1 of 2 images are grey" in caplog.text
    assert torch.equal(out[0], torch.from_numpy(grey).expand(3, 16, 16))
    assert torch.equal(out[1], torch.from_numpy(near).permute(2, 0, 1))
    caplog.clear()
    palette = Image.fromarray(grey).convert("P")  # grey levels in a palette: grey, though its mode is not
    rgba = Image.fromarray(np.concatenate([near, np.full((16, 16, 1), 128, np.uint8)], -1))
    with caplog.at_level(logging.INFO, logger="np_draw"):
        from_pil_images([palette, rgba], channels=3, size=16)
    assert "1 of 2 images are grey" in caplog.text and "1 of 2 images have transparency" in caplog.text


def test_np_draw_fit_without_a_preset_picks_the_one_that_fits_the_images(tmp_path):
    rng = np.random.default_rng(0)
    for name, shape in (("faces", (72, 64, 3)), ("tiny", (32, 32, 3)), ("digits", (28, 28))):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    assert infer_preset(tmp_path / "faces")[0] == "celeba"
    assert infer_preset(tmp_path / "tiny")[0] == "cifar10"
    assert infer_preset(tmp_path / "digits")[0] == "mnist"
    np.savez(tmp_path / "rgb.npz", images=rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8))
    assert infer_preset(tmp_path / "rgb.npz")[0] == "cifar10"


def test_uint8_images_make_the_same_pictures_as_their_floats(mnist_images, tmp_path):
    uint8 = (mnist_images[:4] * 255).round().to(torch.uint8)
    assert [np.asarray(p).tolist() for p in to_pil(uint8)] == [np.asarray(p).tolist() for p in to_pil(mnist_images[:4])]
    assert np.array_equal(np.asarray(make_grid(uint8)), np.asarray(make_grid(mnist_images[:4])))
    assert len(np.unique(np.asarray(make_grid(uint8)))) > 2  # not saturated to 0 and 255
    # A user's uint8 images beside the model's float reconstructions: each read in its own range
    save_pairs(uint8, mnist_images[:4], tmp_path / "mixed.png")
    save_pairs(mnist_images[:4], mnist_images[:4], tmp_path / "floats.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "mixed.png")), np.asarray(Image.open(tmp_path / "floats.png")))
    with pytest.raises(InvalidInputError, match="padding must be a non-negative integer, got -1"):
        make_grid(uint8, padding=-1)
    # pairs_per_row=0 was taken for the default, and a negative one was blamed on nrow (twice it)
    for count in (0, -1):
        with pytest.raises(InvalidInputError, match=rf"pairs_per_row must be a positive integer, got {count}"):
            save_pairs(uint8, mnist_images[:4], tmp_path / "pairs.png", count)


def test_a_bare_pretrained_name_means_the_pretrained_model_and_a_path_means_the_folder(tmp_path, monkeypatch,
                                                                                          caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist").mkdir()  # e.g. the user's data folder: it used to fail with "'mnist' has no config.json"
    (tmp_path / "mnist" / "0.png").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="np_draw"):
        assert NPDraw.from_pretrained("mnist").is_fitted
    assert "loading the pretrained model 'mnist', not the folder" in caplog.text
    NPDraw(NPDrawConfig.preset("mnist")).save_pretrained(tmp_path / "mnist")  # now a model folder too
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="np_draw"):
        assert NPDraw.from_pretrained("mnist").is_fitted
    assert "(a model folder): pass './mnist' or a Path to load the folder" in caplog.text
    assert not NPDraw.from_pretrained("./mnist").is_fitted
    assert not NPDraw.from_pretrained(Path("mnist")).is_fitted
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="np_draw"):
        NPDraw.from_pretrained("omniglot", force_download=True)
    assert "force_download=True: 'omniglot' is bundled in the package" in caplog.text


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "np_draw.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.parametrize("name", ["mnist", "celeba"])
def test_download_output_writes_a_model_folder_that_loads_offline_for_a_bundled_name(name, tmp_path):
    done = run_cli("download", name, "--output", str(tmp_path / "copy"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    expected, copy = NPDraw.from_pretrained(name), NPDraw.from_pretrained(tmp_path / "copy", local_files_only=True)
    assert all(torch.equal(v, copy.state_dict()[k]) for k, v in expected.state_dict().items())
    refused = run_cli("download", name, "--cache-dir", str(tmp_path / "cache"), cwd=tmp_path)
    assert refused.returncode != 0 and "is bundled in the np-draw package" in refused.stderr


def test_the_package_has_a_licence_type_information_and_truthful_data_licences():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert (ROOT / "np_draw" / "py.typed").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "py.typed" in pyproject and "Typing :: Typed" in pyproject and "[project.urls]" in pyproject
    models = read_manifest()
    assert all(entry["revision"] is None for entry in models.values() if entry["bundled"])  # no placeholder commits
    celeba = ROOT / "np_draw" / "weights" / "celeba" / "README.md"
    assert ModelCard.load(celeba).data.license == "other" and "non-commercial research" in celeba.read_text()
    assert all(entry.get("data_license") for entry in models.values())


def test_the_gpu_check_script_runs_in_its_small_cpu_mode(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--device", "cpu", "--quick",
                           "--out", str(tmp_path / "check.json")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = __import__("json").loads((tmp_path / "check.json").read_text())["models"]["mnist"]
    assert abs(figures["log_prior"]["bfloat16"] - figures["log_prior"]["float32"]) < 2.0
    assert figures["sampling"]["float32/16"]["images_per_s"] > 0
    assert figures["steps"]["16"]["step_us"] > 0 and figures["steps"]["16"]["gpu_busy"] is None  # a CPU has no GPU


def test_weights_saved_again_keep_the_licence_of_the_card_they_were_loaded_from(tmp_path):
    faces = NPDraw.from_pretrained("celeba")
    faces.save_pretrained(tmp_path / "copy")  # as after a fine-tune: the weights still derive from CelebA's
    card = ModelCard.load(tmp_path / "copy" / "README.md")
    assert (card.data.license, card.data.license_name) == ("other", "celeba-non-commercial-research")
    assert "The training data: CelebA (Liu, Luo, Wang and Tang), for non-commercial research" in card.text
    again = NPDraw.from_pretrained(tmp_path / "copy")  # and a copy of the copy
    again.save_pretrained(tmp_path / "again", card={"dataset": "my faces"})
    assert ModelCard.load(tmp_path / "again" / "README.md").data.license_name == "celeba-non-commercial-research"
    # A licence given by the caller replaces the inherited one, name and link included.
    faces.save_pretrained(tmp_path / "mine", card={"license": "apache-2.0"})
    mine = ModelCard.load(tmp_path / "mine" / "README.md")
    assert (mine.data.license, mine.data.license_name) == ("apache-2.0", None)
    NPDraw(faces.config).save_pretrained(tmp_path / "new")  # a model not loaded from a card: the default
    assert ModelCard.load(tmp_path / "new" / "README.md").data.license == "mit"


def test_a_fitted_model_s_card_names_the_new_images_beside_the_data_its_weights_started_from(tmp_path, mnist_images):
    """Fine-tuned weights derive from both: the card said only 'The training data: MNIST ...' after a fit on other
    images; and once, however many fits follow."""
    model = random_model("mnist", seed=0)
    model.save_pretrained(tmp_path / "start", card={"data_license": "MNIST (LeCun et al.), CC BY-SA 3.0"})
    tuned = NPDraw.from_pretrained(tmp_path / "start")
    for _ in range(2):
        tuned.fit(mnist_images[:8], steps=1, prior_steps=1, batch_size=4, progress=False)
    tuned.save_pretrained(tmp_path / "tuned", card={"dataset": "8 drawings of mine"})
    text = ModelCard.load(tmp_path / "tuned" / "README.md").text
    assert ("The training data: the images these weights were fitted on (the Data section names them, when "
            "recorded), and those of the weights they started from: MNIST (LeCun et al.), CC BY-SA 3.0") in text
    assert text.count("fitted on") == 1 and "8 drawings of mine" in text


def test_a_model_is_built_from_an_npdraw_config_only():
    for config in (None, {"num_parts": 50}, "mnist"):
        with pytest.raises(InvalidTypeError, match=r"config must be an NPDrawConfig, got .*NPDrawConfig.preset"):
            NPDraw(config)


def test_decoding_latents_edited_in_place_warns_that_their_canvas_is_decoded(mnist, mnist_images, caplog):
    """encode returns latents with their canvas, which decode uses: an edit of their steps in place would be dropped
    silently; the warning says so, and latents without a canvas decode their steps."""
    latents = mnist.encode(mnist_images[:3])
    with caplog.at_level(logging.WARNING, logger="np_draw"):
        mnist.decode(latents)
        assert "canvas is not that of their ids" not in caplog.text
        latents.present[:, :] = 0
        kept = mnist.decode(latents)
    assert "canvas is not that of their ids, locs and present with this model's parts (changed in place" in caplog.text
    # Latents rounded to half precision are not edits; another model's (other parts) may be
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="np_draw"):
        mnist.decode(mnist.encode(mnist_images[:3]).to(torch.float16))
    assert "canvas is not that of their ids" not in caplog.text
    # Steps edited out of range cannot be drawn: the canvas they came with is decoded, and the warning says why
    moved = mnist.encode(mnist_images[:3])
    moved.ids[0, 0] = mnist.config.num_parts
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="np_draw"):
        assert torch.equal(mnist.decode(moved), mnist.decode(moved.canvas))
    parts = mnist.config.num_parts
    assert re.search(rf"are not steps this model can draw \(latents ids must lie in \[0, {parts}\) and locs in "
                     rf"\[0, 36\), got ids in \[\d+, {parts}\] and locs in \[\d+, \d+\]\): their canvas is decoded as "
                     "it is", caplog.text)
    blank = mnist.decode(Latents(latents.ids, latents.locs, latents.present))
    assert not torch.equal(kept, blank) and torch.equal(blank, mnist.decode(torch.zeros(3, 1, 28, 28)))


def test_a_path_starting_with_a_tilde_is_in_the_home_folder(tmp_path, monkeypatch, mnist_images):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    model = NPDraw.from_pretrained("mnist")
    model.save_pretrained("~/saved")
    assert (tmp_path / "saved" / "model.safetensors").is_file() and not (tmp_path / "~").exists()
    assert NPDraw.from_pretrained("~/saved").is_fitted
    (tmp_path / "digits").mkdir()
    for i in range(3):
        Image.fromarray((mnist_images[i, 0] * 255).byte().numpy()).save(tmp_path / "digits" / f"{i}.png")
    assert model.reconstruct("~/digits").shape == (3, 1, 28, 28)
    assert model.sample(2, progress=False).save_grid("~/grid.png") == tmp_path / "grid.png"
    assert (tmp_path / "grid.png").is_file()


def test_an_npz_file_with_an_uppercase_suffix_is_read_as_one(tmp_path, mnist_images, capsys):
    """IMAGES.NPZ (saved on Windows or a FAT drive) was taken for an image file and refused as unreadable."""
    digits = (mnist_images[:3, 0] * 255).round().to(torch.uint8)
    path = tmp_path / "DIGITS.NPZ"
    with open(path, "wb") as file:  # np.savez would add ".npz" to a name that does not end in it
        np.savez(file, images=digits.numpy())
    images, labels = load_images(path, channels=1, size=28)
    assert torch.equal(images, digits[:, None]) and labels == [f"{path}[{i}]" for i in range(3)]
    assert infer_preset(path)[0] == "mnist"
    assert main(["parse", "mnist", str(path), "-o", str(tmp_path / "parse.png")]) == 0
    assert (tmp_path / "parse.png").is_file()


def test_a_folder_follows_linked_folders_once_and_leaves_out_hidden_files(tmp_path, caplog):
    """os.walk did not follow a linked class folder (its images left out in silence, where a linked file was read);
    a git clone's .git/lfs/objects copy of every image was read too, first."""
    shared, folder = tmp_path / "shared" / "cats", tmp_path / "data"
    shared.mkdir(parents=True)
    (folder / ".git" / "lfs" / "objects").mkdir(parents=True)
    for i, level in enumerate((10, 20)):
        Image.new("L", (28, 28), level).save(shared / f"{i}.png")
    Image.new("L", (28, 28), 30).save(folder / "own.png")
    Image.new("L", (28, 28), 30).save(folder / ".git" / "lfs" / "objects" / "3f2a", format="PNG")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + bytes(64))
    (folder / "cats").symlink_to(shared)
    (folder / "again").symlink_to(shared)  # a second way to the same folder: read once
    (shared / "loop").symlink_to(folder)  # a link back up: no endless walk
    with caplog.at_level(logging.INFO, logger="np_draw.images"):
        images, labels = load_images(folder, channels=1, size=28)
    assert [Path(label).relative_to(folder).as_posix() for label in labels] == ["again/0.png", "again/1.png", "own.png"]
    assert images[:, 0, 0, 0].tolist() == [10, 20, 30]
    assert "left out 2 hidden files and folders" in caplog.text and "not readable" not in caplog.text


def test_a_folder_whose_images_are_all_hidden_says_they_were_left_out(tmp_path):
    """The info line that hidden files are left out is not shown by a library's default logging: the error said
    only that the folder "holds no readable image files", of a folder of images kept in .cats/."""
    (tmp_path / "data" / ".cats").mkdir(parents=True)
    Image.new("L", (28, 28), 10).save(tmp_path / "data" / ".cats" / "0.png")
    Image.new("L", (28, 28), 10).save(tmp_path / "data" / ".1.png")
    with pytest.raises(InvalidInputError, match=r"holds no readable image files; 2 hidden files and folders were left "
                                                r"out \(names starting with '\.'\): \.cats, \.1\.png; name a hidden "
                                                r"folder itself to read it$"):
        load_images(tmp_path / "data", channels=1, size=28)
    assert load_images(tmp_path / "data" / ".cats", channels=1, size=28)[0].shape == (1, 1, 28, 28)


def test_a_folder_of_no_image_is_named_once_by_load_images(tmp_path):
    """read_folder's message begins with the argument's name, and load_images gave it the folder's path: the command
    line's IMAGES said "'/x' folder '/x' holds no readable image files"."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("not an image")
    with pytest.raises(InvalidInputError, match=r"^images folder '[^']*notes' holds no readable image files$"):
        load_images(tmp_path / "notes", channels=1, size=28)


def test_float_pil_images_with_nan_inf_or_negative_levels_are_refused_as_tensors_are(mnist):
    """_eight_bit's cast read NaN as black, inf as white and clipped negative levels (an image in [-1, 1]) to black,
    where the same values in a tensor are refused."""
    levels = np.linspace(0, 1, 784, dtype=np.float32).reshape(28, 28)
    read = mnist.prepare_images(Image.fromarray(levels))  # a float image in [0, 1] is read as such
    assert torch.equal(read, torch.from_numpy(np.round(levels * 255))[None, None] / 255)
    negative = r"must have levels of 0 or more \(0..1 or 0..255 for a float image\), got values in \[-0.5, 1\]"
    finite = "must be finite, got 1 NaN or inf values"
    for bad, message in ((np.nan, finite), (np.inf, finite), (-0.5, negative)):
        image = levels.copy()
        image[3, 4] = bad
        for given in (Image.fromarray(image), [Image.fromarray(image)]):
            with pytest.raises(InvalidInputError, match=rf"image 0 {message} in a 28x28 px F image"):
                mnist.prepare_images(given)
        with pytest.raises(InvalidInputError, match="must be finite" if bad != -0.5 else "must lie in"):
            mnist.prepare_images(torch.from_numpy(image)[None, None])
    # A [0, 1] image a little past 1 (a bicubic resize overshoots) was read as 0..255: black; 0..255 ones still read
    with pytest.raises(InvalidInputError, match=r"image 0 is a float image whose levels reach 1.02: neither \[0, 1\] "
                                                r"nor 0..255; clip it"):
        mnist.prepare_images(Image.fromarray(levels * 1.02))
    assert torch.equal(mnist.prepare_images(Image.fromarray(levels * 255)), read)


def test_omniglot_paper_split_numbers_the_characters_of_both_files_apart(tmp_path):
    from np_draw.data import load_arrays

    # The shared-data layout in miniature: two characters in each of Lake's files, each drawn by 20 drawers; each
    # file numbers its own characters from 0
    folder = tmp_path / "omniglot"
    folder.mkdir()
    for file, first_id, alphabet in (("background_28x28.npz", 1, 0), ("evaluation_28x28.npz", 3, 1)):
        labels = np.repeat(np.arange(2, dtype=np.int16), 20)
        np.savez(folder / file, images=np.zeros((40, 28, 28), np.uint8), labels=labels,
                 char_ids=(labels + first_id).astype(np.int16), sample_idx=np.tile(np.arange(1, 21, dtype=np.int8), 2),
                 alphabet=np.full(40, alphabet, np.int8), alphabet_names=np.array(["a", "b"]))
    train, test = (load_arrays("omniglot", tmp_path, split) for split in ("train", "test"))
    assert len(train["images"]) == 60 and len(test["images"]) == 20  # drawers 1-15 and 16-20 of every character
    for arrays in (train, test):
        assert arrays["labels"].tolist() == (arrays["char_ids"] - 1).tolist()  # one label, one character
        assert sorted(set(arrays["labels"].tolist())) == [0, 1, 2, 3]
    assert sorted(set(load_arrays("omniglot", tmp_path, "evaluation")["labels"].tolist())) == [0, 1]
