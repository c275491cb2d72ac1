"""The ``np-draw`` command line.

    np-draw sample mnist -n 64 --seed 0 -o grid.png   # draw images from a pretrained model, save them as a grid
    np-draw download mnist                            # fetch and verify pretrained weights into the HF cache

Each subcommand is one ``cmd_*`` function, registered in :func:`build_parser`. A user error (an unknown name,
weights that cannot be had or do not verify) prints one line on stderr and exits with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__, hub

USAGE_ERROR = 2


def cmd_download(args: argparse.Namespace) -> int:
    """Download and verify the weights ``args.name`` names, print their folder, and return the exit code 0.

    Run it on a machine with internet access, then copy the Hugging Face cache (``HF_HUB_CACHE``) to an offline one.

    Raises:
        ValueError, OSError: the name is unknown, or the weights cannot be had or do not verify.
    """
    folder = hub.resolve_pretrained(args.name, revision=args.revision, cache_dir=args.cache_dir,
                                    force_download=args.force_download)
    print(folder)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """Sample ``args.num_images`` images from the model ``args.name`` and save them as one grid picture."""
    import torch

    from .model import NPDraw

    output = Path(args.output)
    if not output.parent.is_dir():
        raise ValueError(f"--output: the folder {str(output.parent)!r} does not exist")
    model = NPDraw.from_pretrained(args.name, device=args.device)
    generator = torch.Generator().manual_seed(args.seed)
    out = model.sample(args.num_images, generator, batch_size=args.batch_size, temperature=args.temperature,
                       progress=not args.quiet)
    try:
        out.save_grid(output, nrow=args.nrow)
    except (OSError, ValueError) as error:
        raise OSError(f"--output: cannot write {str(output)!r}: {error}") from error
    print(output)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; each sets ``func``, the ``cmd_*`` function that runs it."""
    parser = argparse.ArgumentParser(prog="np-draw", description="NP-DRAW: sample, train and manage models.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sample = commands.add_parser(
        "sample", help="sample images from a model and save them as a grid",
        description="Draw images from a pretrained model (or a model folder / Hub repo) and save them as one "
                    "PNG grid.")
    sample.add_argument("name", help="a pretrained name, a model folder, or a Hub repo owner/name[@revision]")
    sample.add_argument("-n", "--num-images", type=int, default=64, help="how many images (default 64)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample.add_argument("-o", "--output", default="samples.png", help="the grid picture (default samples.png)")
    sample.add_argument("--nrow", type=int, default=None, help="images per row (default: a square)")
    sample.add_argument("--batch-size", type=int, default=256, help="images drawn at once (default 256)")
    sample.add_argument("--temperature", type=float, default=1.0, help="prior temperature (default 1)")
    sample.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default cpu)")
    sample.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sample.set_defaults(func=cmd_sample)

    download = commands.add_parser(
        "download", help="download and verify pretrained weights, for use offline later",
        description="Download a model's config.json and model.safetensors into the Hugging Face cache, checked "
                    "against the weights manifest, and print the folder holding them.")
    download.add_argument("name", help="a pretrained name (mnist, omniglot, cifar10, celeba) or a Hub repo "
                                       "owner/name[@revision]")
    download.add_argument("--revision", help="a branch, tag or commit (default: the manifest's pinned commit for a "
                                             "pretrained name, main for a repo)")
    download.add_argument("--cache-dir", help="the Hugging Face cache folder (default: HF_HUB_CACHE)")
    download.add_argument("--force-download", action="store_true", help="download again even when cached")
    download.set_defaults(func=cmd_download)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 on success, 2 on a user error, after printing it on one line of stderr.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as error:
        # One line, whatever the message holds: scripts grep it, people read it.
        print(f"np-draw {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
