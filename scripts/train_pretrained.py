"""Train one of the pretrained checkpoints with the project's own ``fit`` on the real data.

    python scripts/train_pretrained.py --name mnist --data ../shared/data --out runs/mnist

    python scripts/train_pretrained.py --name cifar10 --data ../shared/data --out runs/cifar10-more \
        --continue-from runs/cifar10 --epochs 3

Logs to stderr (under nohup, to nohup.out), checkpoints into OUT/checkpoints (``--resume`` continues exactly), and
saves the model folder with ``save_pretrained``, its training record (``training.json``: git commit, configs, seed,
the data files' sha256, wall time, machine) and an 8x8 sample grid. CelebA trains on its 4,800 training images and
selects on its 600 validation images; the other data sets hold out 10 % of their training split.

``--continue-from FOLDER`` trains a finished run's encoder and decoder for ``--epochs`` more epochs: it copies the
run's last checkpoint into OUT/checkpoints and resumes it with a larger ``epochs``, so the part bank, prior,
optimizer state and schedules carry on as if the run had been given those epochs from the start (checkpoints of
runs finished before fit kept its optimizer state restart Adam). ``--finetune-from FOLDER`` starts a new fit from a
finished run's weights with its part bank kept: ``--prior-epochs N`` trains its prior N more epochs (fresh Adam, the
best validation epoch kept), then ``--epochs`` encoder and decoder epochs (0 for none), with the learning rates
given; with ``--channels`` (even the run's own width) the encoder and decoder start afresh at that width instead, on
the run's bank and prior; with ``--mixtures K`` a discretised logistic's decoder gets a last layer for a mixture of K
logistics coupled over RGB that starts as the same likelihood (``with_mixture_head``), trained alone first for
``--head-steps`` (``fit_head``, recorded under ``mixture_head``), the rest kept. Either way the record keeps the
earlier run's commit, configs and wall time under ``continued_from``, and its wall time adds the earlier run's,
unless the encoder and decoder started afresh (``"new_encoder_decoder": true``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import subprocess
import threading
import time
from dataclasses import asdict
from pathlib import Path

import torch

from np_draw import NPDraw, NPDrawConfig
from np_draw.data import data_files, load_dataset
from np_draw.errors import run_main
from np_draw.manifest import sha256_file
from np_draw.training import FitConfig, fit

ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    """The repository's HEAD commit, with "+dirty" when tracked files differ from it."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True, check=True)
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


class WallClock:
    """Training wall time summed over a run and its resumptions, kept in ``file`` and rewritten every ``every``
    seconds by a daemon thread, so a run killed at a session's end loses at most that much of its count."""

    def __init__(self, file: Path, resume: bool, earlier: float = 0.0, every: float = 30.0) -> None:
        self.file, self.every = file, every
        self.earlier = json.loads(file.read_text())["wall_time_s"] if resume and file.is_file() else earlier
        self.start = time.time()
        threading.Thread(target=self._keep, daemon=True).start()

    def total(self) -> float:
        """Seconds so far, this run included."""
        return self.earlier + time.time() - self.start

    def write(self) -> None:
        """Record the total now."""
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self.file.write_text(json.dumps({"wall_time_s": round(self.total(), 1)}) + "\n")

    def _keep(self) -> None:
        while True:
            time.sleep(self.every)
            self.write()


def with_mixture_head(model: NPDraw, num_mixtures: int) -> NPDraw:
    """``model`` (a discretised logistic per channel) with PixelCNN++'s mixture of ``num_mixtures`` logistics coupled
    over RGB, starting from the same likelihood: every component is the logistic (its means moved by up to +-0.01
    of the [-1, 1] range, about one grey level, so that the components can part), the mixture logits and the
    channel coefficients are zero. Encoder, decoder body, bank and prior are kept; only the decoder's 1x1 output
    layer grows."""
    config = NPDrawConfig.from_dict({**model.config.to_dict(), "likelihood": "logistic_mixture",
                                     "num_mixtures": num_mixtures})
    mixed = NPDraw(config).to(device=model.device, dtype=model.dtype)
    old_head = model.decoder.out
    state = {key: value for key, value in model.state_dict().items() if not key.startswith("decoder.out.")}
    missing, unexpected = mixed.load_state_dict(state, strict=False)
    if unexpected or any(not key.startswith("decoder.out.") for key in missing):
        raise ValueError(f"with_mixture_head: the weights do not carry over: missing {missing}, unexpected {unexpected}")
    k, channels = num_mixtures, model.config.channels
    weight = torch.zeros_like(mixed.decoder.out.weight)
    bias = torch.zeros_like(mixed.decoder.out.bias)
    # The mixture's parameters: k logits, then (means, log-scales, coefficients) x channels x k (LogisticMixture).
    for kind in range(2):
        for channel in range(channels):
            rows = slice(k + (kind * channels + channel) * k, k + (kind * channels + channel + 1) * k)
            weight[rows] = old_head.weight[kind * channels + channel]
            bias[rows] = old_head.bias[kind * channels + channel]
    if k > 1:
        bias[k:k + channels * k] += torch.linspace(-0.01, 0.01, k, dtype=bias.dtype, device=bias.device).repeat(channels)
    with torch.no_grad():
        mixed.decoder.out.weight.copy_(weight)
        mixed.decoder.out.bias.copy_(bias)
    return mixed.train(model.training)


HEAD_LR, HEAD_BATCH = 3e-3, 64
PRIOR_EPOCHS, PRIOR_LR = 2, 1e-3  # a new run's prior budget and learning rate


def fit_head(model: NPDraw, images: torch.Tensor, validation: torch.Tensor, steps: int, lr: float = HEAD_LR,
             batch_size: int = HEAD_BATCH) -> None:
    """Train only the decoder's output layer on the canvases of the encoder's most likely latents, the rest frozen
    in eval mode: a new mixture head's channel coefficients start at zero, and at fit's learning rates Adam would
    take thousands of steps to move them to where the data puts them. Logs the validation images' mean
    reconstruction term (nats) before, every 50 steps and after."""
    log = logging.getLogger(__name__)
    model.eval()
    # In pieces: encode keeps every image's posterior logits until the canvas is taken
    canvases, val_canvases = (torch.cat([model.encode(piece).canvas for piece in x.split(256)])
                              for x in (images, validation))
    head = model.decoder.out
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)

    def term(canvas: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Mean reconstruction term of the images x, nats."""
        with torch.no_grad():
            features = model.decoder.body(2 * canvas - 1)
        return -model.likelihood.log_prob(head(features), x).mean()

    def held_out() -> float:
        with torch.no_grad():
            return sum(term(val_canvases[i:i + batch_size], validation[i:i + batch_size]).item()
                       * len(validation[i:i + batch_size]) for i in range(0, len(validation), batch_size)
                       ) / len(validation)

    log.info("head: validation reconstruction %.1f nats before", held_out())
    for step in range(steps):
        pick = torch.randint(len(images), (batch_size,), generator=generator)
        loss = term(canvases[pick], images[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (step + 1) % 50 == 0 or step + 1 == steps:
            log.info("head: step %d, training %.1f, validation %.1f nats", step + 1, loss.item(), held_out())


def machine() -> str:
    """The CPU model, the threads torch uses, and the torch version."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, choices=["mnist", "omniglot", "cifar10", "celeba"])
    parser.add_argument("--data", required=True, help="the shared data folder")
    parser.add_argument("--out", required=True, help="output model folder")
    parser.add_argument("--channels", type=int, default=None,
                        help="encoder/decoder widths (default 64; the reference code: 128); with --finetune-from, a "
                             "new encoder and decoder of this width on the run's bank and prior (default: keep the "
                             "run's)")
    parser.add_argument("--prior-epochs", type=int, default=None,
                        help=f"default {PRIOR_EPOCHS} (0: the prior is not trained; with --finetune-from, 0)")
    parser.add_argument("--prior-lr", type=float, default=None, help=f"default {PRIOR_LR:g}")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"encoder/decoder batch size (default {FitConfig.batch_size})")
    parser.add_argument("--encoder-lr", type=float, default=None, help=f"default {FitConfig.encoder_lr:g}")
    parser.add_argument("--decoder-lr", type=float, default=None,
                        help=f"default {FitConfig.decoder_lr:g}, the reference code's; the paper trains the full model "
                             "at 1e-3")
    parser.add_argument("--location-lr", type=float, default=None,
                        help=f"learning rate of the encoder's per-step location bias (default {FitConfig.location_lr:g}; "
                             "a short continuation moves it more at 3e-2, as fine-tuning does)")
    parser.add_argument("--tau-start", type=float, default=None,
                        help="Gumbel temperature at the first VAE epoch (default 1; with --finetune-from, where a "
                             "continued run should pick up its schedule)")
    parser.add_argument("--substitution-start", type=float, default=None,
                        help="the parse-substitution probability at the first VAE epoch (default 1)")
    parser.add_argument("--warmup-steps", type=int, default=None,
                        help="ramp the learning rates up over this many steps of each stage (default 0); a fresh "
                             "Adam on trained weights otherwise sets the bound back first")
    parser.add_argument("--patience", type=int, default=None,
                        help="stop the VAE stage after this many epochs without a better validation bound and keep "
                             "the best epoch (default: run every epoch, keep the last)")
    parser.add_argument("--mixtures", type=int, default=None, metavar="K",
                        help="with --finetune-from a discretised-logistic run: the likelihood becomes a mixture of K "
                             "logistics coupled over RGB, starting from the run's (its decoder's last layer grows)")
    parser.add_argument("--head-steps", type=int, default=None,
                        help="with --mixtures: steps that train the new output layer alone first (fit_head; default "
                             "300)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in OUT/checkpoints")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--continue-from", default=None, metavar="FOLDER",
                        help="a finished run's OUT: train its encoder and decoder --epochs more, with its configs")
    parser.add_argument("--finetune-from", default=None, metavar="FOLDER",
                        help="a finished run's OUT: a new fit from its weights, bank kept, prior trained if "
                             "--prior-epochs is given")
    args = parser.parse_args()
    earlier, start = None, args.continue_from or args.finetune_from
    if args.continue_from is not None and args.finetune_from is not None:
        parser.error("give --continue-from or --finetune-from, not both")
    if start is not None:
        flag = "--continue-from" if args.continue_from else "--finetune-from"
        kept = (["--channels", "--prior-epochs", "--prior-lr", "--batch-size", "--encoder-lr", "--decoder-lr",
                 "--location-lr", "--tau-start", "--substitution-start", "--warmup-steps", "--patience"]
                if args.continue_from else [])
        given = [name for name in kept if getattr(args, name[2:].replace("-", "_")) is not None]
        if given:
            parser.error(f"{flag} keeps the earlier run's configs; drop {', '.join(given)}")
        record_file = Path(start) / "training.json"
        if not record_file.is_file():
            parser.error(f"{flag}: {str(record_file)!r} does not exist; give the OUT of a finished run")
        earlier = json.loads(record_file.read_text())
        if earlier["name"] != args.name:
            parser.error(f"{flag}: that run trained {earlier['name']!r}, not --name {args.name!r}")
        # The same seed and images hold out the same validation images, so the bounds go on one curve.
        for option, key in (("--seed", "seed"), ("--limit", "limit")):
            if getattr(args, key) != earlier[key]:
                parser.error(f"{flag}: that run used {option} {earlier[key]}, got {getattr(args, key)}")
        if args.mixtures is not None and (earlier["config"]["likelihood"], earlier["config"]["channels"]) != (
                "logistic", 3):
            parser.error(f"--mixtures: that run's likelihood is {earlier['config']['likelihood']!r} for "
                         f"{earlier['config']['channels']} channels, not 'logistic' for RGB")
    # Bank and prior kept, a new encoder and decoder (at any width given, the source's too).
    fresh_networks = args.finetune_from is not None and args.channels is not None
    if fresh_networks and args.epochs < 1:
        parser.error(f"--channels with --finetune-from trains a new encoder and decoder: --epochs must be at least 1, "
                     f"got {args.epochs}")
    if args.mixtures is not None and (args.finetune_from is None or args.channels is not None or args.mixtures < 1):
        parser.error(f"--mixtures K (K >= 1, got {args.mixtures}) turns a --finetune-from run's likelihood into a "
                     "mixture and keeps its networks: give it with --finetune-from and without --channels")
    if args.head_steps is not None and (args.mixtures is None or args.head_steps < 0):
        parser.error(f"--head-steps (>= 0, got {args.head_steps}) goes with --mixtures")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    images = load_dataset(args.name, args.data, "train", limit=args.limit).float() / 255
    validation = load_dataset(args.name, args.data, "val").float() / 255 if args.name == "celeba" else None
    out = Path(args.out)
    overrides = {key: getattr(args, key) for key in ("batch_size", "encoder_lr", "decoder_lr", "location_lr", "tau_start",
                                                     "substitution_start", "warmup_steps", "patience")
                 if getattr(args, key) is not None}
    prior_lr = PRIOR_LR if args.prior_lr is None else args.prior_lr
    if earlier is None:
        channels = args.channels or 64
        config = NPDrawConfig.preset(args.name, encoder_channels=channels, decoder_channels=channels)
        # "is None", not "or": --prior-epochs 0 (train no prior) became 2 epochs, and --prior-lr 0 (refused by
        # FitConfig) the default rate, without a word
        prior_epochs = PRIOR_EPOCHS if args.prior_epochs is None else args.prior_epochs
        fit_config = FitConfig(seed=args.seed, prior_epochs=prior_epochs, prior_lr=prior_lr, epochs=args.epochs,
                               **overrides)
    elif args.finetune_from is not None:
        config = NPDrawConfig.from_dict(earlier["config"])
        if fresh_networks:
            config = NPDrawConfig.from_dict({**config.to_dict(), "encoder_channels": args.channels,
                                             "decoder_channels": args.channels})
        fit_config = FitConfig(seed=args.seed, fit_bank=False, fit_prior=bool(args.prior_epochs),
                               prior_epochs=args.prior_epochs or 0, prior_lr=prior_lr,
                               epochs=args.epochs, **overrides)
    else:
        config = NPDrawConfig.from_dict(earlier["config"])
        fit_config = FitConfig(**{**earlier["fit_config"], "epochs": earlier["fit_config"]["epochs"] + args.epochs})
        if (out / "checkpoints").exists() and not args.resume:
            parser.error(f"--out {args.out!r} already holds checkpoints; add --resume to go on with them")
        if not (out / "checkpoints").exists():
            shutil.copytree(Path(args.continue_from) / "checkpoints", out / "checkpoints")
    model = NPDraw.from_pretrained(args.finetune_from) if args.finetune_from else NPDraw(config)
    if fresh_networks:
        torch.manual_seed(args.seed)
        fresh = NPDraw(config)
        fresh.bank.load_state_dict(model.bank.state_dict())
        fresh.prior.load_state_dict(model.prior.state_dict())
        model = fresh
    record_file = out / "training.json"
    # Wall time adds up over resumed runs, so a checkpoint trained across sessions reports its whole cost; new
    # networks count from zero (the source's time, its discarded encoder and decoder included, is under continued_from).
    clock = WallClock(out / "wall_time.json", args.resume, earlier["wall_time_s"] if earlier and not fresh_networks
                      else 0.0)
    # Read before training: commits made while a long run goes on are not the code it ran.
    commit = git_commit()
    head = None
    if args.mixtures is not None:
        model = with_mixture_head(model, args.mixtures)
        config = model.config
        head = {"from_likelihood": "logistic", "num_mixtures": args.mixtures, "steps": args.head_steps or 300,
                "lr": HEAD_LR, "batch_size": HEAD_BATCH}
        if not (args.resume and (out / "checkpoints").exists()):  # a resumed fit loads its trained head
            fit_head(model, images, validation, head["steps"])
    history = fit(model, images, fit_config, output_dir=out, resume=args.resume or args.continue_from is not None,
                  progress=False, validation=validation)
    wall = clock.total()
    clock.write()
    model.save_pretrained(out)
    sha256 = {f"{args.name}/{file.name}": sha256_file(file) for split in ("train", "test")
              for file in data_files(args.name, args.data, split)}
    record = {"name": args.name, "git_commit": commit, "config": config.to_dict(), "fit_config": asdict(fit_config),
              "seed": args.seed, "limit": args.limit, "wall_time_s": round(wall, 1), "machine": machine(),
              "data_sha256": sha256, "val_bound": history.val_bound, "prior_val": history.prior_val,
              "train": history.train}
    if fresh_networks:
        record["new_encoder_decoder"] = True
    if head is not None:
        record["mixture_head"] = head
    if earlier is not None:
        record["continued_from"] = {key: earlier[key] for key in ("git_commit", "config", "fit_config", "wall_time_s",
                                                                  "val_bound", "prior_val", "continued_from")
                                    if key in earlier}
    record_file.write_text(json.dumps(record, indent=2) + "\n")
    samples = model.sample(64, generator=torch.Generator().manual_seed(0), progress=False)
    samples.save_grid(out / "samples.png", nrow=8)
    logging.getLogger(__name__).info("done in %.0f s; validation bound %s", wall, history.val_bound)


if __name__ == "__main__":
    run_main(main, __file__)
