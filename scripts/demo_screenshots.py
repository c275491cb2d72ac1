"""Screenshots of each tab of ``np-draw demo`` with the bundled models, for docs/demo.md.

    python scripts/demo_screenshots.py [--out docs/pictures] [--chromium /usr/bin/chromium]

Starts the page on a free local port, drives a headless Chromium through it (sample, watch, edit, reconstruct a
test image) and writes demo_sample.png, demo_watch.png, demo_edit.png and demo_reconstruct.png.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from np_draw import NPDraw, demo

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "pictures"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--model", default="celeba", choices=demo.MODELS)
    args = parser.parse_args()
    if not Path(args.chromium).is_file():
        parser.error(f"--chromium: no browser at {args.chromium!r}; install Chromium or give its path")
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as folder:
        _screenshots(args, out, Path(folder))
    print(out)


def _screenshots(args: argparse.Namespace, out: Path, work: Path) -> None:
    """The four tabs' screenshots into ``out``, with an upload made in ``work``."""
    # A face the model has not trained on: a sample of the model itself, saved at twice its size.
    image = NPDraw.from_pretrained(args.model).sample(1, progress=False).to_pil()[0]
    image.resize((image.width * 2, image.height * 2), Image.BICUBIC).save(work / "upload.png")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = demo.serve(args.model, port=port, block=False)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=FLAGS)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
            page.click("#sample", timeout=60_000)
            page.wait_for_selector("#samples img", timeout=120_000)
            page.screenshot(path=str(out / "demo_sample.png"), full_page=True)
            page.get_by_role("tab", name="Watch").click()
            page.click("#watch")
            page.wait_for_selector("text=the drawing as a GIF", timeout=60_000)
            page.wait_for_timeout(3000)
            page.screenshot(path=str(out / "demo_watch.png"), full_page=True)
            page.get_by_role("tab", name="Edit").click()
            page.wait_for_selector("#decoded img", timeout=60_000)
            page.fill("#edit-step input", "3")
            page.click("#apply")
            page.wait_for_timeout(3000)
            page.screenshot(path=str(out / "demo_edit.png"), full_page=True)
            page.get_by_role("tab", name="Reconstruct").click()
            page.set_input_files("#uploads input[type=file]", str(work / "upload.png"))
            page.wait_for_timeout(1000)
            page.click("#reconstruct")
            page.wait_for_selector("#rows img", timeout=60_000)
            page.screenshot(path=str(out / "demo_reconstruct.png"), full_page=True)
            browser.close()
    finally:
        app.close()


if __name__ == "__main__":
    main()
