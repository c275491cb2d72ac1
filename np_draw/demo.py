"""``np-draw demo``: a local web page to sample, watch, edit and reconstruct with the bundled models.

The page is a Gradio app (``pip install 'np-draw[demo]'``); the functions it calls are plain functions of this
module, on PIL images and :class:`~np_draw.latents.Latents`, tested without a browser. Nothing is fetched from the
network: the models are the bundled ones, and the page uses the system's fonts.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import numbers
import shutil
import signal
import socket
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from .editing import paste_latents
from .errors import InvalidInputError, NPDrawError, check_temperature
from .images import CELEBA_CROP, centre_crop, from_pil_images, is_colour, open_image, to_pil
from .latents import Latents
from .metrics import psnr
from .model import NPDraw
from .pictures import drawing_frames, reconstruction_image, save_drawing_gif

logger = logging.getLogger(__name__)

MODELS = ("mnist", "omniglot", "cifar10", "celeba")
ACTIONS = ("remove a drawn part", "move a drawn part to a cell", "swap a drawn part for a bank part",
           "keep the first steps and let the prior complete")
# Pictures are shown this many times larger than the model's pixels.
SCALE = 4
# The most samples one click draws (the count slider's maximum).
MAX_SAMPLES = 64
# Uploads larger than this are refused by the server before they reach the model.
MAX_UPLOAD = "20mb"
# Gradio's (frequency, age) in seconds for the copies it keeps of uploads and results: without it they stay in its
# cache (GRADIO_TEMP_DIR, else /tmp/gradio) for good, a user's photos included; with it they are removed once a day
# after a day, and all of them when the server stops.
DELETE_CACHE = (86_400, 86_400)


def _bundled(name: str) -> str:
    if name not in MODELS:
        raise InvalidInputError(f"model must be one of {list(MODELS)}, got {name!r}")
    return name


@functools.cache
def load(name: str) -> NPDraw:
    """A bundled model by name, loaded once."""
    return NPDraw.from_pretrained(_bundled(name))


def _picture(image: torch.Tensor) -> Image.Image:
    """(C, H, W) in [0, 1] -> a PIL image, enlarged SCALE times."""
    picture = to_pil(image[None].cpu().float())[0]
    return picture.resize((picture.width * SCALE, picture.height * SCALE), Image.NEAREST)


@dataclass
class Drawing:
    """One drawing the page works on: its model's name and its latents (one image, T steps)."""

    model: str
    latents: Latents


def sample(model: str, seed: int, temperature: float, count: int) -> tuple[list[Image.Image], list[Drawing]]:
    """``count`` (1 to :data:`MAX_SAMPLES`) samples of ``model`` with ``seed``: each image (enlarged) and each
    drawing."""
    net = load(model)
    if not _is_whole(count, MAX_SAMPLES + 1) or int(count) < 1:  # 1.5 was drawn as 1, 10**6 for hours
        raise InvalidInputError(f"count must be a whole number in [1, {MAX_SAMPLES}], got {count!r}")
    # Checked as sample checks it: float(None) (an empty field, through the page's API) named no argument
    out = net.sample(int(count), generator=_generator(seed), temperature=check_temperature(temperature),
                     progress=False)
    drawings = [Drawing(model, out.latents[i:i + 1]) for i in range(len(out.latents))]
    return [_picture(image) for image in out.images], drawings


def from_image(model: str, image: Image.Image, crop: int = 0) -> Drawing:
    """An uploaded image (any size: centre-cropped and resized; with ``crop`` > 0 first cut to its ``crop`` px
    centre, as the Reconstruct tab frames files) as a drawing: the encoder's latents."""
    crop = _whole(crop, "crop", 2**16, note=" px (0: none)")
    return Drawing(model, load(model).encode(centre_crop(image, crop, "the image") if crop else image))


def watch(drawing: Drawing, folder: str | Path) -> tuple[list[Image.Image], Path]:
    """The canvas after each drawn step of ``drawing`` (the pasted part outlined) and the decoded image last, and an
    animated GIF of them written into ``folder``."""
    net = load(drawing.model)
    frames = to_pil(drawing_frames(net, drawing.latents, scale=SCALE * 2))
    gif = save_drawing_gif(net, drawing.latents, Path(folder) / f"{drawing.model}-drawing.gif", scale=SCALE * 2)
    return frames, gif


def _is_whole(value: Any, count: int) -> bool:
    """Whether ``value`` is a whole number in [0, count)."""
    try:
        return float(value).is_integer() and 0 <= int(value) < count
    except (TypeError, ValueError, OverflowError):  # None (an emptied field), text, inf
        return False


def _whole(value: Any, name: str, count: int, what: str = "a whole number", note: str = "") -> int:
    """``value`` as an int in [0, count), else an error naming ``name`` and the range."""
    if not _is_whole(value, count):
        raise InvalidInputError(f"{name} must be {what} in [0, {count - 1}]{note}, got {value!r}")
    return int(value)


def _generator(seed: Any) -> torch.Generator:
    return torch.Generator().manual_seed(_whole(seed, "seed", 2**63))


def edit(drawing: Drawing, action: str, step: int, cell: int = 0, part: int = 0, seed: int = 0) -> Drawing:
    """``drawing`` with one edit (one of :data:`ACTIONS`): its ``step``-th drawn part (0 = the first drawn, as the
    Watch tab's frames count them) removed, moved to grid cell ``cell``, or swapped for bank part ``part``; or its
    first ``step`` steps kept and the rest drawn by the prior (seeded by ``seed``)."""
    if action not in ACTIONS:
        raise InvalidInputError(f"action must be one of {list(ACTIONS)}, got {action!r}")
    net = load(drawing.model)
    latents = drawing.latents
    if action == ACTIONS[3]:
        # Up to T steps kept: all of them give the drawing back, as complete does
        done = net.complete(latents, _whole(step, "step", latents.ids.shape[1] + 1), _generator(seed))
        return Drawing(drawing.model, done.latents)
    ids, locs, present = latents.ids.clone(), latents.locs.clone(), latents.present.clone()
    drawn = present[0].nonzero()[:, 0].tolist()
    if not drawn:
        raise InvalidInputError(f"this drawing has no drawn part to {action.split(' ')[0]}; {ACTIONS[3]!r} with 0 "
                                "steps lets the prior draw it anew")
    t = drawn[_whole(step, "step", len(drawn), "a drawn part's number", f" (this drawing has {len(drawn)})")]
    if action == ACTIONS[0]:
        present[0, t] = 0
    elif action == ACTIONS[1]:
        locs[0, t] = _whole(cell, "cell", net.grid.num_cells)
    else:
        ids[0, t] = _whole(part, "part", net.config.num_parts)
    return Drawing(drawing.model, Latents(ids, locs, present, canvas=net.render(ids, locs, present)))


def paste(drawing: Drawing, image: Image.Image, rows: tuple[int, int]) -> Drawing:
    """The paper's edit: the grid rows ``rows`` (first, last; inclusive) of ``drawing`` replaced by those of an
    uploaded image's encoding."""
    net = load(drawing.model)
    side = net.grid.side
    if not (all(_is_whole(row, side) for row in rows) and rows[0] <= rows[1]):
        raise InvalidInputError(f"rows must be two grid rows first <= last in [0, {side - 1}], got {rows!r}")
    first, last = (int(row) for row in rows)
    source = net.encode(image)
    cells = [r * side + c for r in range(first, last + 1) for c in range(side)]
    return Drawing(drawing.model, paste_latents(net, drawing.latents, source, cells=cells))


def show(drawing: Drawing) -> tuple[Image.Image, Image.Image]:
    """The canvas of ``drawing`` and its decoded image."""
    canvas = drawing.latents.canvas  # every Drawing this page makes has its canvas
    return _picture(canvas[0]), _picture(load(drawing.model).decode(canvas)[0])


def reconstruct(model: str, files: list[str | Path], crop: int = 0) -> tuple[Image.Image, str]:
    """Uploaded image files (any size: centre-cropped and resized as ``fit`` does; with ``crop`` > 0 first cut to
    their ``crop`` px centre, :func:`np_draw.images.centre_crop`): a picture with a row per image of the image, its
    parse, the encoder's canvas and the reconstruction, and the reconstructions' PSNR."""
    net = load(model)
    if not files:
        raise InvalidInputError("upload at least one image")
    crop = _whole(crop, "crop", 2**16, note=" px (0: none)")

    def framed(file: str | Path) -> tuple[str, Image.Image]:
        name = Path(file).name
        picture = _read(model, file, name)
        return name, centre_crop(picture, crop, name) if crop else picture

    # One file decoded at a time, each resized to the model's size before the next is read: a list of them held
    # a few hundred MB per large photo (a 13,000 px one, under the size limit, is 500 MB in RGB).
    images = from_pil_images((framed(file) for file in files), channels=net.config.channels,
                             size=net.config.image_size).float() / 255
    values = psnr(net.reconstruct(images), images)
    text = ", ".join(f"{Path(f).name}: {v:.2f} dB" for f, v in zip(files, values.tolist()))
    return reconstruction_image(net, images), f"reconstruction PSNR: {text}"


def _read(model: str, file: str | Path, name: str) -> Image.Image:
    """The uploaded image file ``file`` (called ``name`` in messages) for ``model``: decoded as the command line
    reads files (upright as their EXIF says, within Pillow's size limit); a colour image for a grey model is an
    error that says which models take it. No message names the server's copy of a file: it is no business of
    whoever uses the page."""
    if not Path(file).exists():  # still listed on a page open for more than a day (DELETE_CACHE removed it)
        raise InvalidInputError(f"{name} is no longer kept by this page (uploads are removed a day after they were "
                                "made): upload it again")
    try:
        picture = open_image(file)
    except InvalidInputError as error:
        cause = error.__cause__ or error
        if isinstance(cause, UnidentifiedImageError):
            reason = "it is not in an image format Pillow reads (PNG, JPEG, WebP, GIF, BMP, TIFF, ...)"
        elif isinstance(cause, Image.DecompressionBombError) and Image.MAX_IMAGE_PIXELS:
            reason = (f"it has more pixels than Pillow decodes safely ({2 * Image.MAX_IMAGE_PIXELS:,}); upload a "
                      "smaller copy of it")
        else:
            reason = str(cause).replace(str(file), name)
        raise InvalidInputError(f"{name} is not an image this page can read: {reason}") from error
    if load(model).config.channels == 1 and is_colour(picture):
        colour = [other for other in MODELS if load(other).config.channels == 3]
        raise InvalidInputError(f"{name} is a colour image, and the {model} model draws grey ones: choose "
                                f"{' or '.join(colour)} in the model menu, or upload a grey image")
    return picture


def _sampled(drawing: Any) -> Any:
    """``drawing`` (a Drawing, or the list of the samples), unless nothing was sampled yet."""
    if not drawing:
        raise InvalidInputError("sample first (the Sample tab)")
    return drawing


def _guard(function):
    """Run ``function``; an error of the user's making becomes a message on the page (gradio.Error), never a
    stack trace, and the server keeps running."""
    import gradio as gr

    @functools.wraps(function)
    def wrapped(*args):
        try:
            return function(*args)
        except (NPDrawError, ValueError, TypeError, OSError) as error:
            logger.info("demo: %s", error)
            # Not a stack trace in the terminal for each mistake on the page: the line above says it
            raise gr.Error(str(error), print_exception=False) from error
    return wrapped


def _upload(model: str, payload: Any) -> Image.Image:
    """The image of an Edit tab upload as the browser sends it (Gradio's file data), read by :func:`_read` from
    Gradio's upload folder only. Those events skip Gradio's preprocessing, which hid its own error for a file that
    is not an image (``show_error=False``): "Error" in the canvas, and no word of what was wrong."""
    from gradio.utils import get_upload_folder

    path = payload.get("path") if isinstance(payload, dict) else None
    if not path:
        raise InvalidInputError("upload an image file first")
    # Gradio checks that a file named by a request is in its upload folder only where the request marks it as a
    # file ("meta"): a request through its API without the mark named any file of the server, which was opened
    # (its name, whether it exists and, for an image, its encoding in the reply)
    file = Path(path).resolve()
    if not file.is_relative_to(Path(get_upload_folder()).resolve()):
        raise InvalidInputError("this page reads only the files uploaded to it: upload an image file")
    return _read(model, file, file.name)


def _blank() -> tuple:
    """What the page shows of a model's work before any: a new model's choice clears the old one's samples,
    drawing, frames and reconstructions, which were shown under the new name (and edited and watched with the old
    model)."""
    import gradio as gr

    return [], [], None, None, None, [], gr.Slider(0, 1, value=0, step=1, interactive=True), None, None, None, ""


def build(default: str = "mnist"):
    """The Gradio app (gradio.Blocks)."""
    import gradio as gr

    folder = Path(tempfile.mkdtemp(prefix="np-draw-demo-"))
    whole_number = functools.partial(gr.Number, precision=0)
    # Read by the page's code (_upload, as Reconstruct reads files: EXIF, 16-bit, size limit), not by Gradio
    image_input = functools.partial(gr.Image, type="filepath", image_mode=None)
    with gr.Blocks(title="np-draw", analytics_enabled=False, delete_cache=DELETE_CACHE) as app:
        gr.Markdown("# NP-DRAW\nImages drawn part by part on a canvas, then decoded. Sample, watch a drawing, "
                    "edit its parts, or reconstruct your own images.")
        model = gr.Dropdown(list(MODELS), value=default, label="model")
        drawings = gr.State([])
        current = gr.State(None)
        with gr.Tab("Sample"):
            with gr.Row():
                seed = whole_number(0, label="seed")
                temperature = gr.Slider(0.1, 1.5, value=1.0, label="temperature")
                count = gr.Slider(1, MAX_SAMPLES, value=16, step=1, label="count")
            go = gr.Button("Sample", elem_id="sample")
            grid = gr.Gallery(label="samples: click one to watch and edit it", columns=8, object_fit="contain",
                              elem_id="samples")
            chosen = whole_number(0, label="sample to watch and edit (0 = first, row by row)", elem_id="chosen")
        with gr.Tab("Watch"):
            draw = gr.Button("Draw it", elem_id="watch")
            step = gr.Slider(0, 1, value=0, step=1, label="step")
            frame = gr.Image(label="canvas after the step (the last frame is the decoded image)", type="pil")
            gif = gr.File(label="the drawing as a GIF", elem_id="gif")
            frames = gr.State([])
        with gr.Tab("Edit"):
            with gr.Row():
                canvas = gr.Image(label="canvas", type="pil", elem_id="canvas")
                decoded = gr.Image(label="decoded", type="pil", elem_id="decoded")
            action = gr.Radio(list(ACTIONS), value=ACTIONS[0], label="edit")
            with gr.Row():
                edit_step = whole_number(0, label="drawn part (0 = first), or steps kept", elem_id="edit-step")
                cell = whole_number(0, label="cell")
                part = whole_number(0, label="bank part")
            apply = gr.Button("Apply", elem_id="apply")
            with gr.Row():
                source = image_input(label="paste from this image", elem_id="source")
                first_row = whole_number(0, label="first row")
                last_row = whole_number(2, label="last row")
            paste_button = gr.Button("Paste its rows")
            with gr.Row():
                own = image_input(label="or watch and edit your own image", elem_id="own")
                own_crop = whole_number(0, label=f"crop: its centre first, px (0: none; {CELEBA_CROP} for aligned "
                                        "CelebA photos)")
                use = gr.Button("Use this image", elem_id="use")
        with gr.Tab("Reconstruct"):
            uploads = gr.File(label="images (any size)", file_count="multiple", elem_id="uploads")
            framing = whole_number(0, label=f"crop: each image's centre first, px (0: none; {CELEBA_CROP} frames "
                                   "aligned CelebA photos as the celeba model's faces were)", elem_id="crop")
            rebuild = gr.Button("Reconstruct", elem_id="reconstruct")
            rows = gr.Image(label="image, parse, encoder's canvas, reconstruction", type="pil", elem_id="rows")
            score = gr.Textbox(label="PSNR", elem_id="psnr")

        def shown(drawing: Drawing) -> tuple:
            return (drawing, *show(drawing))

        def pick(items: list[Drawing], index: float) -> tuple:
            return shown(_sampled(items)[_whole(index, "sample to watch", len(items))])

        def sampled(name: str, seed: float, temperature: float, count: float, index: float) -> tuple:
            images, items = sample(name, seed, temperature, count)
            # The sample asked for, or the first where fewer were drawn: the error said so and kept the drawing of
            # the samples before, which Watch and Edit went on showing
            index = int(index) if _is_whole(index, len(items)) else 0
            return images, items, index, *shown(items[index])

        def choose(items: list[Drawing], selected) -> tuple:
            # The clicked sample is opened here, not only through the number's change: a click on the sample the
            # number already held (to start again after an edit or an uploaded image) changed nothing, and Watch
            # and Edit went on with the edited drawing
            return selected.index, *pick(items, selected.index)

        # Gradio hands the click to a parameter annotated SelectData; this module's annotations are strings.
        choose.__annotations__ = {"selected": gr.SelectData, "return": tuple}

        # The uploads are read by _upload: adopt's and graft's events take their inputs as the browser sends them
        # (preprocess=False; the model's name and the numbers are checked by the functions they call).
        def adopt(name: str, payload: dict | None, crop: float) -> tuple:
            return shown(from_image(name, _upload(name, payload), crop))

        def film(drawing: Drawing | None) -> tuple:
            pictures, path = watch(_sampled(drawing), folder)
            # A drawing of no drawn part (a blank upload, every part removed) has one frame, the decoded image:
            # Gradio refuses a slider from 0 to 0 ("Slider minimum must be less than maximum"), which left no frame
            # and no GIF. Its slider keeps 0 to 1, held at 0
            last = len(pictures) - 1
            slider = gr.Slider(0, max(last, 1), value=last, step=1, interactive=last > 0)
            return pictures, slider, pictures[-1], str(path)

        def at(pictures: list[Image.Image], index: float) -> Image.Image | None:
            # Clamped: the one-frame slider's 1 (held, but open to the page's API) was an IndexError
            return pictures[min(max(int(index), 0), len(pictures) - 1)] if pictures else None

        def change(drawing: Drawing | None, *args) -> tuple:
            return shown(edit(_sampled(drawing), *args))

        def graft(drawing: Drawing | None, payload: dict | None, first: float, last: float) -> tuple:
            if drawing is None or payload is None:
                raise InvalidInputError("sample first, and upload an image to paste from")
            return shown(paste(drawing, _upload(drawing.model, payload), (first, last)))

        view = [current, canvas, decoded]
        step.change(_guard(at), [frames, step], [frame])
        # Every event of a model's work: another model's choice cancels them, as a request of the last model still
        # running (a large sample) would show its results under the new name
        work = [go.click(_guard(sampled), [model, seed, temperature, count, chosen], [grid, drawings, chosen, *view],
                         api_name="sample"),  # its name before
                grid.select(_guard(choose), [drawings], [chosen, *view]),  # it opens the drawing too
                # A number typed in only: sample and a click set it and open the drawing themselves, and a change
                # event would decode it a second time
                chosen.input(_guard(pick), [drawings, chosen], view),
                use.click(_guard(adopt), [model, own, own_crop], view, preprocess=False),
                draw.click(_guard(film), [current], [frames, step, frame, gif]),
                apply.click(_guard(change), [current, action, edit_step, cell, part, seed], view),
                paste_button.click(_guard(graft), [current, source, first_row, last_row], view, preprocess=False),
                rebuild.click(_guard(reconstruct), [model, uploads, framing], [rows, score])]
        model.change(_blank, [], [grid, drawings, current, canvas, decoded, frames, step, frame, gif, rows, score],
                     cancels=work)
    # The Watch tab's GIFs, which Gradio copies into its cache: removed with the app, or when the process ends.
    weakref.finalize(app, shutil.rmtree, folder, ignore_errors=True)
    return app


def check_address(host: str, port: int) -> None:
    """Raise InvalidInputError when the page cannot be served on ``host:port`` (the port is taken, the host is not
    this machine's), before anything is built: Gradio's own error says to pass ``server_port`` to ``launch()``,
    which a user of the command line never sees."""
    # getaddrinfo wraps a number above 65535 (70000 is port 4464), which the probe would then find free
    if isinstance(port, bool) or not isinstance(port, numbers.Integral) or not 0 <= port <= 65535:
        raise InvalidInputError(f"port must be an int in [0, 65535], got {port!r}")
    port = int(port)
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds it
            probe.bind(address)
    except (OSError, UnicodeError) as error:  # UnicodeError: a name that is no host name (an empty or long label)
        reason = getattr(error, "strerror", None) or error
        raise InvalidInputError(f"cannot serve the page on {host}:{port}: {reason}; pass another port (np-draw "
                                "demo --port N) or host") from error


def url_host(host: str) -> str:
    """``host`` as a URL names it: an IPv6 address in brackets (``::1`` -> ``[::1]``), the form Gradio takes for
    one. Given ``::1``, Gradio checked its new server at http://::1:7860/, which is no URL: a traceback, and no
    page, for the address ``open_to_network`` calls this machine's own."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def open_to_network(host: str) -> bool:
    """Whether a page served on ``host`` can be reached from other machines: an address (or a name of one) that is
    not this machine's loopback, such as 0.0.0.0 (every interface) or the machine's address on a network."""
    try:
        addresses = {ipaddress.ip_address(info[4][0].split("%")[0])
                     for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
        # ::ffff:127.0.0.1 is 127.0.0.1 (Python before 3.13 did not call it loopback)
        return not all((getattr(address, "ipv4_mapped", None) or address).is_loopback for address in addresses)
    except (OSError, UnicodeError, ValueError):
        return True


class _Stop:
    """Signals (SIGTERM, SIGHUP) that stop the page as Ctrl+C does (Gradio then closes its server and empties its
    cache of uploads and results, and the page's own folder goes when the process ends): by default SIGTERM (kill,
    systemd, docker stop) and SIGHUP (the terminal closed) ended the process at once, leaving the user's uploaded
    photos in the cache for good.

    The first of them raises KeyboardInterrupt; any after it are ignored (a second one, SIGHUP then SIGTERM as a
    terminal closes, broke off the cleanup the first had started, and the uploads stayed). A signal that was
    ignored is left so (``nohup np-draw demo`` is meant to outlive its terminal), and :meth:`restore` hands each
    signal back its handler."""

    def __init__(self) -> None:
        self.before: dict[int, Any] = {}
        self.stopping = False

    def __call__(self, signum: int, frame: Any) -> None:
        if not self.stopping:
            self.stopping = True
            raise KeyboardInterrupt(f"signal {signum}")

    def install(self, signals: tuple[int, ...]) -> None:
        for number in signals:
            handler = signal.getsignal(number)
            if handler is not signal.SIG_IGN:
                self.before[number] = handler  # before it is replaced: the signal may come at once
                signal.signal(number, self)

    def restore(self) -> None:
        self.stopping = True  # no KeyboardInterrupt from here on, with some handlers handed back and not others
        for number, handler in self.before.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)  # None: set outside Python


def serve(model: str = "mnist", *, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Start the page on ``host:port`` (loopback unless asked; a warning is logged where other machines can reach
    it); returns the app (with ``block`` False, at once). While it blocks, SIGTERM and SIGHUP stop it as Ctrl+C
    does, its files removed."""
    _bundled(model)
    check_address(host, port)
    if open_to_network(host):
        logger.warning("np-draw demo: the page on %s:%d can be reached from other machines, with no password: "
                       "anyone who can reach this one may use it, upload files to it and take its processors' time. "
                       "Serve it on 127.0.0.1 (the default) to keep it to this machine", host, port)
    import gradio as gr

    app = build(model)
    # The system's fonts: the default theme's come from Google's servers, which an offline machine cannot reach.
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])
    stop = _Stop()
    try:
        if block and threading.current_thread() is threading.main_thread():  # only there can signals be handled
            stop.install(tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)))
        app.launch(server_name=url_host(host), server_port=port, share=False, show_error=False,
                   max_file_size=MAX_UPLOAD, prevent_thread_lock=not block, quiet=True, theme=theme)
    except KeyboardInterrupt:  # before launch waits (its checks of the new server): it would not close the server
        app.close()  # which empties Gradio's cache
        raise
    finally:
        stop.restore()
    return app
