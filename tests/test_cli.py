import pytest
import torch
from PIL import Image

from np_draw import NPDraw
from np_draw.cli import main
from np_draw.hub import read_manifest


def bundled_names() -> list[str]:
    return [name for name, entry in read_manifest().items() if entry.get("bundled")]


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


@pytest.mark.parametrize("argv, message", [
    (["sample", "mnist", "-n", "0"], "num_images must be a positive integer"),
    (["sample", "svhn"], "known"),
    (["sample", "mnist", "-o", "/no/such/folder/grid.png"], "--output"),
])
def test_sample_command_user_errors_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv + ["-q"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
