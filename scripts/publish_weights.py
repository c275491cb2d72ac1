"""Publish bundled checkpoints on the Hugging Face Hub and pin the commits in the weights manifest.

    HF_TOKEN=... python scripts/publish_weights.py --name mnist omniglot cifar10 celeba --pin

Each model folder (``np_draw/weights/<name>/`` beside the manifest in use: the package's, or ``$NP_DRAW_MANIFEST``)
is first checked against the manifest's sha256 and size of every file, then uploaded as it is to the entry's
``repo_id`` (the repo is created if needed) with ``huggingface_hub``; the new commit is printed. ``--pin`` records
it as the entry's ``revision``, so that ``NPDraw.from_pretrained(name, revision=None)`` on an install without the
bundled copy downloads exactly these files and verifies them; the package's manifest is copied to the repository's
top-level ``weights_manifest.json`` too. ``HF_ENDPOINT`` points it at a mirror (the tests use a local one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from huggingface_hub import HfApi

from np_draw.manifest import PACKAGE_MANIFEST, describe_files, manifest_path, read_manifest

ROOT = Path(__file__).resolve().parent.parent


def publish(name: str, *, token: str | None = None, pin: bool = False) -> str:
    """Upload the bundled folder of manifest entry ``name`` after checking it; returns the commit id."""
    manifest_file = manifest_path()
    entry = read_manifest(manifest_file)[name]
    folder = manifest_file.parent / name
    found = describe_files(folder) if folder.is_dir() else {}
    if found != entry["files"]:
        raise SystemExit(f"publish_weights.py: {folder} does not hold the files the manifest records for {name!r} "
                         f"(found {sorted(found)}, checked sha256 and size); bundle it first")
    # The folder's own files, card included, as the manifest records them: not a model saved afresh by push_to_hub.
    api = HfApi(token=token)
    api.create_repo(entry["repo_id"], exist_ok=True)
    commit = api.upload_folder(repo_id=entry["repo_id"], folder_path=folder,
                               commit_message=f"np-draw {name}: the checkpoint bundled in the package").oid
    if pin:
        manifest = json.loads(manifest_file.read_text())
        manifest["models"][name]["revision"] = commit
        text = json.dumps(manifest, indent=2) + "\n"
        manifest_file.write_text(text)
        if manifest_file == PACKAGE_MANIFEST:
            (ROOT / "weights_manifest.json").write_text(text)
    return commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", nargs="+", required=True, help="manifest names to publish")
    parser.add_argument("--token", default=None, help="a Hub token with write access (default: HF_TOKEN or login)")
    parser.add_argument("--pin", action="store_true", help="record each commit as its entry's revision")
    args = parser.parse_args()
    known = read_manifest(manifest_path())
    unknown = [name for name in args.name if name not in known]
    if unknown:  # before any upload: a typo in the last name would leave the others published and it not
        parser.error(f"--name: {unknown} not in the manifest {str(manifest_path())!r}; its names are {sorted(known)}")
    for name in args.name:
        print(json.dumps({"name": name, "commit": publish(name, token=args.token, pin=args.pin)}))


if __name__ == "__main__":
    main()
