"""Pretrained weights: the manifest, model cards, and loading from folders, bundles and a Hub on 127.0.0.1.

Everything that talks to the Hub runs in a fresh Python process (``tests.hub_server.client``), with ``HF_ENDPOINT``,
``HF_HOME`` and ``HF_HUB_CACHE`` set before ``huggingface_hub`` is imported, against the local server of
``tests/hub_server.py``; the test manifest (``NP_DRAW_MANIFEST``) points at tiny random models published there.
"""

from __future__ import annotations

import base64
import errno
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file

from np_draw import CorruptWeightsError, NPDraw, NPDrawConfig, WeightsUnavailableError, hub
from np_draw.manifest import MANIFEST_ENV, PACKAGE_MANIFEST, describe_files, read_manifest, sha256_file
from tests.conftest import random_model
from tests.hub_server import HubServer, fingerprint

ROOT = Path(__file__).resolve().parent.parent
REPO = "np-draw-test/mnist"
CLIENT = "import json, sys; from tests.hub_server import client; print(json.dumps(client(json.loads(sys.argv[1]))))"
# huggingface_hub waits 1 + 2 + 4 + 8 + 8 s between its retries of an unreachable server; the test skips the waits.
NO_BACKOFF = "import time; time.sleep = lambda seconds: None; "


@dataclass
class World:
    """A running local Hub with tiny models published on it, a manifest naming them, and an empty cache."""

    server: HubServer
    manifest: Path
    home: Path
    commits: dict[str, str]
    prints: dict[str, str]
    folder: Path

    @property
    def cache(self) -> Path:
        return self.home / "hub"

    def env(self, endpoint: str | None = None, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("HF_", "HUGGING_FACE_")) and key != MANIFEST_ENV}
        env.update(HF_ENDPOINT=endpoint or self.server.url, HF_HOME=str(self.home), HF_HUB_CACHE=str(self.cache),
                   HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_TELEMETRY="1",
                   NP_DRAW_MANIFEST=str(self.manifest), **extra)
        return env

    def run(self, code: str, *args: str, endpoint: str | None = None,
            **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=self.env(endpoint, **extra),
                              capture_output=True, text=True, timeout=120, check=False)

    def load(self, *calls: str | tuple, endpoint: str | None = None, prefix: str = "", **extra: str) -> list[dict]:
        """``from_pretrained`` of each call ("name" or (name, kwargs)) in one fresh process: fingerprints or errors."""
        payload = [{"args": [c]} if isinstance(c, str) else {"args": [c[0]], "kwargs": c[1]} for c in calls]
        done = self.run(prefix + CLIENT, json.dumps(payload), endpoint=endpoint, **extra)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.splitlines()[-1])


def entry(repo_id: str, revision: str, files: dict, bundled: bool = False) -> dict:
    return {"repo_id": repo_id, "revision": revision, "bundled": bundled, "files": files, "dataset": "random",
            "license": "mit", "paper": "arXiv:2106.13435", "metrics": {}}


@pytest.fixture
def world(tmp_path):
    a = random_model("mnist", seed=0).save_pretrained(tmp_path / "a")
    b = random_model("mnist", seed=1).save_pretrained(tmp_path / "b")
    weights = (a / "model.safetensors").read_bytes()
    with HubServer() as server:
        commits = {"a": server.publish(REPO, a), "b": server.publish(REPO, b)}
        for damage in ("corrupt", "truncated", "short", "cut"):
            commits[damage] = server.publish(f"np-draw-test/{damage}", a)
        flipped = weights[:-1] + bytes([weights[-1] ^ 0xFF])
        server.serve(commits["corrupt"], "model.safetensors", flipped)
        server.serve(commits["truncated"], "model.safetensors", weights[:1000])
        server.serve(commits["short"], "model.safetensors", weights[:1000], head_size=len(weights))
        server.serve(commits["cut"], "model.safetensors", weights[:1000], head_size=len(weights), cut=True)
        manifest = tmp_path / "weights" / "manifest.json"
        shutil.copytree(a, manifest.parent / "tiny-bundled")
        files = describe_files(a)
        models = {
            "tiny": entry(REPO, commits["a"], files),
            "tiny-bundled": entry(REPO, commits["a"], files, bundled=True),
            "tiny-unpublished": entry("np-draw-test/unpublished", None, {}),
            **{f"tiny-{damage}": entry(f"np-draw-test/{damage}", commits[damage], files)
               for damage in ("corrupt", "truncated", "short", "cut")},
        }
        manifest.write_text(json.dumps({"format_version": 1, "models": models}))
        yield World(server, manifest, tmp_path / "hf", commits,
                    {"a": fingerprint(random_model("mnist", seed=0)), "b": fingerprint(random_model("mnist", seed=1))},
                    a)


def test_the_manifest_ships_in_the_package_and_the_top_level_copy_is_identical():
    assert (ROOT / "weights_manifest.json").read_bytes() == PACKAGE_MANIFEST.read_bytes()
    models = read_manifest(PACKAGE_MANIFEST)
    assert set(models) == {"mnist", "omniglot", "cifar10", "celeba"}
    for name, model in models.items():
        assert model["repo_id"] == f"np-draw/np-draw-{name}"
        assert all(model[key] for key in ("dataset", "license", "paper")) and isinstance(model["metrics"], dict)


def test_an_unpublished_name_says_the_weights_are_not_available_yet_and_how_to_get_them(world, monkeypatch):
    # Every name of the package's manifest ships, so the unpublished entry is the test manifest's.
    monkeypatch.setenv(MANIFEST_ENV, str(world.manifest))
    with pytest.raises(WeightsUnavailableError, match="'tiny-unpublished' are not available yet.*Train one"):
        NPDraw.from_pretrained("tiny-unpublished")


def test_an_unknown_name_lists_the_known_names(monkeypatch, tmp_path):
    monkeypatch.delenv(MANIFEST_ENV, raising=False)
    with pytest.raises(ValueError, match="'mnsit' is not a model folder.*celeba, cifar10, mnist, omniglot"):
        NPDraw.from_pretrained("mnsit")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file, not a model folder"):
        NPDraw.from_pretrained(tmp_path / "file")


def test_save_pretrained_writes_a_model_card_and_the_folder_loads_back(tmp_path):
    model = random_model("cifar10")
    folder = model.save_pretrained(tmp_path / "m", card={"dataset": "CIFAR-10 train", "metrics": {"bpd": 5.5},
                                                         "notes": "a test", "repo_id": "me/m"})
    card = (folder / "README.md").read_text()
    metadata = ModelCard.load(folder / "README.md").data
    assert metadata.license == "mit" and metadata.library_name == "np-draw" and "np-draw" in metadata.tags
    assert metadata.pipeline_tag == "unconditional-image-generation"
    body = card.split("---\n")[2]
    for text in ("CIFAR-10 train", "| bpd | 5.5 |", "a test", 'NPDraw.from_pretrained("me/m")', "32x32 RGB",
                 "Xiaohui Zeng, Raquel Urtasun", "NP-DRAW: A Non-Parametric", "UAI 2021", "arXiv:2106.13435",
                 "@inproceedings{zeng2021npdraw"):
        assert text in body
    assert fingerprint(NPDraw.from_pretrained(folder)) == fingerprint(model)
    with pytest.raises(ValueError, match="revision='main' was given with the local folder"):
        NPDraw.from_pretrained(folder, revision="main")
    with pytest.raises(ValueError, match=r"card has unknown keys \['datset'\]"):
        model.save_pretrained(tmp_path / "n", card={"datset": "x"})
    training = {"git_commit": "abc123", "seed": 0, "data_sha256": {"cifar10/train_jpegbytes.npz": "e5c1"}}
    card = (model.save_pretrained(tmp_path / "t", card={"training": training}) / "README.md").read_text()
    assert json.loads(card.split("## Training")[1].split("```json\n")[1].split("```")[0]) == training
    with pytest.raises(TypeError, match=r"card\['training'\] must be JSON-serialisable"):
        model.save_pretrained(tmp_path / "u", card={"training": {"when": object()}})
    assert set(describe_files(folder)) == {"config.json", "model.safetensors", "README.md"}
    model.save_pretrained(folder, card={"dataset": "CIFAR-10 test"})  # saving again writes a fresh card
    assert "CIFAR-10 test" in (folder / "README.md").read_text() and "a test" not in (folder / "README.md").read_text()


def test_save_pretrained_checks_the_card_before_writing_and_does_not_push(tmp_path):
    from np_draw import InvalidInputError

    model = random_model("mnist")
    with pytest.raises(InvalidInputError, match="card has unknown keys"):
        model.save_pretrained(tmp_path / "bad", card={"datset": "MNIST"})
    assert not (tmp_path / "bad").exists()
    with pytest.raises(InvalidInputError, match=r"push_to_hub=True\) is not supported"):
        model.save_pretrained(tmp_path / "push", push_to_hub=True, repo_id="me/model")
    with pytest.raises(InvalidInputError, match=r"config=...\) must be None or the model's own config"):
        model.save_pretrained(tmp_path / "push", config=NPDrawConfig.preset("omniglot"))
    with pytest.raises(InvalidInputError, match=r"model_card_kwargs must be \{'card': ...\} and not given with card"):
        model.save_pretrained(tmp_path / "push", card={}, model_card_kwargs={"card": {}})
    assert not (tmp_path / "push").exists()
    # What huggingface_hub's push_to_hub passes
    folder = model.save_pretrained(tmp_path / "mixin", config=model.config, model_card_kwargs={"card": {"notes": "pushed by the mixin"}})
    assert "pushed by the mixin" in ModelCard.load(folder / "README.md").text


def test_a_save_that_fails_part_way_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    # A full disk when config.json is written: the new weights must not be left beside the old config.
    folder = random_model("mnist").save_pretrained(tmp_path / "m")
    before = describe_files(folder)
    other = NPDraw(NPDrawConfig.preset("mnist", num_parts=20))

    def disk_full(config, path=None):
        Path(path).write_text("{")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(NPDrawConfig, "to_json", disk_full)
    with pytest.raises(OSError, match="No space left"):
        other.save_pretrained(folder)
    assert describe_files(folder) == before  # the weights, the config and the card
    assert sorted(path.name for path in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    monkeypatch.undo()
    assert NPDraw.from_pretrained(folder).config.num_parts == 50


def _assert_a_failed_save_leaves(folder, before, model, monkeypatch):
    """Saving ``model`` into ``folder`` fails for a full disk (as the patches in ``monkeypatch`` make it), and the
    folder keeps its files as ``before`` (describe_files), with nothing left beside them."""
    from np_draw import UnwritablePathError

    with pytest.raises(UnwritablePathError, match="No space left"):
        model.save_pretrained(folder)
    monkeypatch.undo()
    assert describe_files(folder) == before
    assert sorted(path.name for path in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]


def test_a_save_whose_renames_fail_part_way_puts_back_the_files_it_replaced(tmp_path, monkeypatch):
    # The second rename fails (a full disk, a quota): the weights already renamed into place were left beside the old
    # config, a folder that no longer loaded.
    from np_draw import model_files

    folder = random_model("mnist").save_pretrained(tmp_path / "m")
    before = describe_files(folder)
    renames = []

    def second_fails(source, target):
        renames.append(target)
        if len(renames) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        os.rename(source, target)

    monkeypatch.setattr(model_files.os, "replace", second_fails)
    _assert_a_failed_save_leaves(folder, before, random_model("mnist", num_parts=20), monkeypatch)
    assert NPDraw.from_pretrained(folder).config.num_parts == 50


def test_a_save_on_a_file_system_without_hard_links_that_cannot_copy_the_old_files_leaves_no_copy(tmp_path,
                                                                                                   monkeypatch):
    # Where hard links fail, the files a save replaces are copied first: a copy cut short by a full disk stayed
    # beside them as a hidden .old file (of the size of the weights)
    from np_draw import model_files

    folder = random_model("mnist").save_pretrained(tmp_path / "m")
    before = describe_files(folder)

    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    def disk_full(source, target, **kwargs):
        Path(target).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model_files.os, "link", no_links)
    monkeypatch.setattr(model_files.shutil, "copy2", disk_full)
    _assert_a_failed_save_leaves(folder, before, random_model("mnist", seed=1), monkeypatch)


def test_a_save_gives_its_files_the_umask_s_permissions_without_clearing_the_umask_meanwhile(tmp_path, monkeypatch):
    # Reading the umask by setting it to 0 and back left a moment in which another thread's new files were
    # world-writable
    umask = os.umask(0o027)
    os.umask(umask)
    masks = []
    monkeypatch.setattr(os, "umask", lambda mask: masks.append(mask) or umask)
    folder = random_model("mnist").save_pretrained(tmp_path / "m")
    monkeypatch.undo()
    assert masks == []
    for name in ("config.json", "model.safetensors", "README.md"):
        assert (folder / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_full_disk_while_the_weights_are_written_is_an_unwritable_path_error_naming_the_file(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    from np_draw import UnwritablePathError, model_files

    folder = random_model("mnist").save_pretrained(tmp_path / "m")
    before = describe_files(folder)

    def disk_full(tensors, path, metadata=None):
        Path(path).write_bytes(b"half")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(model_files, "save_file", disk_full)
    with pytest.raises(UnwritablePathError, match=f"cannot write '{folder / 'model.safetensors'}'.*No space left"):
        random_model("mnist", seed=1).save_pretrained(folder)
    assert describe_files(folder) == before
    assert sorted(path.name for path in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]


def test_a_model_whose_config_was_changed_after_it_was_built_is_not_saved(tmp_path):
    # save_pretrained wrote the changed config beside weights it does not fit (or a value from_pretrained refuses),
    # over a folder that loaded
    from np_draw import ConfigMismatchError, InvalidInputError

    model = random_model("mnist")
    folder = model.save_pretrained(tmp_path / "m")
    before = describe_files(folder)
    model.config.num_parts = 40
    with pytest.raises(ConfigMismatchError, match=r"cannot save the model: its config, changed since the model was "
                                                  r"built, no longer fits its weights: bank.parts has shape "
                                                  r"\[50, 1, 5, 5\] in the model, the config makes it \[40, 1, 5, 5\]"):
        model.save_pretrained(folder)
    model.config.num_parts, model.config.binarize = 50, "no"
    with pytest.raises(InvalidInputError, match="is no longer valid: binarize must be True or False, got 'no'"):
        model.save_pretrained(folder)
    assert describe_files(folder) == before
    model.config.binarize, model.config.empty_threshold = True, np.float32(0.25)  # a valid change is saved
    assert NPDraw.from_pretrained(model.save_pretrained(folder)).config.empty_threshold == 0.25


def test_a_save_over_the_folder_while_it_is_read_loads_one_model_not_a_mix(tmp_path, monkeypatch):
    # Another process's save_pretrained replaced the files between the config's read and the weights' opening: the
    # old config beside the new weights was refused as a mismatch (or, when both files were mid-rename, a raw
    # RuntimeError from safetensors' mapping).
    from np_draw import model_files

    folder = random_model("mnist").save_pretrained(tmp_path / "m")
    other = random_model("mnist", seed=1, num_parts=20)
    opened = model_files.safe_open

    def saved_meanwhile(path, **kwargs):
        if not saves:
            saves.append(other.save_pretrained(folder))
        return opened(path, **kwargs)

    saves: list = []
    monkeypatch.setattr(model_files, "safe_open", saved_meanwhile)
    assert fingerprint(NPDraw.from_pretrained(folder)) == fingerprint(other)
    assert len(saves) == 1


def test_a_config_asking_for_tensors_too_large_to_exist_is_refused_without_allocating(tmp_path):
    # The prior's position encoding was computed on the CPU while from_pretrained built its meta-device skeleton: a
    # width of 2^40 tried to allocate terabytes (a RuntimeError), a 28000-pixel canvas took a minute and 15 GB.
    from np_draw import ConfigMismatchError

    folder = random_model("mnist").save_pretrained(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "prior": {**config["prior"], "hidden_size": 2**40}}))
    with pytest.raises(ConfigMismatchError, match=f"the weights in {folder} do not match their config: it asks for "
                                                  "tensors too large to build"):
        NPDraw.from_pretrained(folder)
    with torch.device("meta"):
        skeleton = NPDraw(NPDrawConfig.preset("mnist", image_size=280, canvas_size=280, grid_size=56))
    assert skeleton.prior.position.device.type == "meta"


@pytest.mark.parametrize("metadata", ["license: mit: [", "license: !!python/object/apply:os.system ['true']",
                                      "license: " + "[" * 3000 + "]" * 3000])
def test_a_model_card_whose_metadata_cannot_be_read_inherits_no_licence_and_the_model_loads(tmp_path, metadata):
    # The card is for people: YAML that does not parse made from_pretrained fail with yaml's own error
    model = random_model("mnist")
    folder = model.save_pretrained(tmp_path / "m")
    (folder / "README.md").write_text(f"---\n{metadata}\n---\n# A card edited by hand\n")
    loaded = NPDraw.from_pretrained(folder)
    assert loaded.card_licence == {} and fingerprint(loaded) == fingerprint(model)


def test_strict_false_loads_what_matches_and_warns_about_the_rest(tmp_path, caplog):
    model = random_model("mnist")
    folder = model.save_pretrained(tmp_path / "m")
    state = load_file(folder / "model.safetensors")
    del state["bank.parts"]
    state["extra.weight"] = torch.zeros(1)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(ValueError, match=r"missing keys \['bank.parts'\], unexpected keys \['extra.weight'\]"):
        NPDraw.from_pretrained(folder)
    with caplog.at_level(logging.WARNING, logger="np_draw"):
        loaded = NPDraw.from_pretrained(folder, strict=False, dtype=torch.float64)
    assert "missing keys ['bank.parts'], unexpected keys ['extra.weight']" in caplog.text
    assert loaded.dtype == torch.float64


def test_bundled_weights_are_verified_before_loading(world, monkeypatch):
    monkeypatch.setenv(MANIFEST_ENV, str(world.manifest))
    assert fingerprint(NPDraw.from_pretrained("tiny-bundled")) == world.prints["a"]
    weights = world.manifest.parent / "tiny-bundled" / "model.safetensors"
    genuine = weights.read_bytes()
    weights.write_bytes(genuine[:-1] + bytes([genuine[-1] ^ 1]))
    with pytest.raises(CorruptWeightsError, match="bundled model.safetensors of 'tiny-bundled'.*its sha256 is"):
        NPDraw.from_pretrained("tiny-bundled")
    weights.write_bytes(genuine[:-10])
    with pytest.raises(CorruptWeightsError, match=f"its size is {len(genuine) - 10} bytes, expected {len(genuine)}"):
        NPDraw.from_pretrained("tiny-bundled")
    assert not world.server.requests  # a bundled name never asks the Hub


def test_a_token_goes_with_every_request_to_the_hub(world):
    assert world.load((REPO, {"token": "hf_np_draw_test_token"}))[0] == {"fingerprint": world.prints["b"]}
    assert world.server.requests
    for request in world.server.requests:
        headers = {key.lower(): value for key, value in request.headers.items()}
        assert headers.get("authorization") == "Bearer hf_np_draw_test_token", request.path


def test_download_then_offline_then_with_the_server_stopped(world):
    first = world.load("tiny", REPO)
    assert first == [{"fingerprint": world.prints["a"]}, {"fingerprint": world.prints["b"]}]
    snapshot = world.cache / "models--np-draw-test--mnist" / "snapshots" / world.commits["a"]
    assert sha256_file(snapshot / "model.safetensors") == describe_files(world.folder)["model.safetensors"]["sha256"]
    asked = len(world.server.requests)

    offline = world.load("tiny", REPO, "np-draw-test/never-downloaded", HF_HUB_OFFLINE="1")
    assert offline[:2] == first
    assert offline[2]["error"] == "WeightsUnavailableError" and "HF_HUB_OFFLINE is set" in offline[2]["message"]
    assert len(world.server.requests) == asked  # offline means no request at all

    world.server.stop()
    assert world.load("tiny", REPO) == first


def test_hf_hub_offline_set_after_import_is_honoured(world):
    # A notebook sets os.environ after huggingface_hub was imported, which reads the variable only then: without
    # np-draw reading it again, a load from the cache asked the Hub (and retried an unreachable one for ~23 s).
    first = world.load(REPO)
    asked = len(world.server.requests)
    later = "import os, np_draw.hub; os.environ['HF_HUB_OFFLINE'] = '1'; "
    offline = world.load(REPO, "np-draw-test/never-downloaded", prefix=later)
    assert offline[0] == first[0]
    assert offline[1]["error"] == "WeightsUnavailableError" and "HF_HUB_OFFLINE is set" in offline[1]["message"]
    assert len(world.server.requests) == asked


def test_card_facts_reads_metrics_holding_a_pipe_or_a_line_break_and_skips_rows_edited_out_of_shape(tmp_path):
    """A '|' in a metric's value made it part of the name (and another column on the Hub), a line break ended the
    table, and a row of one cell (a card edited by hand) raised ValueError in every command that loads the folder."""
    metrics = {"a|b": 1.5, "FID": "12.3 | 14.1 (two seeds)", "note": "two\nlines", "steps": 3, "odd": "nan"}
    random_model("mnist").save_pretrained(tmp_path, card={"metrics": metrics})
    assert hub.card_facts(tmp_path)["metrics"] == {"a|b": 1.5, "FID": "12.3 | 14.1 (two seeds)",
                                                   "note": "two lines", "steps": 3, "odd": "nan"}
    card = tmp_path / "README.md"
    card.write_text(card.read_text().replace("| steps | 3 |", "| steps |").replace("| note | two lines |",
                                                                                  "| note | two lines |  "))
    assert hub.card_facts(tmp_path)["metrics"] == {"a|b": 1.5, "FID": "12.3 | 14.1 (two seeds)",
                                                   "note": "two lines", "odd": "nan"}


def test_force_download_with_hf_hub_offline_set_names_offline_mode(tmp_path, monkeypatch):
    # np-draw turns HF_HUB_OFFLINE into local_files_only=True, which huggingface_hub's refusal then blamed
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match=r"force_download=True\): HF_HUB_OFFLINE is set"):
        NPDraw.from_pretrained("np-draw-test/never-downloaded", cache_dir=tmp_path, force_download=True)


def test_four_processes_loading_at_once_into_an_empty_cache_all_get_the_verified_weights(world):
    # huggingface_hub locks each file while it downloads; np-draw must not read a half-written or unverified copy.
    env = world.env()
    payload = json.dumps([{"args": ["tiny"]}])
    processes = [subprocess.Popen([sys.executable, "-c", CLIENT, payload], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert all(process.returncode == 0 for process in processes), [err for _, err in outputs]
    assert [json.loads(out.splitlines()[-1]) for out, _ in outputs] == [[{"fingerprint": world.prints["a"]}]] * 4
    snapshot = world.cache / "models--np-draw-test--mnist" / "snapshots" / world.commits["a"]
    assert describe_files(snapshot) == describe_files(world.folder)  # the model card too


def test_revisions_are_pinned(world):
    a, b = world.prints["a"], world.prints["b"]
    results = world.load("tiny", ("tiny", {"revision": world.commits["b"]}), REPO, f"{REPO}@{world.commits['a']}",
                         (REPO, {"revision": world.commits["a"]}), (REPO, {"revision": "no-such-branch"}),
                         "np-draw-test/absent")
    assert [r.get("fingerprint") for r in results[:5]] == [a, b, b, a, a]
    assert "has no revision 'no-such-branch'" in results[5]["message"]
    assert "has no model repo 'np-draw-test/absent'" in results[6]["message"]
    # The manifest's name is resolved at its pinned commit, never through a branch.
    assert world.server.received("HEAD", f"/{REPO}/resolve/{world.commits['a']}/")


def test_corrupted_bytes_are_rejected_every_time_until_force_download_fetches_them_again(world):
    [result] = world.load("tiny-corrupt")
    assert result["error"] == "CorruptWeightsError"
    assert "does not match the weights manifest: its sha256 is" in result["message"]
    assert "nothing was loaded" in result["message"]
    assert "force_download=True (`np-draw download tiny-corrupt --force-download`)" in result["message"]

    # Loaded by its repo id, outside the manifest: the cache names the weights by the sha256 the Hub gave (their
    # ETag), which the damaged bytes do not have; on every load, not only the first
    for _ in range(2):
        [by_repo] = world.load("np-draw-test/corrupt")
        assert by_repo["error"] == "CorruptWeightsError" and "model.safetensors of np-draw-test/corrupt at revision " \
            "main is damaged: its sha256 is" in by_repo["message"]

    world.server.served.clear()  # the server mends its ways
    # The bad copy stays in the cache (its blob may be another revision's too), and is never loaded from there.
    assert world.load("tiny-corrupt")[0]["error"] == "CorruptWeightsError"
    assert world.load(("tiny-corrupt", {"force_download": True}), "tiny-corrupt") == \
        [{"fingerprint": world.prints["a"]}] * 2


def test_truncated_downloads_are_rejected(world):
    truncated, short, cut = world.load("tiny-truncated", "tiny-short", "tiny-cut")
    # Served whole but cut: the size the manifest records tells.
    assert truncated["error"] == "CorruptWeightsError"
    assert f"its size is 1000 bytes, expected {(world.folder / 'model.safetensors').stat().st_size}" in \
        truncated["message"]
    assert world.load("tiny-truncated")[0]["error"] == "CorruptWeightsError"  # and never loaded from the cache
    # Announced whole, sent cut: the download itself fails and leaves nothing behind.
    assert short["error"] == "WeightsUnavailableError" and "could not download model.safetensors" in short["message"]
    # The connection closed before the announced length: the HTTP client's own error (not an OSError from
    # huggingface_hub 1.0 on) is the same clear error
    assert cut["error"] == "WeightsUnavailableError" and "could not download model.safetensors" in cut["message"]
    snapshot = world.cache / "models--np-draw-test--short" / "snapshots" / world.commits["short"]
    assert not (snapshot / "model.safetensors").exists()


def test_the_server_down_with_an_empty_cache_says_how_to_get_the_weights(world):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result, forced = world.load("tiny", ("tiny", {"force_download": True}), endpoint=down, prefix=NO_BACKOFF)
    assert result["error"] == "WeightsUnavailableError"
    for text in (f"the Hub at {down} could not be reached", "np-draw download tiny", "HF_ENDPOINT",
                 "local folder holding config.json and model.safetensors"):
        assert text in result["message"]
    assert forced["error"] == "WeightsUnavailableError" and "again (force_download=True)" in forced["message"]


def test_publish_weights_uploads_a_bundled_folder_as_it_is_and_pins_its_commit(world):
    script = ("import runpy, sys; sys.argv = ['publish_weights.py', *sys.argv[1:]]; "
              "runpy.run_path('scripts/publish_weights.py', run_name='__main__')")
    done = world.run(script, "--name", "tiny-bundled", "--pin", "--token", "hf_publish")
    assert done.returncode == 0, done.stderr
    commit = json.loads(done.stdout.splitlines()[-1])["commit"]
    assert world.server.branches[(REPO, "main")] == commit
    assert read_manifest(world.manifest)["tiny-bundled"]["revision"] == commit  # pinned in the manifest in use
    assert world.load((REPO, {"revision": commit})) == [{"fingerprint": world.prints["a"]}]  # the bundled files
    (world.manifest.parent / "tiny-bundled" / "README.md").write_text("edited")
    refused = world.run(script, "--name", "tiny-bundled")
    assert refused.returncode != 0 and "does not hold the files the manifest records" in refused.stderr


def test_push_to_hub_uploads_the_folder_and_it_loads_back(world, tmp_path):
    code = """if True:
        import json
        from np_draw import NPDraw
        from tests.conftest import random_model
        from tests.hub_server import fingerprint
        main = random_model("mnist", seed=2).push_to_hub("me/pushed", token="hf_secret", card={"dataset": "digits"})
        dev = random_model("mnist", seed=3).push_to_hub("me/pushed", revision="dev", token="hf_secret")
        print(json.dumps([main, dev, fingerprint(NPDraw.from_pretrained("me/pushed@" + main)),
                          fingerprint(NPDraw.from_pretrained("me/pushed", revision="dev"))]))
    """
    done = world.run(code)
    assert done.returncode == 0, done.stderr
    main, dev, main_print, dev_print = json.loads(done.stdout.splitlines()[-1])
    assert main_print == fingerprint(random_model("mnist", seed=2))
    assert dev_print == fingerprint(random_model("mnist", seed=3))

    # A push to a branch asks for the repo first itself, to create the branch in it.
    creates = world.server.received("POST", "/api/repos/create")
    assert creates and all(json.loads(create.body)["name"] == "pushed"
                           and create.headers["authorization"] == "Bearer hf_secret" for create in creates)
    assert world.server.received("POST", "/api/models/me/pushed/branch/dev")
    assert world.server.branches[("me/pushed", "main")] == main and world.server.branches[("me/pushed", "dev")] == dev
    # The card on a branch loads that branch (it named the repo alone, whose default branch holds another model)
    assert 'NPDraw.from_pretrained("me/pushed@dev")' in world.server.commits[dev]["README.md"].decode()
    # The bytes that arrived are the files save_pretrained writes.
    expected = random_model("mnist", seed=2).save_pretrained(tmp_path / "local", card={"repo_id": "me/pushed",
                                                                                        "dataset": "digits"})
    [commit, _] = world.server.received("POST", "/api/models/me/pushed/commit/")
    lines = [json.loads(line) for line in commit.body.splitlines()]
    uploaded = {line["value"]["path"]: base64.b64decode(line["value"]["content"]) for line in lines[1:]}
    assert uploaded == {name: (expected / name).read_bytes() for name in ("config.json", "model.safetensors",
                                                                          "README.md")}
    # A Hub that cannot be reached is said as such (it was the HTTP client's ConnectError); a refusal stays the Hub's
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    code = """if True:
        from np_draw import UnwritablePathError
        from tests.conftest import random_model
        for revision in (None, "dev"):
            try:
                random_model("mnist").push_to_hub("me/pushed", revision=revision, token="hf_secret")
            except UnwritablePathError as error:
                print(error)
    """
    done = world.run(code, endpoint=closed)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"could not upload to the Hub repo 'me/pushed' at {closed}: ")
                                   for line in lines) and "refused" in done.stdout.lower()


@pytest.mark.parametrize("message, said", [("\nConnection refused\n", "Connection refused"), ("", "OSError")])
def test_an_upload_that_breaks_off_says_why_even_when_its_message_starts_blank(monkeypatch, message, said):
    """push_to_hub quoted the first line of the error, an empty one for huggingface_hub's messages that start with a
    blank line (and an IndexError for an empty message), where the downloads quote the first line that says
    something (hub.first_line)."""
    from huggingface_hub import ModelHubMixin

    from np_draw import UnwritablePathError

    def broken(*args, **kwargs):
        raise OSError(message)

    monkeypatch.setattr(ModelHubMixin, "push_to_hub", broken)
    with pytest.raises(UnwritablePathError, match=rf"^could not upload to the Hub repo 'me/pushed' at \S+: {said}$"):
        random_model("mnist", seed=2).push_to_hub("me/pushed", token="hf_secret")


def test_a_private_push_to_a_public_repo_is_refused_before_anything_is_uploaded(world):
    """create_repo(private=True, exist_ok=True) leaves an existing public repo public: the weights a user meant to
    keep private were published, without a word."""
    code = """if True:
        from np_draw import InvalidInputError
        from tests.conftest import random_model
        random_model("mnist", seed=2).push_to_hub("me/open", token="hf_secret")
        random_model("mnist", seed=2).push_to_hub("me/closed", private=True, token="hf_secret")
        random_model("mnist", seed=3).push_to_hub("me/closed", private=True, token="hf_secret")  # private: fine
        for revision in (None, "dev"):
            try:
                random_model("mnist", seed=3).push_to_hub("me/open", revision=revision, private=True, token="hf_secret")
            except InvalidInputError as error:
                print(error)
    """
    done = world.run(code)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    refusal = ("private=True, but the Hub repo 'me/open' exists and is public: nothing was uploaded. Make it private "
               "on its settings page first, or push with private=False")
    assert lines == [refusal] * 2
    assert world.server.private == {"me/closed"}
    assert len(world.server.received("POST", "/api/models/me/open/commit/")) == 1  # the public push alone
    assert len(world.server.received("POST", "/api/models/me/closed/commit/")) == 2
    assert ("me/open", "dev") not in world.server.branches


def test_a_model_from_a_hub_repo_keeps_the_licence_terms_of_its_card(world, tmp_path):
    """from_pretrained fetches the repo's card with the weights, so that weights saved again carry its terms (a
    CelebA-trained model's non-commercial ones), as they do from a local folder."""
    terms = {"license": "other", "license_name": "faces-research-only", "license_link": "https://example.org/terms"}
    world.server.publish("me/faces", random_model("mnist", seed=4).save_pretrained(tmp_path / "faces", card=terms))
    code = f"""if True:
        from np_draw import NPDraw
        NPDraw.from_pretrained("me/faces").save_pretrained({str(tmp_path / "again")!r})
    """
    done = world.run(code)
    assert done.returncode == 0, done.stderr
    card = (tmp_path / "again" / "README.md").read_text()
    assert "license: other" in card and "license_name: faces-research-only" in card


def test_weights_cached_without_their_card_load_without_asking_for_it(world):
    """A cache filled by an earlier np-draw holds no card: the load makes no request for it (huggingface_hub retries
    an unreachable Hub for half a minute), and a repo that has none is not asked again."""
    assert world.load(REPO) == [{"fingerprint": world.prints["b"]}]
    snapshot = world.cache / "models--np-draw-test--mnist" / "snapshots" / world.commits["b"]
    (snapshot / "README.md").unlink()
    asked = len(world.server.requests)
    assert world.load(REPO) == [{"fingerprint": world.prints["b"]}]
    assert not [request for request in world.server.requests[asked:] if request.path.endswith("/README.md")]


def test_the_download_command(world, tmp_path):
    done = world.run("from np_draw.cli import main; raise SystemExit(main())", "download", "tiny")
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip())
    assert folder.is_relative_to(world.cache) and (folder / "model.safetensors").is_file()
    assert "HTTP Request" not in done.stderr  # the HTTP client's line per request stays out of the command's log
    # --output writes a model folder with its card, as offline.md lists it
    done = world.run("from np_draw.cli import main; raise SystemExit(main())", "download", REPO, "--output",
                     str(tmp_path / "copy"))
    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in (tmp_path / "copy").iterdir()) == ["README.md", "config.json",
                                                                           "model.safetensors"]

    done = world.run("from np_draw.cli import main; raise SystemExit(main())", "download", "no-such-model")
    assert done.returncode == 2 and not done.stdout
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("np-draw download: error: 'no-such-model' is not a model folder")
    assert "tiny, tiny-bundled" in done.stderr


def test_the_download_command_refuses_files_that_are_not_an_np_draw_model(world, tmp_path):
    """The sha256 checks pass for any repo's files: download printed another library's repo (or a config that does
    not fit its weights) as downloaded and verified, and wrote it to --output, to fail only on the offline machine."""
    weights = (world.folder / "model.safetensors").read_bytes()
    world.server.publish("other/bert", {"config.json": json.dumps({"model_type": "bert"}).encode(),
                                        "model.safetensors": weights})
    config = json.loads((world.folder / "config.json").read_text())
    world.server.publish("me/misfit", {"config.json": json.dumps({**config, "num_parts": 51}).encode(),
                                       "model.safetensors": weights})
    for repo, said in (("other/bert", "is not a valid NP-DRAW config: unknown config keys ['model_type']"),
                       ("me/misfit", "do not match their config: bank.parts has shape")):
        output = tmp_path / repo.replace("/", "-")
        done = world.run("from np_draw.cli import main; raise SystemExit(main())", "download", repo, "--output",
                         str(output))
        assert done.returncode == 2 and not done.stdout, done.stderr
        assert said in done.stderr and not output.exists()


def test_local_files_only_with_force_download_is_refused_as_a_contradiction(world):
    """huggingface_hub refuses the pair with a ValueError, which came out as a download that failed
    (WeightsUnavailableError, an OSError) quoting huggingface_hub's words."""
    for name in (REPO, "tiny", "tiny-bundled"):
        [result] = world.load((name, {"local_files_only": True, "force_download": True}))
        assert result["error"] == "InvalidInputError"
        assert result["message"].startswith("force_download=True asks to download the files again and "
                                            "local_files_only=True forbids any download")
    assert not world.server.requests


def test_push_to_hub_refuses_a_private_flag_that_is_not_a_bool(world):
    """private="no" was taken for its truth value: it created a private repo (and, for a public repo, a refusal
    saying private=True)."""
    code = """if True:
        from np_draw import InvalidTypeError
        from tests.conftest import random_model
        try:
            random_model("mnist").push_to_hub("me/flag", private="no", token="hf_secret")
        except InvalidTypeError as error:
            print(error)
    """
    done = world.run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "private must be True or False, got 'no'"
    assert "me/flag" not in world.server.repos and not world.server.requests


def test_a_path_always_means_a_folder_and_a_tilde_is_the_home_folder(monkeypatch, tmp_path):
    from np_draw import UnknownModelError

    monkeypatch.delenv(MANIFEST_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    # A Path (or './name') that is no folder is not the pretrained name, nor a Hub repo to ask for.
    for missing in (Path("mnist"), Path("np-draw/np-draw-mnist"), "./mnist"):
        with pytest.raises(UnknownModelError, match="is not a model folder"):
            NPDraw.from_pretrained(missing, local_files_only=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    model = random_model("mnist")
    model.save_pretrained(tmp_path / "mine")
    for name in ("~/mine", Path("~/mine")):
        assert fingerprint(NPDraw.from_pretrained(name)) == fingerprint(model)


def test_loading_arguments_of_the_wrong_type_are_named():
    from np_draw import InvalidInputError, InvalidTypeError
    from np_draw.hub import resolve_pretrained

    for kwargs, named in (({"revision": 1}, "revision"), ({"cache_dir": 1}, "cache_dir"), ({"token": 1}, "token"),
                          ({"local_files_only": "yes"}, "local_files_only"),
                          ({"force_download": "no"}, "force_download")):
        with pytest.raises(InvalidTypeError, match=f"^{named} must be"):
            NPDraw.from_pretrained("np-draw/np-draw-mnist", **kwargs)
    with pytest.raises(InvalidInputError, match="name_or_path must name"):
        resolve_pretrained("")  # the command line's way in: not the working directory


def test_a_manifest_that_cannot_be_read_or_lacks_a_revision_is_a_clear_error(tmp_path):
    from np_draw import InvalidInputError

    (tmp_path / "bytes.json").write_bytes(b"\xff\xfe{")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)  # a RecursionError before
    for path in (tmp_path, tmp_path / "bytes.json", tmp_path / "deep.json"):
        with pytest.raises(InvalidInputError, match=f"{path} is not a weights manifest"):
            read_manifest(path)
    record = {"sha256": "0" * 64, "size": 1}
    entry = {"repo_id": "a/b", "bundled": False, "files": {"config.json": record, "model.safetensors": record}}
    (tmp_path / "manifest.json").write_text(json.dumps({"models": {"x": entry}}))
    with pytest.raises(InvalidInputError, match="model 'x': revision must be a 40-hex commit id, or null while "
                                                "unpublished, got nothing"):
        read_manifest(tmp_path / "manifest.json")


def test_a_bundled_model_card_is_verified_before_its_licence_is_read(world, monkeypatch):
    monkeypatch.setenv(MANIFEST_ENV, str(world.manifest))
    card = world.manifest.parent / "tiny-bundled" / "README.md"
    card.write_text(card.read_text().replace("license: mit", "license: apache-2.0"))
    with pytest.raises(CorruptWeightsError, match="bundled README.md of 'tiny-bundled'.*its size is"):
        NPDraw.from_pretrained("tiny-bundled")


def test_a_copied_manifest_without_its_bundled_folders_says_where_they_are_looked_for(tmp_path):
    # The package's manifest copied elsewhere (NP_DRAW_MANIFEST): its bundled names are read beside the copy. It said
    # the bundled files were damaged and to reinstall np-draw.
    copy = tmp_path / "manifest.json"
    shutil.copyfile(PACKAGE_MANIFEST, copy)
    with pytest.raises(WeightsUnavailableError, match=rf"marks 'mnist' as bundled, .* beside it, {tmp_path / 'mnist'}, "
                                                      r"which does not exist: copy the package's"):
        hub.resolve_pretrained("mnist", manifest=copy)
    shutil.copytree(PACKAGE_MANIFEST.parent / "mnist", tmp_path / "mnist")
    assert hub.resolve_pretrained("mnist", manifest=copy) == tmp_path / "mnist"


def test_a_hub_that_answers_with_a_refusal_is_named_with_its_answer_and_what_to_do(world):
    """A gated repo was "no model repo (or it is private and you are not logged in)"; a 403 (a token without read
    access) or a 503 was "not in the cache and the Hub could not be reached", though the Hub had answered."""
    world.server.refuse("me/gated", 401, X_Error_Code="GatedRepo", X_Error_Message="Access to model me/gated is "
                                                                                   "restricted.")
    world.server.refuse("me/forbidden", 403, X_Error_Message="Your token does not have read access")
    world.server.refuse("me/down", 503, X_Error_Message="Service Unavailable")
    gated, forbidden, forced, down = world.load("me/gated", ("me/forbidden", {"token": "hf_read_nothing"}),
                                                ("me/forbidden", {"force_download": True}), "me/down",
                                                prefix=NO_BACKOFF)
    assert gated["error"] == "WeightsUnavailableError"
    assert "'me/gated' is gated" in gated["message"] and f"({world.server.url}/me/gated)" in gated["message"]
    assert "token=, --token or HF_TOKEN" in gated["message"]
    for result in (forbidden, forced):
        assert result["error"] == "WeightsUnavailableError" and "could not be reached" not in result["message"]
        assert (f"the Hub at {world.server.url} answered HTTP 403 (Your token does not have read access): pass a "
                "token that can read the repo") in result["message"]
    assert "again (force_download=True)" in forced["message"]
    assert "answered HTTP 503 (Service Unavailable): try again later" in down["message"]
    [absent] = world.load("np-draw-test/absent")
    assert "or it is private and no token that can read it was sent" in absent["message"]
    assert "token=, --token or HF_TOKEN" in absent["message"]


def test_repo_ids_the_hub_refuses_are_named_before_any_request(world, monkeypatch):
    """'me/a..b' fits 'owner/name' but not the Hub's rules: huggingface_hub raised its HFValidationError, which
    names no argument and is no np-draw error. (Names every huggingface_hub from 0.25 refuses: 'me/ü' passes 0.25's
    check.)"""
    from np_draw import InvalidInputError, UnknownModelError

    monkeypatch.setenv("HF_ENDPOINT", world.server.url)
    for name in ("me/a..b", "me/x.git", "me/-x"):
        with pytest.raises(UnknownModelError, match=f"'{name}' is not a model folder, .* or a Hub repo id the Hub "
                                                    "accepts: "):
            NPDraw.from_pretrained(name, local_files_only=True)
        with pytest.raises(InvalidInputError, match=f"repo_id must be a Hub repo id 'owner/name' the Hub accepts, "
                                                    f"got '{name}': "):
            random_model("mnist").push_to_hub(name, token="hf_secret")
    assert not world.server.requests


def test_a_cache_that_cannot_be_written_says_where_to_point_it(monkeypatch, tmp_path):
    """A read-only cache (a shared one, another user's) was "could not download ...: [Errno 13] Permission denied",
    a WeightsUnavailableError that said nothing of the cache or what to do."""
    from np_draw import UnwritablePathError

    def read_only(*args, **kwargs):  # what huggingface_hub raises on creating the repo's folder in such a cache
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "models--me--m"))

    monkeypatch.setattr(hub, "hf_hub_download", read_only)
    monkeypatch.setattr(hub, "get_hf_file_metadata", lambda *args, **kwargs: None, raising=False)  # it answers
    with pytest.raises(UnwritablePathError, match=rf"cannot download config.json of me/m at revision main into the "
                                                  rf"Hugging Face cache {tmp_path}: .*Permission denied.*Point "
                                                  r"HF_HUB_CACHE \(or cache_dir=, --cache-dir\) at a folder you can "
                                                  "write"):
        NPDraw.from_pretrained("me/m", cache_dir=tmp_path)


def test_the_hub_module_imports_beside_a_module_named_as_an_http_client_without_its_error_base():
    # The transport errors are looked up by module name (httpx, httpx2); a module of that name without HTTPError
    # (another package's, a stub) made `import np_draw` an AttributeError, which the lookup once caught
    code = ("import sys, types; sys.modules['httpx'] = types.ModuleType('httpx'); import np_draw.hub as hub; "
            "assert OSError in hub.TRANSPORT_ERRORS")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert result.returncode == 0, result.stderr
