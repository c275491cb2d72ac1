"""Loading a model reads JSON and safetensors only (docs/security.md): pickles beside the weights are never
opened, a config with unknown keys is refused, and the library's sources unpickle nothing but the user's own
Inception weights, with torch's restricted loader."""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

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
