"""Every case of the error catalogue (``tests/error_catalogue.py``): the exception and message at the Python API,
exit code 2 and one line without a traceback at the command line; and docs/errors.md is the catalogue's page."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from np_draw import NPDraw, NPDrawConfig, NPDrawError
from np_draw.cli import main
from np_draw.errors import InvalidInputError, InvalidTypeError
from np_draw.images import as_image_tensor, load_folder_images
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
