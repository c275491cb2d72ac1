"""Every case of the error catalogue (``tests/error_catalogue.py``): the exception and message at the Python API,
exit code 2 and one line without a traceback at the command line; and docs/errors.md is the catalogue's page."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from np_draw import NPDraw, NPDrawConfig, NPDrawError
from np_draw.cli import main
from np_draw.errors import InvalidInputError, InvalidTypeError
from np_draw.images import (
    as_image_tensor,
    from_pil_images,
    image_source,
    load_folder_images,
    load_images,
    open_image,
)
from tests.conftest import random_model
from tests.error_catalogue import API_CASES, CLI_CASES, DOC, ApiCase, CliCase, render


@pytest.fixture(scope="module")
def model() -> NPDraw:
    return random_model("mnist")


@pytest.mark.parametrize("case", API_CASES, ids=lambda case: case.case)
def test_api_error(case: ApiCase, model: NPDraw, tmp_path) -> None:
    with pytest.raises(case.error) as caught:
        case.run(model, tmp_path)
    assert isinstance(caught.value, NPDrawError)
    assert case.message in str(caught.value)


def run_cli(argv: list[str]) -> int:
    """np-draw's exit code for ``argv``, also when argparse rejects an option (it exits from inside the parser)."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda case: case.case)
def test_cli_error(case: CliCase, model: NPDraw, tmp_path, capsys) -> None:
    folder = model.save_pretrained(tmp_path / "model")
    code = run_cli(case.argv(folder, tmp_path))
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert case.message in err


def test_folder_skips_unreadable_files_with_a_warning(tmp_path, caplog) -> None:
    Image.new("L", (28, 28), 255).save(tmp_path / "good.png")
    (tmp_path / "album").mkdir()
    (tmp_path / "album" / "notes.txt").write_text("not an image")
    (tmp_path / "cut.png").write_bytes((tmp_path / "good.png").read_bytes()[:30])
    with caplog.at_level(logging.WARNING, logger="np_draw.data"):
        images = load_folder_images(tmp_path, channels=1, size=28)
    assert images.shape == (1, 1, 28, 28) and images.dtype == torch.uint8
    # Named by their path inside the folder: in nested folders a bare name can be several files
    assert "skipped 2 files" in caplog.text and "album/notes.txt" in caplog.text and "cut.png" in caplog.text


@pytest.mark.parametrize("method", ["encode", "decode", "reconstruct"])
def test_batches_give_the_one_pass_result(model: NPDraw, method: str) -> None:
    images = torch.rand(11, 1, 28, 28)
    if method == "encode":
        def run(**kw):
            return model.encode(images, sample=True, generator=torch.Generator().manual_seed(1), **kw)
        whole, batched = run(), run(batch_size=4)
        for field in ("ids", "locs", "present", "canvas"):
            assert torch.equal(getattr(whole, field), getattr(batched, field)), field
        assert torch.allclose(whole.logits.ids, batched.logits.ids, atol=1e-5)
        return
    if method == "decode":
        canvas = model.parse(images).canvas
        def run(**kw):
            return model.decode(canvas, sample_pixels=True, generator=torch.Generator().manual_seed(1), **kw)
    else:
        def run(**kw):
            return model.reconstruct(images, **kw)
    whole, batched = run(), run(batch_size=4)
    assert whole.shape == batched.shape == images.shape
    assert torch.allclose(whole, batched, atol=1e-6)


def test_docs_errors_is_the_catalogue() -> None:
    assert DOC.read_text() == render(), "docs/errors.md is stale: run python -m tests.error_catalogue"


def test_flags_are_python_or_numpy_bools(model: NPDraw) -> None:
    """A flag must be a bool: a string such as "no" would count as True. NumPy's bools are bools, and a config keeps
    them as Python's, so that it still writes as JSON."""
    generator = torch.Generator().manual_seed(0)
    assert model.sample(2, generator, progress=np.False_).images.shape == (2, 1, 28, 28)
    config = NPDrawConfig.from_dict({**model.config.to_dict(), "binarize": np.True_})
    assert config.binarize is True and '"binarize": true' in config.to_json()
    for call in (lambda: model.sample(2, progress="no"), lambda: model.decode(torch.zeros(1, 1, 28, 28),
                                                                              sample_pixels=1)):
        with pytest.raises(InvalidTypeError, match=r"(progress|sample_pixels) must be True or False, got ('no'|1)"):
            call()


def test_a_dataset_item_the_model_cannot_take_is_named_by_its_own_shape(model: NPDraw) -> None:
    items = torch.utils.data.TensorDataset(torch.rand(3, 32, 32))
    for channels, size in ((3, 32), (1, 28)):
        with pytest.raises(InvalidInputError, match=rf"a dataset item of shape \(32, 32\) is one grey image; this "
                                                    rf"model takes \({channels}, {size}, {size}\) images"):
            as_image_tensor(items, channels=channels, size=size)
    assert as_image_tensor(items, channels=1, size=32).shape == (3, 1, 32, 32)


def _bad_npz(kind: str, path) -> None:
    """An .npz file that is not a readable archive of a numeric 'images' array."""
    images = np.arange(50 * 28 * 28).reshape(50, 28, 28).astype(np.uint8)
    if kind == "objects":
        np.savez(path, images=np.array([np.zeros((28, 28)), "not an image"], dtype=object))
    elif kind == "strings":
        np.savez(path, images=np.array(["a", "b"]))
    elif kind == "text":
        path.write_text("images: 28x28 digits\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "npy":
        np.save(path.with_suffix(".npy"), images)
        path.with_suffix(".npy").rename(path)
    else:
        np.savez_compressed(path, images=images)
        data = bytearray(path.read_bytes())
        if kind == "truncated":
            del data[len(data) // 2:]
        else:  # "corrupt": the compressed pixels overwritten, the zip's directory intact
            data[200:260] = bytes(60)
        path.write_bytes(bytes(data))


NPZ_KINDS = ["truncated", "corrupt", "text", "empty", "objects", "strings", "npy"]


@pytest.mark.parametrize("kind", NPZ_KINDS)
def test_an_npz_that_is_not_a_readable_archive_of_numeric_images_is_one_error(kind: str, model: NPDraw, tmp_path,
                                                                              capsys) -> None:
    """Not zipfile's, zlib's or NumPy's traceback, nor NumPy's advice to load an object array unsafely: an error
    naming the file, in Python and in one line at the command line, for reconstruct and for fit (whose preset is
    chosen by the array's shape)."""
    bad = tmp_path / "bad.npz"
    _bad_npz(kind, bad)
    expected = f"{str(bad)!r} is not a readable .npz archive of a numeric 'images' array"
    with pytest.raises(InvalidInputError, match="not a readable .npz archive") as caught:
        load_images(bad, channels=1, size=28)
    assert expected in str(caught.value) and "allow_pickle" not in str(caught.value)
    if kind == "objects":
        assert "Python objects (object arrays are never loaded)" in str(caught.value)
    folder = model.save_pretrained(tmp_path / "model")
    for argv in (["reconstruct", str(folder), str(bad), "-o", str(tmp_path / "out.png")],
                 ["fit", str(bad), "-o", str(tmp_path / "fitted")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
        assert expected in err and "allow_pickle" not in err and "pickle.load" not in err


def test_image_files_above_pillow_s_limit_are_named_with_the_limit_and_no_raw_warning(model: NPDraw, tmp_path,
                                                                                       monkeypatch, caplog,
                                                                                       capsys) -> None:
    """Pillow warns for an image above PIL.Image.MAX_IMAGE_PIXELS and refuses one above twice it: the first is
    read with a log line, the second skipped in a folder (an error as a file) with the two sizes and the way to
    read it."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("L", (8, 8), 255).save(folder / "small.png")  # 64 pixels
    Image.new("L", (12, 12), 255).save(folder / "mid.png")  # 144: above the limit, below twice it
    Image.new("L", (30, 30), 255).save(folder / "huge.png")  # 900: above twice the limit
    with warnings.catch_warnings(record=True) as raw, caplog.at_level(logging.WARNING, logger="np_draw.images"):
        warnings.simplefilter("always")
        assert load_folder_images(folder, channels=1, size=8).shape == (2, 1, 8, 8)  # mid.png and small.png
        assert open_image(folder / "mid.png").size == (12, 12)
        with pytest.raises(InvalidInputError) as caught:
            open_image(folder / "huge.png")
    assert not [warning for warning in raw if issubclass(warning.category, Image.DecompressionBombWarning)]
    assert "DecompressionBomb" not in caplog.text and "DecompressionBomb" not in str(caught.value)
    assert ("skipped 1 file that is more than twice Pillow's limit of 100 pixels (PIL.Image.MAX_IMAGE_PIXELS)"
            in caplog.text and "huge.png (900 pixels)" in caplog.text)
    assert "1 file is larger than Pillow's limit of 100 pixels" in caplog.text and "mid.png (12x12)" in caplog.text
    assert f"{str(folder / 'mid.png')!r} is 12x12 = 144 pixels, larger than Pillow's limit of 100" in caplog.text
    assert "raise PIL.Image.MAX_IMAGE_PIXELS" in caplog.text
    assert (f"{str(folder / 'huge.png')!r} is 900 pixels, more than twice Pillow's limit of 100 pixels "
            "(PIL.Image.MAX_IMAGE_PIXELS)" in str(caught.value) and "raise PIL.Image.MAX_IMAGE_PIXELS" in
            str(caught.value))
    model_folder = model.save_pretrained(tmp_path / "model")
    capsys.readouterr()
    assert main(["reconstruct", str(model_folder), str(folder / "huge.png"), "-o", str(tmp_path / "out.png")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "more than twice Pillow's limit of 100 pixels" in err, err
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # raised: read
    assert open_image(folder / "huge.png").size == (30, 30)


@pytest.mark.parametrize("size", [(0, 0), (0, 28), (28, 0)])
def test_an_image_with_a_zero_side_is_refused_by_name_and_size(size: tuple[int, int], model: NPDraw) -> None:
    width, height = size
    message = rf"must be an image of at least 1x1 px, got one of {width}x{height} px"
    with pytest.raises(InvalidInputError, match=rf"image 0 {message}"):
        model.encode([Image.new("L", size)])
    with pytest.raises(InvalidInputError, match=rf"image 1 {message}"):
        from_pil_images([Image.new("L", (28, 28)), Image.new("L", size)], channels=1, size=28)
    with pytest.raises(InvalidInputError, match=rf"images\[0\] {message}"):  # a dataset item, read lazily
        image_source(_PilItems([Image.new("L", size)]), channels=1, size=28).read(torch.tensor([0]))


class _PilItems(torch.utils.data.Dataset):
    def __init__(self, images: list[Image.Image]) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Image.Image:
        return self.images[i]
