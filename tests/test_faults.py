"""Faults: a process SIGKILLed in the middle of writing a checkpoint leaves the previous one loadable, also when
the same checkpoint name is saved twice.

(A ``fit`` SIGKILLed and resumed is tests/test_training.py's
``test_a_run_killed_with_sigkill_and_resumed_ends_with_the_same_weights``; four processes filling an empty Hugging
Face cache at once is tests/test_hub.py's ``test_four_processes_loading_at_once_...``.)
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from np_draw import CorruptWeightsError, UnwritablePathError
from np_draw import checkpoint as checkpoint_module
from np_draw.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parent.parent
# Saves checkpoints forever, each holding its step number in every element of a tensor big enough (16 MB) that a
# kill lands inside a save most of the time; prints each step once its save has returned.
SAVER = """
import sys, torch
from np_draw.checkpoint import save_checkpoint
for step in range(1, 10**9):
    weights = {"w": torch.full((4_000_000,), float(step)), "b": torch.full((7,), float(step))}
    save_checkpoint(sys.argv[1], f"step-{step:08d}", {"model": weights}, {"step": step})
    print(step, flush=True)
"""


@pytest.mark.parametrize("delay", [0.0, 0.013, 0.031, 0.057])
def test_sigkill_during_a_checkpoint_save_leaves_the_previous_one_loadable(tmp_path, delay: float) -> None:
    process = subprocess.Popen([sys.executable, "-c", SAVER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                               text=True)
    try:
        saved = [int(process.stdout.readline()) for _ in range(2)]  # two saves done: a third is under way
        time.sleep(delay)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    tensors, state = load_checkpoint(tmp_path)
    step = state["step"]
    assert step >= saved[-1]  # never older than a save that returned
    assert torch.equal(tensors["model"]["w"], torch.full((4_000_000,), float(step)))
    assert torch.equal(tensors["model"]["b"], torch.full((7,), float(step)))


def test_a_save_killed_part_way_leaves_nothing_behind_once_another_save_completes(tmp_path) -> None:
    """A kill during a save leaves its .partial folder; a later save under another name (the next step) left it on
    disk for good, however large."""
    save_checkpoint(tmp_path, "step-00000001", {"model": {"w": torch.zeros(3)}}, {"step": 1})
    stale = tmp_path / ".step-00000002.partial"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half a file")
    save_checkpoint(tmp_path, "step-00000003", {"model": {"w": torch.ones(3)}}, {"step": 3})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["latest.json", "step-00000003"]
    tensors, state = load_checkpoint(tmp_path)
    assert state["step"] == 3 and torch.equal(tensors["model"]["w"], torch.ones(3))


def test_saving_the_same_name_twice_never_removes_the_checkpoint_in_force(tmp_path) -> None:
    first = save_checkpoint(tmp_path, "step-00000005", {"model": {"w": torch.zeros(3)}}, {"step": 5})
    second = save_checkpoint(tmp_path, "step-00000005", {"model": {"w": torch.ones(3)}}, {"step": 5})
    assert second != first and not first.exists()
    tensors, _ = load_checkpoint(tmp_path)
    assert torch.equal(tensors["model"]["w"], torch.ones(3))


def test_a_damaged_checkpoint_names_the_file_and_a_missing_one_is_not_skipped(tmp_path) -> None:
    folder = save_checkpoint(tmp_path, "step-00000001", {"model": {"w": torch.zeros(3)}, "rng": {"r": torch.zeros(2)},
                                                         "optimizer": {"0.exp_avg": torch.zeros(3)}},
                             {"step": 1, "optimizer": {"param_groups": [], "scalars": {}}})
    (folder / "optimizer.safetensors").unlink()
    with pytest.raises(CorruptWeightsError, match=r"optimizer.safetensors.*is missing"):
        load_checkpoint(tmp_path)
    save_file({}, folder / "optimizer.safetensors")
    (folder / "model.safetensors").write_bytes(b"abc")
    with pytest.raises(CorruptWeightsError, match=r"step-00000001/model.safetensors"):
        load_checkpoint(tmp_path)
    (folder / "state.json").write_text("[1]")
    with pytest.raises(CorruptWeightsError, match=r"step-00000001/state.json.*a JSON object is expected"):
        load_checkpoint(tmp_path)
    # A pointer edited to name something outside the checkpoint folder is not followed
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    save_checkpoint(outside, "step-00000002", {"model": {"w": torch.ones(3)}}, {"step": 2})
    for latest, files in ((f"../{outside.name}/step-00000002", ["model"]), ("step-00000001", ["../model"]),
                          (str(outside / "step-00000002"), ["model"]), ("..", ["model"])):
        (tmp_path / "latest.json").write_text(json.dumps({"latest": latest, "files": files}))
        with pytest.raises(CorruptWeightsError, match=r"latest.json.*each must be a file or folder name inside"):
            load_checkpoint(tmp_path)
    (tmp_path / "latest.json").write_text("")
    with pytest.raises(CorruptWeightsError, match=r"latest.json"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("failing", ["tensors", "pointer"])
def test_a_checkpoint_that_cannot_be_written_leaves_the_one_in_force_and_nothing_of_itself(tmp_path, monkeypatch,
                                                                                           failing: str) -> None:
    """A full disk while the tensors are written was safetensors' own SafetensorError, and its half-written folder
    stayed, filling the disk further until the next save; one while the pointer is written left the new folder."""
    from safetensors import SafetensorError

    save_checkpoint(tmp_path, "step-00000001", {"model": {"w": torch.zeros(3)}}, {"step": 1})
    if failing == "tensors":
        def disk_full(tensors, path, metadata=None):
            Path(path).write_bytes(b"half")
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

        monkeypatch.setattr(checkpoint_module, "save_file", disk_full)
    else:
        def disk_full(source, target):
            if Path(target).name == "latest.json":
                raise OSError(errno.ENOSPC, "No space left on device")
            os.rename(source, target)

        monkeypatch.setattr(checkpoint_module.os, "replace", disk_full)
    with pytest.raises(UnwritablePathError, match=f"cannot write the checkpoint step-00000002 into '{tmp_path}': "
                                                  ".*No space left on device"):
        save_checkpoint(tmp_path, "step-00000002", {"model": {"w": torch.ones(3)}}, {"step": 2})
    monkeypatch.undo()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["latest.json", "step-00000001"]
    tensors, state = load_checkpoint(tmp_path)
    assert state["step"] == 1 and torch.equal(tensors["model"]["w"], torch.zeros(3))


def test_a_checkpoint_state_nested_too_deep_to_parse_is_a_damaged_checkpoint(tmp_path) -> None:
    folder = save_checkpoint(tmp_path, "step-00000001", {"model": {"w": torch.zeros(3)}}, {"step": 1})
    (folder / "state.json").write_text("[" * 100_000 + "]" * 100_000)  # a RecursionError before
    with pytest.raises(CorruptWeightsError, match=r"step-00000001/state.json.*maximum recursion depth"):
        load_checkpoint(tmp_path)
