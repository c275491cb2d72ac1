import json
import logging
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_model
from PIL import Image

from np_draw import NPDraw, hub
from np_draw.cli import _fit_config, build_parser, infer_preset, main
from np_draw.data import DATA_FILES
from np_draw.errors import InvalidInputError
from np_draw.images import image_source, load_images, open_image, spread, to_pil
from np_draw.manifest import read_manifest
from np_draw.training import FitConfig


def bundled_names() -> list[str]:
    return [name for name, entry in read_manifest().items() if entry.get("bundled")]


@pytest.fixture(scope="module")
def mnist():
    return NPDraw.from_pretrained("mnist")


@pytest.fixture
def digit_files(tmp_path, mnist_images):
    """Three MNIST digits as PNG files and the same three in an .npz."""
    paths = []
    for i, image in enumerate(to_pil(mnist_images[:3])):
        paths.append(tmp_path / f"digit{i}.png")
        image.save(paths[-1])
    np.savez(tmp_path / "digits.npz", images=(mnist_images[:3, 0] * 255).round().to(torch.uint8).numpy())
    return paths


def cells(path, count: int, size: int = 28, per_row: int | None = None) -> list[np.ndarray]:
    """The images of a grid picture written with 2 px padding, in reading order."""
    grid = np.asarray(Image.open(path))
    per_row = per_row or (grid.shape[1] - 2) // (size + 2)
    return [grid[2 + (i // per_row) * (size + 2):][:size, 2 + (i % per_row) * (size + 2):][:, :size]
            for i in range(count)]


def exit_code(argv: list[str]) -> int:
    """What the np-draw process would exit with: main's return value, or argparse's SystemExit code."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


def pixels(images: torch.Tensor) -> list[np.ndarray]:
    return [np.asarray(image) for image in to_pil(images)]


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_checkpoint_verifies_loads_and_samples(name):
    model = NPDraw.from_pretrained(name)
    out = model.sample(2, generator=torch.Generator().manual_seed(0), progress=False)
    cfg = model.config
    assert out.images.shape == (2, cfg.channels, cfg.image_size, cfg.image_size)
    assert 0 <= out.images.min() and out.images.max() <= 1


def test_sample_command_writes_the_grid(tmp_path, capsys):
    output = tmp_path / "grid.png"
    assert main(["sample", "mnist", "-n", "6", "--seed", "1", "--nrow", "3", "-o", str(output), "-q"]) == 0
    assert Image.open(output).size == (3 * 30 + 2, 2 * 30 + 2)
    assert capsys.readouterr().out.strip() == str(output)
    binary = tmp_path / "binary.png"
    assert main(["sample", "mnist", "-n", "6", "--seed", "1", "--nrow", "3", "-o", str(binary), "-q",
                 "--sample-pixels"]) == 0
    levels = np.unique(np.asarray(Image.open(binary).convert("L"))[2:30, 2:30])
    assert set(levels.tolist()) <= {0, 255}  # the first image's pixels are drawn: black or white
    assert len(np.unique(np.asarray(Image.open(output).convert("L"))[2:30, 2:30])) > 2  # means: grey levels


def test_reconstruct_puts_each_image_beside_its_reconstruction(tmp_path, digit_files, mnist, mnist_images, capsys):
    output = tmp_path / "recon.png"
    argv = ["reconstruct", "mnist", *map(str, digit_files), str(tmp_path / "digits.npz"), "-o", str(output),
            "--pairs-per-row", "3", "--device", "cpu"]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == str(output)
    assert Image.open(output).size == (6 * 30 + 2, 2 * 30 + 2)  # 3 files + 3 from the .npz, 3 pairs per row
    images = torch.cat([mnist_images[:3], mnist_images[:3]])
    expected = [p for pair in zip(pixels(images), pixels(mnist.reconstruct(images))) for p in pair]
    for got, want in zip(cells(output, 12), expected):
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_image_files_named_one_by_one_say_what_loading_changed(tmp_path, digit_files, caplog):
    to_pil(torch.rand(1, 1, 40, 40))[0].save(tmp_path / "large.png")
    files = [*map(str, digit_files), str(tmp_path / "large.png")]
    with caplog.at_level(logging.INFO, logger="np_draw"):
        assert main(["reconstruct", "mnist", *files, "-o", str(tmp_path / "recon.png")]) == 0
    assert "1 of 4 images centre-cropped and resized to 28x28" in caplog.text  # one line for the four files


def test_image_files_named_one_by_one_are_decoded_one_at_a_time(tmp_path, monkeypatch, tracked_opens):
    # Every file named was decoded at full size before any was resized (as the demo's uploads were): a shell glob of
    # phone photos held them all at once
    from np_draw import cli

    files, open_image, alive = tracked_opens
    monkeypatch.setattr(cli, "open_image", open_image)
    assert main(["reconstruct", "mnist", *map(str, files), "-o", str(tmp_path / "recon.png")]) == 0
    assert len(alive) == 4 and max(alive) <= 1, alive  # the one before, at most, while the next is read


def test_crop_frames_image_files_by_their_centre_for_reconstruct_and_fit(tmp_path, mnist_images, mnist, capsys,
                                                                         caplog, monkeypatch):
    """--crop PX cuts each image file to its PX px centre before resizing (the paper's CelebA framing is 148 px of
    178 x 218 px photos): here digits of 30 px in the middle of 36 x 44 px noise."""
    rng = np.random.default_rng(0)
    folder, cropped = tmp_path / "photos", tmp_path / "cropped"
    folder.mkdir(), cropped.mkdir()
    for i, digit in enumerate(to_pil(mnist_images[:6])):
        photo = Image.fromarray(rng.integers(0, 256, (44, 36), dtype=np.uint8))
        photo.paste(digit.resize((30, 30), Image.BICUBIC), (3, 7))
        photo.save(folder / f"{i}.png")
        digit.resize((30, 30), Image.BICUBIC).save(cropped / f"{i}.png")
    files = sorted(map(str, folder.iterdir()))
    expected = [np.asarray(Image.open(cropped / f"{i}.png").resize((28, 28), Image.BICUBIC)) for i in range(6)]
    for argv in (files, [str(folder)]):
        output = tmp_path / "recon.png"
        assert main(["reconstruct", "mnist", *argv, "--crop", "30", "-o", str(output), "--pairs-per-row", "6"]) == 0
        assert all(np.array_equal(got, want) for got, want in zip(cells(output, 12)[::2], expected, strict=True))
    assert main(["reconstruct", "mnist", *files, "-o", str(output), "--pairs-per-row", "6"]) == 0  # no crop: noise
    assert not any(np.array_equal(got, want) for got, want in zip(cells(output, 12)[::2], expected, strict=True))
    capsys.readouterr()
    # fit trains on the framed images: the same as a folder of them cut beforehand
    start = random_model("mnist")
    start.save_pretrained(tmp_path / "start")
    argv = ["fit", ".", "-o", str(tmp_path / "tuned"), "--from", str(tmp_path / "start"), "--steps", "1",
            "--prior-steps", "1", "--batch-size", "6", "--val-fraction", "0.5", "-q"]
    with monkeypatch.context() as inside:  # DATA "." (the card said "12 images from ", Path(".").name being "")
        inside.chdir(folder)
        assert main([*argv, "--crop", "30"]) == 0
    card = (tmp_path / "tuned" / "README.md").read_text()
    assert image_source(cropped, channels=1, size=28).fingerprint() in card and '"crop": 30' in card
    assert image_source(folder, channels=1, size=28).fingerprint() not in card
    capsys.readouterr()
    assert main(["info", str(tmp_path / "tuned"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["notes"] == f"fine-tuned from {tmp_path / 'start'} with `np-draw fit`."
    assert info["training"]["crop"] == 30
    # Its image files read whole by a command not given --crop: a warning says how it was framed; not with --crop
    for command in (["reconstruct", str(tmp_path / "tuned"), str(folder), "-o", str(output)],
                    ["eval", str(tmp_path / "tuned"), "--data", str(folder), "--num-samples", "2",
                     "--num-generated", "2", "-q"]):
        with caplog.at_level(logging.WARNING):
            caplog.clear()
            assert main(command) == 0
            assert "fitted on each image file's 30 px centre (its card records --crop 30)" in caplog.text
            caplog.clear()
            assert main([*command, "--crop", "30"]) == 0
            assert "fitted on" not in caplog.text
    assert info["dataset"] == "6 images from photos, each cut to its 30x30 px centre (--crop)"
    # 0 skips a stage, as in FitConfig: the prior stays the pretrained one, the decoder trains
    skip = ["fit", str(folder), "-o", str(tmp_path / "no-prior"), *argv[4:]]
    assert main([*skip[:skip.index("--prior-steps") + 1], "0", *skip[skip.index("--prior-steps") + 2:]]) == 0
    tuned = NPDraw.from_pretrained(tmp_path / "no-prior")
    assert all(torch.equal(a, b) for a, b in zip(tuned.prior.state_dict().values(), start.prior.state_dict().values()))
    assert not torch.equal(tuned.decoder.out.weight, start.decoder.out.weight)
    # Without --preset or --from, fit picks the preset by the framed images' size
    photos = tmp_path / "colour"
    photos.mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    assert infer_preset(photos)[0] == "celeba" and infer_preset(photos, 40)[0] == "cifar10"
    # A crop larger than an image, or for images that are not files, is refused; a folder's too-small images are
    # named together
    for i in range(2):
        Image.new("L", (20 + i, 50)).save(folder / f"small{i}.png")
    assert exit_code(["reconstruct", "mnist", str(folder), "--crop", "30", "-o", str(tmp_path / "x.png")]) == 2
    assert "crop=30 px does not fit 2 of the images in" in capsys.readouterr().err
    for i in range(2):
        (folder / f"small{i}.png").unlink()
    for bad, message in [(["reconstruct", "mnist", files[0], "--crop", "40"], "crop=40 px does not fit"),
                         (["fit", str(folder), "-o", str(tmp_path / "big"), "--crop", "40"], "crop=40 px does not fit"),
                         (["reconstruct", "mnist", str(tmp_path / "digits.npz"), "--crop", "20"], "array file"),
        (["fit", str(tmp_path / "digits.npz"), "-o", str(tmp_path / "npz"), "--crop", "20"],
         "--crop applies to image files, and DATA names an array file")]:
        np.savez(tmp_path / "digits.npz", images=np.zeros((2, 28, 28), np.uint8))
        capsys.readouterr()
        assert main([*bad, "-o", str(tmp_path / "x.png")] if bad[0] == "reconstruct" else bad) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_parse_writes_canvases_and_the_latents(tmp_path, digit_files, mnist, mnist_images, capsys):
    output, latents_file = tmp_path / "parse.png", tmp_path / "z.json"
    assert main(["parse", "mnist", str(tmp_path / "digits.npz"), str(digit_files[0]), "-o", str(output),
                 "--json", str(latents_file)]) == 0
    assert capsys.readouterr().out.splitlines() == [str(latents_file), str(output)]  # each file named once
    images = torch.cat([mnist_images[:3], mnist_images[:1]])
    latents = mnist.parse(images)
    document = json.loads(latents_file.read_text())
    assert [record["source"] for record in document["images"]] == [
        f"{tmp_path / 'digits.npz'}[{i}]" for i in range(3)] + [str(digit_files[0])]
    assert [record["ids"] for record in document["images"]] == latents.ids.tolist()
    assert [record["locs"] for record in document["images"]] == latents.locs.tolist()
    assert [record["present"] for record in document["images"]] == latents.present.int().tolist()
    assert document["num_steps"] == len(document["images"][0]["ids"]) == 36
    drawn = cells(output, 8)
    for i in range(4):
        assert np.abs(drawn[2 * i].astype(int) - pixels(images[i:i + 1])[0]).max() <= 1
        assert np.abs(drawn[2 * i + 1].astype(int) - pixels(latents.canvas[i:i + 1])[0]).max() <= 1
    # The parse canvas is the bank's parts placed where the latents say: not a copy of the image.
    assert not np.array_equal(drawn[0], drawn[1]) and drawn[1].max() > 0


def test_a_folder_s_images_are_named_by_file_and_a_limit_reads_only_a_spread_of_them(tmp_path, digit_files,
                                                                                    mnist_images, capsys, caplog):
    folder = tmp_path / "folder"
    folder.mkdir()
    for path in digit_files:
        shutil.copyfile(path, folder / path.name)
    (folder / "later.png").write_bytes(b"not an image")  # sorted after the digits
    # A limit takes every (total // limit)-th file from the first: a folder (or split) sorted by class keeps every
    # class, where the first files would be one class
    with caplog.at_level(logging.WARNING):
        images, labels = load_images(folder, channels=1, size=28, limit=2)
    assert labels == [str(folder / path.name) for path in digit_files[::2]] and not caplog.records  # later.png unread
    assert torch.equal(images.float() / 255, (mnist_images[:3:2] * 255).round() / 255)
    with caplog.at_level(logging.WARNING):
        images, labels = load_images(folder, channels=1, size=28)
    assert len(images) == 3 and "later.png" in caplog.text
    # 3 images: every (3 // 2)-th, the first two
    assert load_images(tmp_path / "digits.npz", channels=1, size=28, limit=2)[1] == [
        f"{tmp_path / 'digits.npz'}[{i}]" for i in (0, 1)]
    for path in (folder, tmp_path / "digits.npz"):
        with pytest.raises(InvalidInputError, match="limit must be a positive integer, got 0"):
            load_images(path, channels=1, size=28, limit=0)
    assert main(["parse", "mnist", str(folder), "-o", str(tmp_path / "p.png"), "--json", str(tmp_path / "z.json")]) == 0
    document = json.loads((tmp_path / "z.json").read_text())
    assert [record["source"] for record in document["images"]] == [str(folder / path.name) for path in digit_files]


def test_info_reports_config_parameters_metrics_and_files(capsys, mnist):
    assert main(["info", "mnist", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    entry = read_manifest()["mnist"]
    assert info["config"] == mnist.config.to_dict()
    assert info["parameters"]["total"]["parameters"] == sum(p.numel() for p in mnist.parameters())
    assert info["parameters"]["bank"] == {"parameters": 0, "buffers": mnist.bank.parts.numel()}
    assert info["metrics"] == entry["metrics"] and info["paper_metrics"] == entry["paper_metrics"]
    assert info["files"] == entry["files"] and "bundled" in info["source"]
    assert main(["info", "mnist"]) == 0
    text = capsys.readouterr().out
    assert f"total: {sum(p.numel() for p in mnist.parameters()):,}" in text
    assert entry["files"]["model.safetensors"]["sha256"] in text and all(metric in text for metric in entry["metrics"])


def test_spread_covers_the_whole_split_whatever_the_count():
    """Every (N // count)-th stopped short of the end when count does not divide N: 6,000 of CIFAR-10's 10,000 test
    images (sorted by class) were its first six classes, and any count above N / 2 was the first count images."""
    labels = torch.arange(10).repeat_interleave(1000)  # a split sorted by class
    for count in (100, 3334, 5001, 6000, 9999):
        picked = spread(labels, count)
        assert len(picked) == count and torch.bincount(picked, minlength=10).min() >= count // 10
    assert torch.equal(spread(labels, 200), labels[::50])  # where count divides N, every (N // count)-th as before
    assert spread(list(range(10)), 4) == [0, 2, 5, 7] and spread(range(3), 5) == range(3)
    assert spread(labels, None) is labels and spread(labels, 10_000) is labels
    for count in (0, -2, 2.5):  # ZeroDivisionError, a reversed slice's ValueError, a float step
        with pytest.raises(InvalidInputError, match="count must be a positive integer"):
            spread(labels, count)


def test_eval_says_when_limit_is_more_than_the_images(tmp_path, mnist_images, caplog):
    np.savez(tmp_path / "few.npz", images=(mnist_images[:4, 0] * 255).round().to(torch.uint8).numpy())
    with caplog.at_level(logging.WARNING):
        assert main(["eval", "mnist", "--data", str(tmp_path / "few.npz"), "--limit", "50", "--num-samples", "1",
                     "-q"]) == 0
    assert "--limit 50" in caplog.text and "holds 4 readable images" in caplog.text


def test_eval_data_expands_the_home_folder_as_the_other_path_options_do(tmp_path, mnist_images, monkeypatch, capsys):
    # --data=~/shared reaches np-draw unexpanded (the shell expands ~ only at a word's start): the shared-data layout
    # was looked for in a folder named '~', and the folder then read as images, which 'holds no readable image files'
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "shared" / "mnist").mkdir(parents=True)
    for name in DATA_FILES["mnist"]["test"]:
        np.savez(tmp_path / "shared" / "mnist" / name,
                 images=(mnist_images[:4, 0] * 255).round().to(torch.uint8).numpy())
    assert main(["eval", "mnist", "--data=~/shared", "--num-samples", "1", "-q"]) == 0
    assert capsys.readouterr().out.startswith("mnist on mnist test, 4 images")


def test_eval_limit_on_a_folder_with_an_unreadable_file_picked_does_not_say_the_folder_holds_fewer(
        tmp_path, mnist_images, caplog):
    # It said "holds 9 readable images" of a folder of 19 readable ones, when one of the 10 files picked was not one
    for i in range(20):
        to_pil(mnist_images[i:i + 1])[0].save(tmp_path / f"{i:02d}.png")
    (tmp_path / "00.png").write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING):
        assert main(["eval", "mnist", "--data", str(tmp_path), "--limit", "10", "--num-samples", "1", "-q"]) == 0
    assert "9 readable images read from" in caplog.text and "holds 9" not in caplog.text


def test_eval_prints_the_table_of_np_draw_metrics_evaluate(tmp_path, mnist_images, capsys):
    from np_draw.metrics import evaluate

    folder = random_model("mnist", seed=1).save_pretrained(tmp_path / "m")
    np.savez(tmp_path / "test.npz", images=(mnist_images[:12, 0] * 255).round().to(torch.uint8).numpy())
    argv = ["eval", str(folder), "--data", str(tmp_path / "test.npz"), "--num-samples", "3", "--num-generated", "10",
            "--json", str(tmp_path / "eval.json"), "-q"]
    assert main(argv) == 0
    table = capsys.readouterr().out
    written = json.loads((tmp_path / "eval.json").read_text())
    expected = evaluate(NPDraw.from_pretrained(folder), (mnist_images[:12] * 255).round() / 255, num_samples=3,
                        num_generated=10, progress=False)
    assert {key: written[key] for key in expected} == pytest.approx(expected, rel=1e-5)
    assert (written["num_generated"], written["seed"]) == (10, 0)  # what reproduces the figures
    assert f"| FID-cnn-mnist (10 samples) | {expected['FID-cnn-mnist']:.3f} |" in table
    assert f"| NLL bound, nats (3 importance samples) | {expected['nll_nats']:.3f} |" in table
    # The paper's protocol for binarised data: binarised samples against the binarised images
    assert main([*argv, "--binarised-fid"]) == 0
    binarised = evaluate(NPDraw.from_pretrained(folder), (mnist_images[:12] * 255).round() / 255, num_samples=3,
                         num_generated=10, binarised_fid=True, progress=False)
    assert json.loads((tmp_path / "eval.json").read_text())["binarised_fid"] is True
    assert (f"| FID-cnn-mnist (10 samples, binarised, against the binarised images) | "
            f"{binarised['FID-cnn-mnist']:.3f} |") in capsys.readouterr().out
    assert exit_code(["eval", str(folder), "--data", str(tmp_path / "absent.npz")]) == 2
    assert "no file or folder at" in capsys.readouterr().err
    # A model folder and the shared data's root: the data set is asked for, not its .npz files read as images
    shared = tmp_path / "shared" / "mnist"
    shared.mkdir(parents=True)
    for name in DATA_FILES["mnist"]["test"]:
        shutil.copyfile(tmp_path / "test.npz", shared / name)
    assert exit_code(["eval", str(folder), "--data", str(shared.parent), "-q"]) == 2
    assert "holds the test split of mnist in the shared-data layout: pass --dataset mnist to score it" in \
        capsys.readouterr().err
    # Only the data sets whose images the model takes are offered (a colour model was offered mnist)
    random_model("cifar10").save_pretrained(tmp_path / "rgb")
    assert exit_code(["eval", str(tmp_path / "rgb"), "--data", str(shared.parent), "-q"]) == 2
    assert "none of them is of the 32x32 RGB images the model" in capsys.readouterr().err


def test_info_of_a_local_folder(tmp_path, capsys, monkeypatch, caplog):
    model = random_model("mnist")
    model.save_pretrained(tmp_path / "tiny")
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in (str(tmp_path / "tiny"), "~/tiny"):
        assert main(["info", name, "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["source"] == "a local folder" and not {"metrics", "dataset", "notes"} & set(info)
    assert info["config"]["encoder_channels"] == 16 and info["dtype"] == "float32"
    # What the card says the weights were made from: a fine-tune names its start in the card's notes
    notes = "fine-tuned from mnist with `np-draw fit`.\n\nA second paragraph."
    model.save_pretrained(tmp_path / "tuned", card={"dataset": "270 images from drawings", "notes": notes,
                                                    "metrics": {"nll": 1.0}})
    assert main(["info", str(tmp_path / "tuned"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["dataset"], info["notes"]) == ("270 images from drawings", notes)
    assert main(["info", str(tmp_path / "tuned")]) == 0
    assert "dataset: 270 images from drawings\nnotes: fine-tuned from mnist" in capsys.readouterr().out
    model.to(torch.bfloat16).save_pretrained(tmp_path / "half")
    with caplog.at_level(logging.WARNING):
        assert main(["info", str(tmp_path / "half")]) == 0
    assert "stored as: bfloat16" in capsys.readouterr().out
    assert not caplog.records  # no advice about running in half precision: info runs nothing


def test_fit_fine_tunes_keeping_the_bank_and_prior_then_resumes(tmp_path, mnist_images, capsys):
    start = random_model("mnist")
    start.save_pretrained(tmp_path / "start")
    data = tmp_path / "data.npz"
    np.savez(data, images=mnist_images[:40].numpy())
    output = tmp_path / "tuned"
    argv = ["fit", str(data), "-o", str(output), "--from", str(tmp_path / "start"), "--keep-prior", "--epochs", "1",
            "--batch-size", "20", "-q"]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == str(output)
    tuned = NPDraw.from_pretrained(output)
    assert torch.equal(tuned.bank.parts, start.bank.parts)
    assert all(torch.equal(a, b) for a, b in zip(tuned.prior.parameters(), start.prior.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(tuned.encoder.parameters(), start.encoder.parameters()))
    history = json.loads((output / "history.json").read_text())
    assert len(history["train"]) == len(history["val_bound"]) == 1 and history["prior_train"] == []
    card = (output / "README.md").read_text()  # the budget that ran, not only the config's
    assert '"prior_rounds": 0' in card and '"rounds": 1' in card
    assert (output / "checkpoints" / "latest.json").is_file()
    # Resuming a finished run changes nothing; with more epochs it trains them; with other options it is refused in
    # one line.
    assert main(argv + ["--resume"]) == 0
    resumed = NPDraw.from_pretrained(output)
    assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), tuned.state_dict().values()))
    assert main(argv + ["--epochs", "2", "--resume"]) == 0
    assert len(json.loads((output / "history.json").read_text())["val_bound"]) == 2
    extended = NPDraw.from_pretrained(output)
    assert not all(torch.equal(a, b) for a, b in zip(extended.decoder.parameters(), tuned.decoder.parameters()))
    capsys.readouterr()
    assert main(argv + ["--epochs", "2", "--batch-size", "10", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "only epochs and steps may differ" in err and err.count("\n") == 1
    # Resumed --from another model, the run would go on with the first one's weights under the second's name
    random_model("mnist", seed=1).save_pretrained(tmp_path / "other")
    assert main([*argv[:4], "--from", str(tmp_path / "other"), *argv[6:], "--epochs", "3", "--resume"]) == 2
    assert "it was started from another trained model (its part bank differs" in capsys.readouterr().err


def test_fit_records_in_the_card_the_steps_that_ran_when_patience_stops_it(tmp_path, mnist_images, capsys):
    """The card's "trained" said the budget (steps=40) for a run that patience stopped after two rounds of 2 steps."""
    data, output = tmp_path / "data.npz", tmp_path / "tuned"
    np.savez(data, images=mnist_images[:40].numpy())
    assert main(["fit", str(data), "-o", str(output), "--from", "mnist", "--keep-prior", "--steps", "40",
                 "--eval-every", "2", "--patience", "1", "--batch-size", "10", "-q"]) == 0
    history = json.loads((output / "history.json").read_text())
    assert history["stopped_early"] and history["steps"] == 40 and len(history["train"]) < 20
    trained = (output / "README.md").read_text().split('"trained": ')[1].split("}")[0] + "}"
    assert json.loads(trained) == {"prior_rounds": 0, "prior_steps": None, "rounds": len(history["train"]),
                                   "steps": 2 * len(history["train"])}
    # The held-out bounds fit measured are the card's metrics, which np-draw info shows ("Not measured." before)
    capsys.readouterr()
    assert main(["info", str(output), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == {
        "held-out bound, nats (one sample), at the start": round(history["val_bound_start"], 3),
        "held-out bound, nats (one sample), kept": round(history["val_bound_kept"], 3)}
    best = history["best_epoch"]
    assert history["val_bound_kept"] == (history["val_bound_start"] if best == -1 else history["val_bound"][best])


def test_fit_validates_on_held_out_images_as_the_python_fit_does(tmp_path, mnist_images, capsys):
    start = random_model("mnist")
    start.save_pretrained(tmp_path / "start")
    np.savez(tmp_path / "data.npz", images=mnist_images[:40].numpy())
    np.savez(tmp_path / "held.npz", images=mnist_images[40:60].numpy())
    argv = ["fit", str(tmp_path / "data.npz"), "-o", str(tmp_path / "tuned"), "--from", str(tmp_path / "start"),
            "--epochs", "1", "--batch-size", "20", "-q"]
    assert main([*argv, "--validation", str(tmp_path / "held.npz")]) == 0
    history = json.loads((tmp_path / "tuned" / "history.json").read_text())
    config = FitConfig.finetune().replace(epochs=1, batch_size=20)
    python = NPDraw.from_pretrained(tmp_path / "start").fit(mnist_images[:40], config, progress=False,
                                                            validation=mnist_images[40:60])
    assert history["val_bound"] == pytest.approx(python.val_bound)
    card = (tmp_path / "tuned" / "README.md").read_text()
    assert '"validation": "' + str(tmp_path / "held.npz") in card
    capsys.readouterr()
    assert main([*argv, "--validation", str(tmp_path / "held.npz"), "--val-fraction", "0.2"]) == 2
    assert "give --validation (held-out images) or --val-fraction (a share of DATA), not both" in capsys.readouterr().err
    assert main([*argv, "--validation", str(tmp_path / "nowhere")]) == 2
    assert "--validation must be a folder of images or an .npz file" in (err := capsys.readouterr().err)
    assert "nowhere': nothing there" in err
    # A held-out folder of no images is named as the --validation folder (the error gave only its path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("not an image")
    assert main([*argv, "--validation", str(tmp_path / "notes")]) == 2
    assert f"--validation folder '{tmp_path / 'notes'}' holds no readable image files" in capsys.readouterr().err


def test_fit_from_a_preset_on_a_folder_of_images(tmp_path, mnist_images):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(to_pil(mnist_images[:24])):
        image.save(folder / f"{i:02d}.png")
    assert main(["fit", str(folder), "-o", str(tmp_path / "model"), "--preset", "mnist", "--epochs", "1",
                 "--prior-epochs", "1", "--batch-size", "24", "-q"]) == 0
    model = NPDraw.from_pretrained(tmp_path / "model")
    assert model.bank.parts.any()  # k-means on the folder's patches
    history = json.loads((tmp_path / "model" / "history.json").read_text())
    assert len(history["prior_train"]) == 1 and len(history["train"]) == 1


@pytest.mark.parametrize("argv, message", [
    (["sample", "mnist", "-n", "0"], "--num-images: must be a positive integer"),
    (["sample", "svhn"], "known"),
    (["sample", "mnist", "-o", "/no/such/folder/grid.png"], "--output"),
    (["sample", "mnist", "--device", "cuda:7" if torch.cuda.is_available() else "cuda"], "--device"),
    (["sample", "mnist", "--device", "gpu"], "must be a torch device such as 'cpu', 'cuda' or 'cuda:1', got 'gpu'"),
    (["sample", "mnist", "--temperature", "0"], "argument --temperature: must be a positive finite number, got '0'"),
    # Outputs are checked before any work
    (["parse", "mnist", "digit.png", "--json", "."], "argument --json: '.' is a folder, not a file"),
    (["sample", "mnist", "-o", "."], "argument -o/--output: '.' is a folder, not a file"),
    (["reconstruct", "mnist", "/no/such/image.png"], "no file or folder"),
    (["parse", "mnist"], "IMAGES"),
    (["fit", "data.npz", "-o", "out", "--from", "mnist", "--preset", "mnist"], "not both"),
    (["fit", "data.npz", "-o", "out", "--val-fraction", "1.5"], "--val-fraction"),
    (["fit", "data.txt", "-o", "out"], "DATA must be"),
    (["info", "np-draw/no such repo"], "known pretrained name"),
    (["eval", "mnist", "--data", "images", "--split", "train"], "--split names a split of a data set, got 'train'"),
    (["eval", "mnist", "--data", "x.npz", "--features", "cnn-mnist", "--inception", "w.pth"],
     "give --features (got 'cnn-mnist') or --inception (got 'w.pth'), not both"),
    (["sample", "mnist", "-n", "1000000000"], "num_images=1,000,000,000 images of 1x28x28 with their latents take"),
    (["eval", "mnist", "--data", ".", "--split", "val"],
     "--split: the mnist data set has no 'val' split; its splits are train, test"),
    (["eval", "mnist", "--data", ".", "--dataset", "cifar10", "--split", "val"], "the cifar10 data set has no 'val' split"),
    # A data set of another size than the model's: a shape error that named no option
    (["eval", "mnist", "--data", ".", "--dataset", "celeba"],
     "--dataset celeba: its images are 64x64 RGB, and the model mnist takes 28x28 grey ones"),
    (["eval", "cifar10", "--data", ".", "--dataset", "celeba"], "pass --dataset cifar10, or give --data image files"),
    # --crop with an array file named the library's argument, crop
    (["reconstruct", "mnist", "x.npz", "--crop", "10"],
     "--crop applies to image files, and IMAGES names an array file, 'x.npz'"),
    (["eval", "mnist", "--data", "x.npz", "--crop", "10"], "--crop applies to image files, and --data names an array"),
    (["fit", "x.npz", "-o", "out", "--max-passes", "inf"],
     "argument --max-passes: must be a positive finite number, got 'inf'"),
    (["demo", "--port", "70000"], "argument --port: must be a port number in [1, 65535], got '70000'"),
    (["demo", "--host", "no such host"], "argument --host: must be a host name or address that resolves"),
    (["paint", "mnist"], "invalid choice"),
    # An unknown option is its subcommand's error, or np-draw's when given before the subcommand
    (["sample", "mnist", "--seeds", "3"], "np-draw sample: error: unrecognized arguments: --seeds 3"),
    (["demo", "--bogus"], "np-draw demo: error: unrecognized arguments: --bogus"),
    (["--bogus", "sample", "mnist"], "np-draw: error: unrecognized arguments: --bogus"),
])
def test_user_errors_are_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert exit_code(argv + (["-q"] if "sample" in argv else [])) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux's /sys, where no file can be made")
def test_an_output_where_no_file_can_be_written_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    # /sys takes no new file, even from root, whom os.access tells that every folder is writable
    monkeypatch.setattr(NPDraw, "from_pretrained", lambda *args, **kwargs: pytest.fail("loaded before -o was checked"))
    assert exit_code(["sample", "mnist", "-q", "-o", "/sys/np-draw-grid.png"]) == 2
    assert "'/sys' is not writable" in capsys.readouterr().err
    assert exit_code(["eval", "mnist", "--data", "x.npz", "--json", "/sys/np-draw.json"]) == 2
    assert "'/sys' is not writable" in capsys.readouterr().err
    if os.geteuid() != 0:  # a folder without write permission, which only root may write into anyway
        (tmp_path / "locked").mkdir(mode=0o555)
        assert exit_code(["sample", "mnist", "-q", "-o", str(tmp_path / "locked" / "grid.png")]) == 2
        assert f"{str(tmp_path / 'locked')!r} is not writable" in capsys.readouterr().err
    # ~ is the home folder, which the shell leaves as it is in --output=~/x, for inputs too
    monkeypatch.setenv("HOME", str(tmp_path))
    assert build_parser().parse_args(["sample", "mnist", "--output=~/home.png"]).output == tmp_path / "home.png"
    args = build_parser().parse_args(["fit", "~/x.npz", "-o", "~/run", "--from", "mnist", "--max-passes", "2.5",
                                      "--validation=~/held"])
    assert (args.data, args.output, args.validation) == (tmp_path / "x.npz", tmp_path / "run", tmp_path / "held")
    assert _fit_config(args).max_passes == 2.5
    # An existing file or folder is checked by opening it, which leaves it as it was
    (tmp_path / "grid.png").write_bytes(b"kept")
    (tmp_path / "model").mkdir()
    assert build_parser().parse_args(["sample", "mnist", "-o", str(tmp_path / "grid.png")]).output.exists()
    assert build_parser().parse_args(["fit", "x.npz", "-o", str(tmp_path / "model")]).output.is_dir()
    assert (tmp_path / "grid.png").read_bytes() == b"kept" and not any((tmp_path / "model").iterdir())


def test_download_checks_its_output_folder_before_fetching_and_names_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("in the way")
    assert main(["download", "mnist", "-o", str(tmp_path / "file" / "model")]) == 2
    assert capsys.readouterr().err.startswith(f"np-draw download: error: --output: cannot write "
                                              f"{str(tmp_path / 'file' / 'model')!r}")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    monkeypatch.setattr(hub, "resolve_pretrained", lambda *args, **kwargs: pytest.fail("fetched before --output"))
    for output, message in [("file", f"--output: {str(tmp_path / 'file')!r} is a file, not a folder"),
                            ("full", f"--output: {str(tmp_path / 'full')!r} exists and is not empty")]:
        assert main(["download", "mnist", "-o", str(tmp_path / output)]) == 2
        assert message in capsys.readouterr().err
    # A folder holding only hidden files (.gitkeep, .DS_Store) takes the copy: none of them is replaced
    monkeypatch.undo()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / ".gitkeep").write_text("")
    assert main(["download", "mnist", "-o", str(kept)]) == 0
    assert (kept / "model.safetensors").is_file() and (kept / ".gitkeep").is_file()


def test_fit_refuses_an_output_folder_holding_other_files_before_any_work(tmp_path, monkeypatch, capsys,
                                                                         digit_files):
    # A project's own README.md and config.json were replaced by the model card and the model's config
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("my notes")
    monkeypatch.setattr(NPDraw, "from_pretrained", lambda *args, **kwargs: pytest.fail("loaded before -o was checked"))
    assert main(["fit", str(tmp_path / "digits.npz"), "-o", str(project), "--from", "mnist", "-q"]) == 2
    err = capsys.readouterr().err
    assert f"--output: {str(project)!r} holds files that are not an np-draw model or run (README.md)" in err
    assert err.count("\n") == 1 and (project / "README.md").read_text() == "my notes"
    # The folder of DATA itself (here the digits' folder) is refused the same way
    assert main(["fit", str(tmp_path), "-o", str(tmp_path), "--from", "mnist", "-q"]) == 2
    assert "holds files that are not an np-draw model or run (digit0.png, digit1.png, digit2.png, ...)" in \
        capsys.readouterr().err
    assert not (tmp_path / "checkpoints").exists()


def test_fit_takes_an_output_folder_holding_only_hidden_files(tmp_path, monkeypatch, capsys, digit_files):
    # A folder kept in git by a .gitkeep, or one macOS's Finder has opened (.DS_Store), was refused as "holding files
    # that are not an np-draw model"; fit writes no hidden file, so none of them is replaced
    def reached(*args, **kwargs):
        raise InvalidInputError("past the --output check")

    monkeypatch.setattr(NPDraw, "from_pretrained", reached)
    kept = tmp_path / "kept"
    (kept / ".git").mkdir(parents=True)
    (kept / ".gitkeep").touch()
    (kept / ".DS_Store").write_bytes(bytes(16))
    assert main(["fit", str(tmp_path / "digits.npz"), "-o", str(kept), "--from", "mnist", "-q"]) == 2
    assert capsys.readouterr().err == "np-draw fit: error: past the --output check\n"
    # A hidden file beside another one is not named as the reason
    (kept / "notes.txt").write_text("mine")
    assert main(["fit", str(tmp_path / "digits.npz"), "-o", str(kept), "--from", "mnist", "-q"]) == 2
    assert "holds files that are not an np-draw model or run (notes.txt), and fit" in capsys.readouterr().err


def test_fit_writes_again_into_an_empty_folder_or_an_earlier_runs(tmp_path, digit_files):
    def fit(output):
        return main(["fit", str(tmp_path / "digits.npz"), "-o", str(output), "--from", "mnist", "--steps", "1",
                     "--prior-steps", "1", "-q"])

    (tmp_path / "empty").mkdir()
    assert fit(tmp_path / "empty") == 0 and (tmp_path / "empty" / "model.safetensors").is_file()
    assert fit(tmp_path / "empty") == 0  # an earlier run's folder, written again as documented
    NPDraw.from_pretrained("mnist").save_pretrained(tmp_path / "saved")  # a model folder, without checkpoints
    assert fit(tmp_path / "saved") == 0


def test_eval_names_an_inception_file_that_is_not_weights_before_loading_anything(tmp_path, monkeypatch, capsys):
    Image.new("L", (8, 8)).save(tmp_path / "photo.png")
    monkeypatch.setattr(NPDraw, "from_pretrained", lambda *args, **kwargs: pytest.fail("loaded before --inception"))
    # A picture read as pytorch-fid's weights raised pickle's UnpicklingError: a traceback and exit code 1
    assert exit_code(["eval", "mnist", "--data", "x.npz", "--inception", str(tmp_path / "photo.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"np-draw eval: error: --inception: {tmp_path / 'photo.png'} is not a readable PyTorch "
                          "weights file") and err.count("\n") == 1
    assert exit_code(["eval", "mnist", "--data", "x.npz", "--inception", str(tmp_path / "absent.pth")]) == 2
    assert "error: --inception: no Inception-v3 FID weights at" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(select, "poll"), reason="a closed pipe is told from other errors by poll")
@pytest.mark.parametrize("argv", [["info", "mnist"], ["info", "mnist", "--json"], ["download", "mnist"]])
def test_output_into_a_pipe_whose_reader_has_gone_is_not_an_error(argv):
    # np-draw info mnist | head: the reader gone printed "np-draw info: error: [Errno 32] Broken pipe" (exit code 2),
    # or, for output written when Python exits, "Exception ignored ... BrokenPipeError" (exit code 120)
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "np_draw.cli", *argv], check=False, stdout=write,
                              stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    finally:
        os.close(write)
    assert done.returncode == 141 and "rror" not in done.stderr and "Exception" not in done.stderr, done.stderr


def test_download_of_a_bundled_name_says_nothing_was_downloaded(tmp_path, capsys, caplog):
    # It printed the package's folder alone, as if the Hugging Face cache had been filled for an offline machine
    caplog.set_level(logging.INFO, "np_draw")
    assert main(["download", "mnist"]) == 0
    assert capsys.readouterr().out.strip() == str(hub.resolve_pretrained("mnist"))
    assert "mnist is bundled in the np-draw package, so nothing was downloaded" in caplog.text
    caplog.clear()
    assert main(["download", "mnist", "--output", str(tmp_path / "copy")]) == 0
    assert "nothing was downloaded" not in caplog.text and (tmp_path / "copy" / "model.safetensors").is_file()


def test_a_damaged_npz_or_image_is_a_user_error(tmp_path, capsys):
    np.savez(tmp_path / "wrong.npz", pictures=np.zeros((2, 28, 28), np.uint8))
    (tmp_path / "note.png").write_text("not a picture")
    for path, message in [("wrong.npz", "has no 'images' array"), ("note.png", "not a readable image")]:
        assert main(["parse", "mnist", str(tmp_path / path), "-o", str(tmp_path / "p.png")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("command", ["sample", "reconstruct", "parse", "fit", "info", "download"])
def test_every_command_has_help_and_device_where_a_model_is_loaded(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: np-draw {command}")
    assert ("--device" in text) == (command != "download")
    assert "PNG" not in text  # the suffix of -o chooses the picture format
    # Every command that loads images or trains can be quiet
    assert ("--quiet" in text) == (command not in ("info", "download"))


def test_fit_interrupted_by_ctrl_c_says_how_to_resume_and_resumes_exactly(tmp_path, mnist_images, monkeypatch,
                                                                          capsys, caplog):
    random_model("mnist").save_pretrained(tmp_path / "start")
    np.savez(tmp_path / "data.npz", images=mnist_images[:30].numpy())

    def argv(folder: str) -> list[str]:
        return ["fit", str(tmp_path / "data.npz"), "-o", str(tmp_path / folder), "--from", str(tmp_path / "start"),
                "--epochs", "2", "--batch-size", "15", "-q"]

    assert main(argv("straight")) == 0
    real_fit = NPDraw.fit

    def ctrl_c_after_the_first_epoch(self, *args, **kwargs):
        def callback(epoch, history):
            raise KeyboardInterrupt
        return real_fit(self, *args, callback=callback, **kwargs)

    monkeypatch.setattr(NPDraw, "fit", ctrl_c_after_the_first_epoch)
    assert main(argv("stopped")) == 130
    assert capsys.readouterr().err == "np-draw fit: interrupted; run the same command with --resume to continue\n"
    assert not (tmp_path / "stopped" / "model.safetensors").exists()
    monkeypatch.setattr(NPDraw, "fit", real_fit)
    with caplog.at_level(logging.INFO, logger="np_draw"):
        assert main(argv("stopped") + ["--resume"]) == 0
    assert "resumed at stage vae" in caplog.text  # from the checkpoint, not a fresh start with the same seed
    straight, resumed = NPDraw.from_pretrained(tmp_path / "straight"), NPDraw.from_pretrained(tmp_path / "stopped")
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_image_files_are_turned_upright_as_their_exif_orientation_says_before_any_crop(tmp_path, suffix):
    """A phone photo is stored sideways with EXIF Orientation 6 (turn 90 degrees clockwise to view); every loader
    reads files through open_image, and --crop frames the picture as a viewer shows it."""
    stored = np.zeros((20, 40), np.uint8)  # 40 px wide as stored: 20 wide and 40 tall as shown
    stored[:8, :8] = 255  # a white corner at the stored top left: at the shown top right
    exif = Image.Exif()
    exif[0x0112] = 6
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(stored).save(folder / f"phone{suffix}", exif=exif, quality=100)
    upright = np.rot90(stored, k=-1)  # clockwise
    Image.fromarray(upright).save(tmp_path / f"upright{suffix}", quality=100)
    tolerance = 0 if suffix == ".png" else 16  # JPEG's loss

    def close(image: np.ndarray, expected: np.ndarray) -> bool:
        return image.shape == expected.shape and np.abs(image.astype(int) - expected).max() <= tolerance

    assert close(np.asarray(open_image(folder / f"phone{suffix}")), upright)
    assert close(np.asarray(open_image(folder / f"phone{suffix}", crop=20)), upright[10:30])  # the shown centre
    want = load_images(tmp_path / f"upright{suffix}", channels=1, size=20)[0]
    for path in (folder / f"phone{suffix}", folder):
        got = load_images(path, channels=1, size=20)[0]
        assert close(got[0, 0].numpy(), want[0, 0].numpy())
    assert close(image_source(folder, channels=1, size=20).read(torch.tensor([0]))[0, 0].mul(255).round().numpy(),
                 want[0, 0].numpy())


def test_fit_checkpoint_every_takes_0_as_fitconfig_does(tmp_path):
    """--checkpoint-every sets FitConfig.checkpoint_every, whose 0 means a checkpoint after each epoch only
    (docs/training.md); the option refused 0 as "must be a positive integer"."""
    args = build_parser().parse_args(["fit", "x.npz", "-o", str(tmp_path / "run"), "--checkpoint-every", "0"])
    assert _fit_config(args).checkpoint_every == 0


def test_a_limit_on_an_npz_keeps_only_the_images_it_reads(tmp_path):
    # spread's view of every 10th image (a limit that divides N) held all 1,000 images of the file in memory
    np.savez(tmp_path / "many.npz", images=np.zeros((1000, 28, 28), np.uint8))
    images, labels = load_images(tmp_path / "many.npz", channels=1, size=28, limit=100)
    assert len(images) == len(labels) == 100 and labels[1] == f"{tmp_path / 'many.npz'}[10]"
    assert images.untyped_storage().nbytes() == images.numel() * images.element_size()


def test_outputs_that_are_an_input_or_each_other_are_refused_before_any_work(tmp_path, digit_files, capsys):
    image, npz = str(digit_files[0]), str(tmp_path / "digits.npz")
    before = Path(image).read_bytes(), Path(npz).read_bytes()
    for argv, message in [
            (["reconstruct", "mnist", image, "-o", image], f"--output: {image!r} is one of the IMAGES read"),
            (["parse", "mnist", str(tmp_path), "-o", image], f"--output: {image!r} is one of the IMAGES read"),
            (["parse", "mnist", image, "--json", image], f"--json: {image!r} is one of the IMAGES read"),
            (["parse", "mnist", image, "-o", str(tmp_path / "p.png"), "--json", str(tmp_path / "p.png")],
             "--json and --output name the same file"),
            (["eval", "mnist", "--data", npz, "--json", npz], f"--json: {npz!r} is one of the --data"),
    ]:
        assert main([*argv, "-q"]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.splitlines()) == 1, err
    assert (Path(image).read_bytes(), Path(npz).read_bytes()) == before
    assert not (tmp_path / "p.png").exists()


def test_a_failed_picture_write_leaves_an_existing_file_as_it_was(tmp_path, capsys, monkeypatch):
    from np_draw import images

    monkeypatch.setattr(images, "_LARGEST", {})  # no check before the encoder: WebP's own refusal is the failure
    picture = tmp_path / "grid.webp"
    assert main(["sample", "mnist", "-n", "2", "-o", str(picture), "-q"]) == 0
    kept = picture.read_bytes()
    # 600 images in one column: taller than WebP's 16383 px
    assert main(["sample", "mnist", "-n", "600", "--nrow", "1", "-o", str(picture), "-q"]) == 2
    # Pillow's words vary by version ("exceeds WebP limit", "encoding error 5"): the file is named, and kept
    assert f"cannot write {str(picture)!r}" in capsys.readouterr().err
    assert picture.read_bytes() == kept and sorted(p.name for p in tmp_path.iterdir()) == ["grid.webp"]


def test_a_grid_too_large_for_its_format_is_refused_before_the_encoder_runs(tmp_path, capfd):
    # libjpeg printed "Maximum supported image dimension is 65500 pixels" on stderr itself, beside np-draw's line
    from np_draw.errors import InvalidInputError
    from np_draw.images import save_grid

    picture = tmp_path / "tall.jpg"
    with pytest.raises(InvalidInputError, match=r"a JPEG picture is at most 65,500 px a side, and the grid is 10 x "
                                                r"65,538 px: save it as PNG"):
        save_grid(torch.zeros(8192, 1, 6, 6), picture, nrow=1, padding=2)
    assert not picture.exists() and capfd.readouterr().err == ""
    assert save_grid(torch.zeros(3, 1, 6, 6), picture, nrow=1).is_file()  # small ones as before


def test_download_does_not_create_a_mistyped_parent_folder(tmp_path, capsys):
    output = tmp_path / "typo" / "deeper" / "model"
    assert main(["download", "mnist", "-o", str(output)]) == 2
    assert "the folder" in capsys.readouterr().err and not (tmp_path / "typo").exists()


@pytest.mark.parametrize(("options", "message"), [
    (["--epochs", "1", "--eval-every", "7"],
     r"--eval-every 7: no effect with every stage measured in epochs \(--epochs, --prior-epochs or --keep-prior\)"),
    (["--from", "mnist", "--epochs", "1", "--prior-epochs", "1", "--eval-every", "7", "--max-passes", "2.0"],
     "--eval-every 7 and --max-passes 2.0: no effect.*give --steps or --prior-steps, or drop --eval-every and --max"),
    (["--from", "mnist", "--keep-prior", "--epochs", "2", "--max-passes", "3.0"], "drop --max-passes$"),
])
def test_fit_refuses_step_options_when_every_stage_is_in_epochs(options, message):
    """--eval-every and --max-passes with no stage in steps changed nothing, without a word."""
    with pytest.raises(InvalidInputError, match=message):
        _fit_config(build_parser().parse_args(["fit", "x.npz", "-o", "out", *options]))


def test_fit_takes_step_options_when_a_stage_is_in_steps():
    """The prior's steps are enough, and a fine-tune's default 600 steps too."""
    def config(*options: str):
        return _fit_config(build_parser().parse_args(["fit", "x.npz", "-o", "out", *options]))

    assert config("--epochs", "1", "--prior-steps", "5", "--eval-every", "7").eval_every == 7
    assert config("--from", "mnist", "--prior-epochs", "1", "--max-passes", "2.0").max_passes == 2.0
