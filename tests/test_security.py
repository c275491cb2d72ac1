"""Loading a model reads JSON and safetensors only (docs/security.md): pickles beside the weights are never
opened, a config with unknown keys is refused, and the library's sources unpickle nothing but the user's own
Inception weights, with torch's restricted loader."""

from __future__ import annotations

import ast
import pickle
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from np_draw import InvalidInputError, NPDraw
from tests.conftest import random_model

PACKAGE = Path(__file__).resolve().parent.parent / "np_draw"


class _Payload:
    """Unpickling this opens (creates) the file ``marker``: proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _forbid(*args, **kwargs):
    raise AssertionError("a pickle was read while loading a model")


@pytest.fixture
def no_pickle(monkeypatch):
    """Any unpickling (pickle or torch.load) fails the test."""
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, _forbid)
    monkeypatch.setattr(torch, "load", _forbid)


def test_pickles_beside_the_weights_are_ignored(tmp_path, no_pickle) -> None:
    model = random_model("mnist")
    folder = model.save_pretrained(tmp_path / "model")
    marker = tmp_path / "pwned"
    for name in ("pytorch_model.bin", "model.pt", "model.pkl", "training_args.bin"):
        (folder / name).write_bytes(pickle.dumps(_Payload(marker)))
    loaded = NPDraw.from_pretrained(folder)
    assert not marker.exists()
    assert all(torch.equal(value, loaded.state_dict()[key]) for key, value in model.state_dict().items())


def test_config_with_unexpected_keys_is_refused(tmp_path, no_pickle) -> None:
    folder = random_model("mnist").save_pretrained(tmp_path / "model")
    config = (folder / "config.json").read_text()
    (folder / "config.json").write_text(config.replace("{", '{"auto_map": "evil.Model", ', 1))
    with pytest.raises(InvalidInputError, match=r"unknown config keys \['auto_map'\]"):
        NPDraw.from_pretrained(folder)


def _load_calls() -> list[tuple[str, str, dict]]:
    """Every ``torch.load``, ``np.load`` and ``pickle.*`` call in the package: (file, call, constant keywords)."""
    calls = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in ("torch", "np", "pickle")
                    and (node.func.attr == "load" or node.func.value.id == "pickle")):
                keywords = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)}
                calls.append((path.name, f"{node.func.value.id}.{node.func.attr}", keywords))
    return calls


def test_sources_unpickle_only_the_users_inception_weights() -> None:
    calls = _load_calls()
    assert [c for c in calls if c[1] == "torch.load"] == [
        ("inception.py", "torch.load", {"map_location": "cpu", "weights_only": True})]
    assert not [c for c in calls if c[1].startswith("pickle.")]
    numpy_loads = [c for c in calls if c[1] == "np.load"]
    assert numpy_loads and all(c[2].get("allow_pickle") is False for c in numpy_loads), numpy_loads
    assert not any(re.search(r"^\s*(import|from) (pickle|dill|cloudpickle)\b", path.read_text(), re.MULTILINE)
                   for path in PACKAGE.glob("*.py"))


def test_a_link_planted_in_a_checkpoint_folder_is_not_written_through(tmp_path) -> None:
    # A checkpoint folder handed over for a resume holding .latest.json.tmp -> a file of the user's: the next save
    # wrote the pointer into that file
    from np_draw.checkpoint import load_checkpoint, save_checkpoint

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".latest.json.tmp").symlink_to(victim)
    save_checkpoint(tmp_path / "run", "step-00000001", {"model": {"w": torch.zeros(2)}}, {"step": 1})
    assert victim.read_text() == "precious"
    assert not (tmp_path / "run" / "latest.json").is_symlink()
    assert load_checkpoint(tmp_path / "run")[1] == {"step": 1}


def test_a_card_of_many_training_headings_is_read_quickly(tmp_path) -> None:
    # A Hub repo's README.md of 20,000 "## Training" lines and no JSON block took 25 s (quadratic in the lines)
    from np_draw.hub import card_facts

    (tmp_path / "README.md").write_text("## Training\n" * 20_000)
    start = time.perf_counter()
    assert card_facts(tmp_path) == {}
    assert time.perf_counter() - start < 5  # 25 s before; a guard against the hang, not a speed target
    (tmp_path / "README.md").write_text("## Training\n\ntext\n\n```json\n{\"crop\": 5}\n```\n")
    assert card_facts(tmp_path)["training"] == {"crop": 5}


@pytest.mark.parametrize("name, revision", [("evil/model@../../../../escaped", None),
                                            ("evil/model", "../../../../escaped"), ("evil/model", "main/.hidden"),
                                            # Paths on Windows, where a backslash divides a path too and a path
                                            # with a drive replaces the cache's in the join
                                            ("evil/model", "C:\\escaped"), ("evil/model", "\\\\host\\share\\escaped"),
                                            ("evil/model", "main\\.hidden")])
def test_a_revision_that_is_a_path_out_of_the_cache_is_refused(tmp_path, monkeypatch, name, revision) -> None:
    # huggingface_hub writes a branch's commit to <cache>/refs/<revision>: a mirror answering "../../x" had it
    # write a file outside the cache. Refused before any request.
    from np_draw.hub import resolve_pretrained

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInputError, match=r"no '\.\.', '\\' or ':', no empty part and no part starting "):
        resolve_pretrained(name, revision=revision, cache_dir=tmp_path / "hf")
    assert not list(tmp_path.rglob("escaped"))


def test_a_feature_statistics_count_of_thousands_of_digits_is_refused(tmp_path) -> None:
    from safetensors.torch import save_file

    from np_draw import CorruptWeightsError
    from np_draw.metrics import FeatureStatistics

    save_file({"mean": torch.zeros(2, dtype=torch.float64), "covariance": torch.eye(2, dtype=torch.float64)},
              tmp_path / "stats.safetensors", metadata={"count": "9" * 5000, "features": "cnn-mnist"})
    with pytest.raises(CorruptWeightsError, match=r"count must be a whole number, got '9+'\.\.\. \(5000 characters\)"):
        FeatureStatistics.load(tmp_path / "stats.safetensors")


def _npz(path: Path, member: str, shape: str, data: bytes = b"") -> Path:
    """An .npz archive of one member whose .npy header declares ``shape`` (uint8) over ``data``."""
    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data)
    return path


def test_an_npz_header_declaring_more_than_the_archive_holds_is_refused_before_allocating(tmp_path) -> None:
    # 20 GiB declared in a 250-byte file: NumPy makes the array before reading it (a MemoryError, or the memory)
    from np_draw.images import load_images

    path = _npz(tmp_path / "x.npz", "images.npy", f"({20 * 2**30 // 784}, 28, 28)")
    with pytest.raises(InvalidInputError, match=r"declares \(27391373, 28, 28\) uint8 \(21,474,836,432 bytes\), more "
                                                r"than the 0 bytes the archive holds"):
        load_images(path, channels=1, size=28)
    # A member that is no .npy array, which NumPy returned as its bytes (an AttributeError after)
    with zipfile.ZipFile(tmp_path / "raw.npz", "w") as archive:
        archive.writestr("images", b"hello")
    with pytest.raises(InvalidInputError, match="its 'images' member is no .npy array"):
        load_images(tmp_path / "raw.npz", channels=1, size=28)
    # A true array still loads, compressed or not
    _npz(tmp_path / "ok.npz", "images.npy", "(2, 28, 28)", bytes(2 * 28 * 28))
    assert load_images(tmp_path / "ok.npz", channels=1, size=28)[0].shape == (2, 1, 28, 28)


def test_a_link_planted_as_the_fit_history_is_replaced_not_written_through(tmp_path, mnist_images) -> None:
    # An earlier run's --output folder holding history.json -> a file of the user's: np-draw fit wrote its history
    # into that file
    from np_draw.cli import main

    random_model("mnist").save_pretrained(tmp_path / "start")
    np.savez(tmp_path / "data.npz", images=mnist_images[:20].numpy())
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "history.json").symlink_to(victim)
    assert main(["fit", str(tmp_path / "data.npz"), "-o", str(tmp_path / "run"), "--from", str(tmp_path / "start"),
                 "--steps", "1", "--prior-steps", "1", "-q"]) == 0
    assert victim.read_text() == "precious"
    assert not (tmp_path / "run" / "history.json").is_symlink()
