"""np-draw demo: the page's functions without a browser, then the page itself in a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from np_draw import Latents, demo
from np_draw.errors import InvalidInputError
from np_draw.images import from_pil_images

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _drawn_step(drawing: demo.Drawing) -> int:
    return int(drawing.latents.present[0].nonzero()[0, 0])


def test_sampling_is_seeded_and_gives_one_drawing_per_image():
    images, drawings = demo.sample("mnist", 3, 1.0, 4)
    again, _ = demo.sample("mnist", 3, 1.0, 4)
    assert len(images) == len(drawings) == 4 and all(d.latents.ids.shape == (1, 36) for d in drawings)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, again))
    assert images[0].size == (28 * demo.SCALE, 28 * demo.SCALE)
    _, decoded = demo.show(drawings[2])
    # The drawing is the image shown (to a grey level: a convolution over another batch size may round apart).
    assert np.abs(np.asarray(decoded, dtype=int) - np.asarray(images[2], dtype=int)).max() <= 1


def test_an_uploaded_image_becomes_a_drawing_to_watch_and_edit(tmp_path):
    drawing = demo.from_image("mnist", Image.new("L", (60, 40), 0))
    assert drawing.latents.ids.shape == (1, 36) and drawing.latents.present.sum() == 0  # a blank image draws nothing
    digit = demo.from_image("mnist", demo.sample("mnist", 0, 1.0, 1)[0][0])
    # Framed by its centre first, as the Reconstruct tab frames files: the same drawing as the image cut by hand
    framed = demo.from_image("mnist", Image.new("L", (60, 40), 255), crop=30)
    by_hand = demo.from_image("mnist", Image.new("L", (60, 40), 255).crop((15, 5, 45, 35)))
    assert torch.equal(framed.latents.ids, by_hand.latents.ids) and torch.equal(framed.latents.canvas,
                                                                                by_hand.latents.canvas)
    with pytest.raises(InvalidInputError, match=r"crop=50 px does not fit the image: it is 60x40 px"):
        demo.from_image("mnist", Image.new("L", (60, 40), 0), crop=50)
    frames, _ = demo.watch(digit, tmp_path)
    assert len(frames) == int(digit.latents.present.sum()) + 1 > 1


def test_watching_gives_a_frame_per_drawn_step_and_the_decoded_image(tmp_path):
    _, drawings = demo.sample("mnist", 0, 1.0, 1)
    frames, gif = demo.watch(drawings[0], tmp_path)
    assert len(frames) == int(drawings[0].latents.present.sum()) + 1
    with Image.open(gif) as animation:
        assert animation.n_frames >= 2


def test_edits_change_the_drawing_as_they_say():
    _, drawings = demo.sample("mnist", 0, 1.0, 1)
    drawing = drawings[0]
    t = _drawn_step(drawing)  # drawn part 0 is drawn at step t
    removed = demo.edit(drawing, demo.ACTIONS[0], 0)
    assert removed.latents.present[0, t] == 0 and removed.latents.present.sum() == drawing.latents.present.sum() - 1
    moved = demo.edit(drawing, demo.ACTIONS[1], 0, cell=35)
    assert moved.latents.locs[0, t] == 35 and not torch.equal(moved.latents.canvas, drawing.latents.canvas)
    swapped = demo.edit(drawing, demo.ACTIONS[2], 0, part=7)
    assert swapped.latents.ids[0, t] == 7
    completed = demo.edit(drawing, demo.ACTIONS[3], 18, seed=1)
    assert torch.equal(completed.latents.ids[0, :18], drawing.latents.ids[0, :18])
    canvas, decoded = demo.show(completed)
    assert canvas.size == decoded.size == (28 * demo.SCALE, 28 * demo.SCALE)
    pasted = demo.paste(drawing, Image.new("L", (40, 40), 0), (0, 5))  # a blank image over every row
    assert pasted.latents.present.sum() == 0
    count = int(drawing.latents.present.sum())
    with pytest.raises(InvalidInputError, match=rf"step must be a drawn part's number in \[0, {count - 1}\]"):
        demo.edit(drawing, demo.ACTIONS[0], count)
    # Completion keeps up to all T = 36 steps (the drawing itself), as complete does
    kept = demo.edit(drawing, demo.ACTIONS[3], 36)
    assert all(torch.equal(a, b) for a, b in zip((kept.latents.ids, kept.latents.locs, kept.latents.present),
                                                 (drawing.latents.ids, drawing.latents.locs, drawing.latents.present)))
    with pytest.raises(InvalidInputError, match=r"step must be a whole number in \[0, 36\], got 37"):
        demo.edit(drawing, demo.ACTIONS[3], 37)
    with pytest.raises(InvalidInputError, match=r"part must be a whole number in \[0, 49\], got 50"):
        demo.edit(drawing, demo.ACTIONS[2], 0, part=50)
    with pytest.raises(InvalidInputError, match=r"step must be a drawn part's number in \[0, \d+\].*, got None"):
        demo.edit(drawing, demo.ACTIONS[0], None)  # an emptied field
    with pytest.raises(InvalidInputError, match=r"seed must be a whole number in \[0, \d+\], got None"):
        demo.edit(drawing, demo.ACTIONS[3], 18, seed=None)  # an emptied seed field
    with pytest.raises(InvalidInputError, match=r"seed must be a whole number in \[0, \d+\], got -1"):
        demo.sample("mnist", -1, 1.0, 1)
    with pytest.raises(InvalidInputError, match=r"rows must be two grid rows first <= last in \[0, 5\], got \(None, 2\)"):
        demo.paste(drawing, Image.new("L", (40, 40), 0), (None, 2))  # an emptied row field
    with pytest.raises(InvalidInputError, match="action must be one of"):
        demo.edit(drawing, "nope", 999)  # the action is named, not the step
    with pytest.raises(InvalidInputError, match="this drawing has no drawn part to remove"):
        blank = torch.zeros_like(drawing.latents.present)
        demo.edit(demo.Drawing("mnist", Latents(drawing.latents.ids, drawing.latents.locs, blank)), demo.ACTIONS[0], 0)


def test_reconstruct_takes_any_size_and_names_a_file_that_is_not_an_image(tmp_path):
    Image.new("RGB", (90, 60), (200, 200, 200)).save(tmp_path / "face.png")
    (tmp_path / "notes.png").write_text("not an image")
    picture, text = demo.reconstruct("celeba", [tmp_path / "face.png"])
    assert picture.width > 64 and text.startswith("reconstruction PSNR: face.png: ")
    with pytest.raises(InvalidInputError, match="notes.png is not an image this page can read"):
        demo.reconstruct("celeba", [tmp_path / "notes.png"])
    # A crop frames each image by its centre first: a face in the middle of a wide grey picture is all that is left
    Image.new("RGB", (148, 148), (30, 90, 160)).save(tmp_path / "centre.png")
    framed = Image.new("RGB", (178, 218), (200, 200, 200))
    framed.paste(Image.open(tmp_path / "centre.png"), (15, 35))
    framed.save(tmp_path / "photo.png")
    (cropped, text), (whole, _) = (demo.reconstruct("celeba", [tmp_path / n], crop) for n, crop in
                                   (("photo.png", 148), ("centre.png", 0)))
    assert text.startswith("reconstruction PSNR: photo.png: ") and cropped.tobytes() == whole.tobytes()
    with pytest.raises(InvalidInputError, match=r"crop=200 px does not fit face.png: it is 90x60 px"):
        demo.reconstruct("celeba", [tmp_path / "face.png"], 200)
    with pytest.raises(InvalidInputError, match=r"crop must be a whole number in \[0, 65535\] px \(0: none\), got 1.5"):
        demo.reconstruct("celeba", [tmp_path / "face.png"], 1.5)
    with pytest.raises(InvalidInputError, match=r"model must be one of \['mnist', 'omniglot', 'cifar10', 'celeba'\]"):
        demo.load("mnsit")


def test_sample_count_is_a_whole_number_of_samples_the_page_offers():
    # Through the page's API a count of 1.5 was drawn as 1 sample, and a direct call drew any number
    for count in (1.5, 0, demo.MAX_SAMPLES + 1, None):
        with pytest.raises(InvalidInputError, match=rf"count must be a whole number in \[1, {demo.MAX_SAMPLES}\], got"):
            demo.sample("mnist", 0, 1.0, count)


def test_upload_messages_name_the_file_and_what_to_do_not_the_servers_copy_of_it(tmp_path):
    copy = tmp_path / "gradio" / "0123abcd"  # where Gradio keeps an upload
    copy.mkdir(parents=True)
    (copy / "notes.png").write_text("not an image")
    Image.new("RGB", (30, 30), (200, 20, 20)).save(copy / "red.png")
    Image.new("RGB", (30, 30), (0, 0, 0)).save(copy / "black.png")
    # It was "cannot identify image file '/tmp/gradio/0123abcd/notes.png'": the server's folders, on a page that
    # --host 0.0.0.0 opens to the network
    with pytest.raises(InvalidInputError, match=r"^notes\.png is not an image this page can read: it is not in an "
                                                r"image format Pillow reads") as caught:
        demo.reconstruct("celeba", [copy / "black.png", copy / "notes.png"])
    assert str(tmp_path) not in str(caught.value)
    # It was "image 1 is a colour image ... use a colour model (a cifar10 or celeba preset or checkpoint)"
    with pytest.raises(InvalidInputError, match=r"^red\.png is a colour image, and the mnist model draws grey ones: "
                                                r"choose cifar10 or celeba in the model menu, or upload a grey image$"):
        demo.reconstruct("mnist", [copy / "black.png", copy / "red.png"])


def test_a_paste_that_overflows_the_drawing_says_what_to_do():
    # A CIFAR-10 sample fills its 64 steps, some cells twice (all 16 of a batch overflowed on a three-row paste):
    # "drawing 0 would have more than T=64 drawn steps after the paste" gave nothing to act on.
    # Here all 64 steps draw below row 2, the last 24 in cells drawn already.
    images, _ = demo.sample("cifar10", 0, 1.0, 1)
    locs = (24 + torch.arange(64) % 40)[None]
    full = demo.Drawing("cifar10", Latents(torch.zeros_like(locs), locs, torch.ones_like(locs)))
    with pytest.raises(InvalidInputError, match=r"^drawing 0: the source draws \d+ parts in the region and the target "
                                                r"64 outside it, more than its T=64 steps hold: paste a smaller "
                                                r"region, or remove \d+ of the target's parts outside it first$") as caught:
        demo.paste(full, images[0], (0, 2))
    # As it says: that many parts removed (drawn part 0, as the Edit tab counts them, each time), the paste fits
    for _ in range(int(str(caught.value).split("remove ")[1].split()[0])):
        full = demo.edit(full, demo.ACTIONS[0], 0)
    assert demo.paste(full, images[0], (0, 2)).latents.present.sum() == 64


def test_reconstruct_decodes_one_upload_at_a_time(monkeypatch, tracked_opens):
    # Every upload was decoded at full size before any was resized: eight 10,000 px PNGs (300 kB each) held 3.8 GB,
    # where one at a time holds 1.1 GB however many there are
    files, open_image, alive = tracked_opens
    monkeypatch.setattr(demo, "open_image", open_image)
    _, text = demo.reconstruct("mnist", files)
    assert text.count("dB") == 4 and max(alive) <= 1, alive  # the one before, at most, while the next is read


def test_a_mistake_on_the_page_is_a_message_not_a_stack_trace_in_the_terminal():
    gr = pytest.importorskip("gradio", reason="needs the demo extra (in the dev extra)")
    # gr.Error printed both tracebacks (np-draw's and Gradio's, 40 lines) on the server's terminal for each one
    with pytest.raises(gr.Error) as caught:
        demo._guard(demo.reconstruct)("mnist", [])
    assert caught.value.message == "upload at least one image" and not caught.value.print_exception


def test_the_edit_tabs_uploads_are_read_as_reconstruct_reads_files(tmp_path, monkeypatch):
    pytest.importorskip("gradio", reason="needs the demo extra (in the dev extra)")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # where Gradio keeps uploads, and _upload reads them
    # Gradio opened them itself: a file that was not an image left "Error" in the canvas and no message (its error
    # is hidden), and a 16-bit PNG was converted to RGB by clipping every level above 255 to white
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(InvalidInputError, match=r"^notes\.png is not an image this page can read: it is not in an "
                                                r"image format Pillow reads"):
        demo._upload("celeba", {"path": str(tmp_path / "notes.png"), "orig_name": "notes.png"})
    with pytest.raises(InvalidInputError, match=r"^upload an image file first$"):
        demo._upload("celeba", None)
    levels = (np.arange(40 * 40).reshape(40, 40) * 40).astype(np.uint16)  # 0 .. 63,960
    Image.fromarray(levels).save(tmp_path / "deep.png")
    picture = demo._upload("mnist", {"path": str(tmp_path / "deep.png")})
    seen = from_pil_images([picture], channels=1, size=40)  # what the model is given: the levels scaled to 0..255
    assert picture.mode == "I;16" and seen.max() > 200 and seen.float().mean() < 160


def test_the_edit_tabs_read_no_file_but_the_uploads(tmp_path, monkeypatch):
    pytest.importorskip("gradio", reason="needs the demo extra (in the dev extra)")
    # Gradio checks the path of a file in a request only where the request marks it as one ("meta"): through its
    # API, {"path": "/any/file"} reached _upload, which opened it (its name and whether it exists in the message,
    # an image's encoding in the reply)
    (tmp_path / "uploads").mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    Image.new("L", (28, 28), 0).save(tmp_path / "secret.png")
    for path in (tmp_path / "secret.png", tmp_path / "uploads" / ".." / "secret.png", tmp_path / "missing.png",
                 tmp_path / "uploads2" / "x.png"):
        with pytest.raises(InvalidInputError, match=r"^this page reads only the files uploaded to it: upload an "
                                                    r"image file$"):
            demo._upload("mnist", {"path": str(path)})
    Image.new("L", (28, 28), 0).save(tmp_path / "uploads" / "mine.png")
    assert demo._upload("mnist", {"path": str(tmp_path / "uploads" / "mine.png")}).size == (28, 28)


def test_the_pages_api_reads_no_file_but_the_uploads(tmp_path, monkeypatch):
    httpx = pytest.importorskip("httpx", reason="needs the demo extra (Gradio's client)")
    pytest.importorskip("gradio", reason="needs the demo extra (in the dev extra)")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # Gradio's cache and the page's folder
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    (tmp_path / "tmp").mkdir()
    Image.new("L", (28, 28), 255).save(tmp_path / "secret.png")
    port = _free_port()
    app = demo.serve("mnist", port=port, block=False)

    def call(name: str, *data) -> str:
        event = httpx.post(f"http://127.0.0.1:{port}/gradio_api/call/{name}", json={"data": data}, timeout=30)
        return httpx.get(f"http://127.0.0.1:{port}/gradio_api/call/{name}/{event.json()['event_id']}",
                         timeout=60).text

    try:
        meta = {"meta": {"_type": "gradio.FileData"}}
        for payload in ({"path": str(tmp_path / "secret.png")}, {"path": str(tmp_path / "secret.png"), **meta}):
            for reply in (call("adopt", "mnist", payload, 0), call("reconstruct", "mnist", [payload], 0)):
                assert reply.startswith("event: error") and "secret" not in reply, reply
        # What the page sends for an upload is read
        path = httpx.post(f"http://127.0.0.1:{port}/gradio_api/upload", timeout=30,
                          files={"files": ("mine.png", (tmp_path / "secret.png").read_bytes())}).json()[0]
        reply = call("adopt", "mnist", {"path": path, "orig_name": "mine.png", **meta}, 0)
        assert reply.startswith("event: complete"), reply
    finally:
        app.close()


def test_the_page_warns_when_other_machines_can_reach_it(monkeypatch, caplog):
    assert demo.open_to_network("0.0.0.0") and not demo.open_to_network("127.0.0.1")
    assert not demo.open_to_network("localhost")
    assert demo.open_to_network("::") and not demo.open_to_network("::1")
    assert not demo.open_to_network("::ffff:127.0.0.1")  # 127.0.0.1: it was warned of

    def built(model):
        raise RuntimeError("built")

    monkeypatch.setattr(demo, "build", built)
    pytest.importorskip("gradio", reason="needs the demo extra (in the dev extra)")
    with caplog.at_level("WARNING", logger="np_draw.demo"), pytest.raises(RuntimeError, match="built"):
        demo.serve("mnist", host="0.0.0.0", port=_free_port())
    assert "can be reached from other machines, with no password" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="np_draw.demo"), pytest.raises(RuntimeError, match="built"):
        demo.serve("mnist", port=_free_port())
    assert not caplog.text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _edited_samples(p, port: int, shown: str):
    """A browser on the page at ``port`` that drew 16 samples and opened the Edit tab, once ``shown`` (a selector)
    is there: (browser, page)."""
    browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
    page.click("#sample", timeout=60_000)
    page.wait_for_function("document.querySelectorAll('#samples img').length === 16", timeout=60_000)
    page.get_by_role("tab", name="Edit").click()
    page.wait_for_selector(shown, timeout=30_000)
    return browser, page


def test_reconstruct_of_an_upload_the_cache_cleanup_removed_says_to_upload_it_again(tmp_path):
    # A page open for more than a day still lists an upload that delete_cache removed: it was "not an image this
    # page can read: [Errno 2] No such file or directory"
    with pytest.raises(InvalidInputError, match=r"^gone\.png is no longer kept by this page \(uploads are removed a "
                                                r"day after they were made\): upload it again$"):
        demo.reconstruct("mnist", [tmp_path / "gone.png"])


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_the_page_samples_edits_and_reconstructs_in_a_real_browser(tmp_path, monkeypatch):
    pytest.importorskip("gradio", reason="needs the demo extra (in the dev extra)")
    playwright = pytest.importorskip("playwright.sync_api", reason="needs playwright (in the dev extra)")
    # The page's own files and Gradio's copies of uploads and results, where this test can see what is left of them
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    port = _free_port()
    app = demo.serve("mnist", port=port, block=False)
    Image.new("L", (50, 50), 255).save(tmp_path / "upload.png")
    (tmp_path / "junk.png").write_text("not an image")
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
            page.click("#sample", timeout=60_000)
            page.wait_for_selector("#samples img", timeout=60_000)
            page.locator("#samples img").nth(2).click()  # the third sample, opened for watching and editing
            page.wait_for_function("document.querySelector('#chosen input').value === '2'", timeout=30_000)
            page.keyboard.press("Escape")  # the gallery's enlarged preview
            page.screenshot(path=str(tmp_path / "sample.png"))
            page.get_by_role("tab", name="Edit").click()
            page.wait_for_selector("#decoded img", timeout=60_000)
            before = page.get_attribute("#canvas img", "src")
            page.fill("#edit-step input", "0")
            page.click("#apply")
            page.wait_for_function("src => document.querySelector('#canvas img').src !== src", arg=before,
                                   timeout=60_000)
            page.screenshot(path=str(tmp_path / "edit.png"))
            page.get_by_role("tab", name="Reconstruct").click()
            page.set_input_files("#uploads input[type=file]", str(tmp_path / "upload.png"))
            page.wait_for_timeout(1000)
            page.click("#reconstruct")
            page.wait_for_selector("#rows img", timeout=60_000)
            assert "upload.png" in page.input_value("#psnr textarea")
            # A file that is not an image: a message on the page, and the server goes on answering.
            page.set_input_files("#uploads input[type=file]", str(tmp_path / "junk.png"))
            page.wait_for_timeout(1000)
            page.click("#reconstruct")
            page.wait_for_selector("text=is not an image this page can read", timeout=60_000)
            page.get_by_role("tab", name="Watch").click()
            page.click("#watch")
            page.wait_for_selector("#gif a", timeout=60_000)
            assert any(temporary.rglob("upload.png")) and len(list(temporary.rglob("*.gif"))) == 2  # ours, Gradio's
            browser.close()
    finally:
        app.close()
    # Gradio's copies of the user's uploads and of the results are gone once the page stops (what is left are empty
    # stubs of its multipart parser)
    left = [str(path) for path in (temporary / "gradio").rglob("*") if path.is_file() and path.stat().st_size]
    assert not left, left
    with Image.open(tmp_path / "edit.png") as shot:
        assert shot.width > 500
    time.sleep(0.1)


# Whether the Edit tab's decoded image is shown, and not the one of src (the argument)
OTHER_DECODED = "src => { const image = document.querySelector('#decoded img'); " \
                "return image !== null && image.getAttribute('src') !== src; }"


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_the_page_shows_no_drawing_of_another_model_or_of_the_samples_before(tmp_path, monkeypatch):
    pytest.importorskip("gradio", reason="needs the demo extra (in the dev extra)")
    playwright = pytest.importorskip("playwright.sync_api", reason="needs playwright (in the dev extra)")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # Gradio's cache and the page's folder
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    hold, started, release, finished = (threading.Event() for _ in range(4))
    sample = demo.sample

    def held(*args):  # a sample that takes its time, where asked
        if not hold.is_set():
            return sample(*args)
        started.set()
        try:
            release.wait(60)
            return sample(*args)
        finally:
            finished.set()

    monkeypatch.setattr(demo, "sample", held)
    port = _free_port()
    app = demo.serve("mnist", port=port, block=False)
    try:
        with playwright.sync_playwright() as p:
            browser, page = _edited_samples(p, port, "#decoded img")
            first = page.get_attribute("#decoded img", "src")  # the first sample's drawing, then the tenth's
            page.get_by_role("tab", name="Sample").click()
            page.fill("#chosen input", "10")
            page.press("#chosen input", "Enter")
            page.get_by_role("tab", name="Edit").click()
            page.wait_for_function(OTHER_DECODED, arg=first, timeout=30_000)
            tenth = page.get_attribute("#decoded img", "src")
            # Fewer samples than the number chosen: it was an error, and Edit and Watch kept sample 10 of the last
            page.get_by_role("tab", name="Sample").click()
            page.get_by_label("number input for count").fill("4")
            page.get_by_label("number input for count").press("Enter")
            page.click("#sample")
            page.wait_for_function("document.querySelectorAll('#samples img').length === 4", timeout=60_000)
            page.wait_for_function("document.querySelector('#chosen input').value === '0'", timeout=15_000)
            page.get_by_role("tab", name="Edit").click()
            page.wait_for_function(OTHER_DECODED, arg=tenth, timeout=15_000)
            assert not page.locator(".toast-body").count()
            # Another model: its name over the last one's samples and drawing, which Edit and Watch went on using
            page.get_by_role("combobox", name="model").click()
            page.get_by_role("option", name="omniglot", exact=True).click()
            page.wait_for_selector("#decoded img", state="detached", timeout=30_000)
            page.get_by_role("tab", name="Watch").click()
            page.click("#watch")
            page.wait_for_selector("text=sample first (the Sample tab)", timeout=30_000)
            page.get_by_role("tab", name="Sample").click()
            assert not page.locator("#samples img").count()
            # A file that is not an image, for Edit's "Use this image": a message naming it
            page.get_by_role("tab", name="Edit").click()
            page.set_input_files("#own input[type=file]", str(junk))
            page.wait_for_selector("#own img", timeout=30_000)  # uploaded: before, the click sends no file
            page.click("#use")
            page.wait_for_selector("text=junk.png is not an image this page can read", timeout=30_000)
            # A sample still running when another model is chosen: its samples came after the choice cleared the
            # page, under the new model's name
            page.get_by_role("tab", name="Sample").click()
            page.click("#sample")
            page.wait_for_function("document.querySelectorAll('#samples img').length === 4", timeout=60_000)
            hold.set()
            page.click("#sample")
            assert started.wait(60)
            page.get_by_role("combobox", name="model").click()
            page.get_by_role("option", name="mnist", exact=True).click()
            page.wait_for_function("document.querySelectorAll('#samples img').length === 0", timeout=30_000)
            release.set()
            assert finished.wait(60)
            page.wait_for_timeout(2000)  # its samples, where they are shown: at once
            assert not page.locator("#samples img").count()
            browser.close()
    finally:
        release.set()
        app.close()


def test_the_page_leaves_no_files_behind_when_its_process_ends(tmp_path):
    pytest.importorskip("gradio", reason="needs the demo extra (in the dev extra)")
    # The Watch tab's GIFs are written into a folder of the page's own, which goes with the process
    script = ("import pathlib, tempfile; from np_draw import demo; app = demo.build(); "
              "[folder] = pathlib.Path(tempfile.gettempdir()).glob('np-draw-demo-*'); "
              "(folder / 'mnist-drawing.gif').write_bytes(b'GIF89a'); print(folder)")
    run = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TMPDIR": str(tmp_path), "GRADIO_ANALYTICS_ENABLED": "False"})
    assert run.returncode == 0, run.stderr
    assert Path(run.stdout.strip()).parent == tmp_path and not Path(run.stdout.strip()).exists()


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or sys.platform == "win32", reason="POSIX signals")
def test_the_page_stopped_by_sigterm_removes_the_uploads_it_kept(tmp_path):
    httpx = pytest.importorskip("httpx", reason="needs the demo extra (Gradio's client)")
    pytest.importorskip("gradio", reason="needs the demo extra (in the dev extra)")
    # SIGTERM (kill, systemd, docker stop) ended the process at once: Gradio's cache kept the user's uploads and
    # the page's folder its GIFs for good, where Ctrl+C removed them
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path), "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("GRADIO_TEMP_DIR", None)
    server = subprocess.Popen([sys.executable, "-c", f"from np_draw import demo; demo.serve(port={port})"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                reply = httpx.post(f"http://127.0.0.1:{port}/gradio_api/upload",
                                   files={"files": ("photo.png", b"\x89PNG not really")}, timeout=10)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, server.communicate()[0]
                time.sleep(0.5)
        assert reply.status_code == 200 and Path(reply.json()[0]).is_relative_to(tmp_path)
        assert Path(reply.json()[0]).is_file() and any(tmp_path.glob("np-draw-demo-*"))
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0]
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    left = [str(path) for path in tmp_path.rglob("*") if path.is_file() and path.stat().st_size]
    assert not left and not any(tmp_path.glob("np-draw-demo-*")), (left, output)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_serve_leaves_an_ignored_sighup_ignored_and_ends_its_cleanup_through_a_second_signal(monkeypatch):
    pytest.importorskip("gradio", reason="needs the demo extra (in the dev extra)")
    # nohup np-draw demo ignores SIGHUP to outlive its terminal: serve made it stop the page all the same. And a
    # second signal (SIGHUP then SIGTERM as a terminal closes) raised KeyboardInterrupt in the cleanup the first had
    # started: the server was left unclosed and Gradio's cache (the user's uploads) kept
    seen = {}

    class App:
        def launch(self, **_):
            seen["hup"] = signal.getsignal(signal.SIGHUP)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # where the signal stops it
            seen["slept"] = True

        def close(self):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)
            seen["closed"] = True

    monkeypatch.setattr(demo, "build", lambda model: App())
    term = signal.getsignal(signal.SIGTERM)
    hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt, match=f"signal {int(signal.SIGTERM)}"):
            demo.serve("mnist", port=_free_port())
        assert seen == {"hup": signal.SIG_IGN, "closed": True}, seen
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN and signal.getsignal(signal.SIGTERM) is term
    finally:
        signal.signal(signal.SIGHUP, hup)
        signal.signal(signal.SIGTERM, term)


def test_np_draw_demo_without_gradio_says_how_to_install_it(monkeypatch, capsys):
    from np_draw.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # as if not installed: import raises
    assert main(["demo"]) == 2
    assert "np-draw demo: error: np-draw demo needs the demo extra: pip install 'np-draw[demo]'" in capsys.readouterr().err


def test_np_draw_demo_on_a_port_in_use_says_so_before_it_starts(capsys):
    pytest.importorskip("gradio", reason="needs the demo extra (in the dev extra)")
    from np_draw.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["demo", "--port", str(port)]) == 2
        out, err = capsys.readouterr()
        assert not out and f"cannot serve the page on 127.0.0.1:{port}: Address already in use; pass another port" in err
        with pytest.raises(InvalidInputError, match="Address already in use"):
            demo.serve("mnist", port=port, block=False)
    with pytest.raises(InvalidInputError, match="cannot serve the page on 192.0.2.1"):  # not this machine's address
        demo.check_address("192.0.2.1", 7860)
    # A name that is no host name was a bare UnicodeError ("encoding with 'idna' codec failed")
    for host in ("x..y", "a" * 64):
        with pytest.raises(InvalidInputError, match=rf"cannot serve the page on {host}:7860: .*idna"):
            demo.check_address(host, 7860)


@pytest.mark.parametrize("port", [70000, 65536, -1, True, 7860.0, "7860"])
def test_check_address_refuses_a_port_that_is_not_a_port_number(port):
    # getaddrinfo takes 70000 for 70000 % 65536 = 4464: the probe bound that port and said 70000 was free
    with pytest.raises(InvalidInputError, match=r"port must be an int in \[0, 65535\], got"):
        demo.check_address("127.0.0.1", port)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_a_click_on_the_sample_already_chosen_opens_it_again(tmp_path, monkeypatch):
    pytest.importorskip("gradio", reason="needs the demo extra (in the dev extra)")
    playwright = pytest.importorskip("playwright.sync_api", reason="needs playwright (in the dev extra)")
    # The click only set the sample's number, and its change opened the sample: after an edit, a click on the
    # sample being edited (to start again) changed no number, and Edit went on with the edited drawing
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    port = _free_port()
    app = demo.serve("mnist", port=port, block=False)
    try:
        with playwright.sync_playwright() as p:
            browser, page = _edited_samples(p, port, "#canvas img")
            sampled = page.get_attribute("#canvas img", "src")
            page.click("#apply")  # drawn part 0 removed
            page.wait_for_function("src => document.querySelector('#canvas img').src !== src", arg=sampled,
                                   timeout=60_000)
            page.get_by_role("tab", name="Sample").click()
            page.locator("#samples img").nth(0).click()
            page.keyboard.press("Escape")  # the gallery's enlarged preview
            page.get_by_role("tab", name="Edit").click()
            page.wait_for_function("src => document.querySelector('#canvas img').getAttribute('src') === src",
                                   arg=sampled, timeout=30_000)
            assert page.input_value("#chosen input") == "0" and not page.locator(".toast-body").count()
            browser.close()
    finally:
        app.close()


def test_watching_a_drawing_of_no_drawn_part_shows_its_decoded_image(tmp_path, monkeypatch):
    pytest.importorskip("gradio", reason="needs the demo extra (in the dev extra)")
    from gradio_client import Client, handle_file

    # Its one frame made a step slider from 0 to 0, which Gradio refused ("Slider minimum must be less than
    # maximum"): no frame and no GIF for a blank upload, or a drawing with every part removed
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    Image.new("L", (28, 28), 0).save(tmp_path / "blank.png")
    port = _free_port()
    app = demo.serve("mnist", port=port, block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path / "downloads"))
        client.predict("mnist", handle_file(str(tmp_path / "blank.png")), 0, api_name="/adopt")  # one session
        step, frame, gif = client.predict(api_name="/film")
        assert step["value"] == 0 and not step["interactive"] and Path(frame).is_file()
        with Image.open(gif) as animation:
            assert animation.n_frames == 1
        # The one-frame slider's 1 (through the API, its slider being held) shows that frame, not an IndexError
        assert Path(client.predict(1, api_name="/at")).is_file()
    finally:
        app.close()


@pytest.mark.skipif(not socket.has_ipv6, reason="needs IPv6")
def test_the_page_serves_on_an_ipv6_address(tmp_path, monkeypatch, capsys):
    httpx = pytest.importorskip("httpx", reason="needs the demo extra (Gradio's client)")
    pytest.importorskip("gradio", reason="needs the demo extra (in the dev extra)")
    from np_draw.cli import main

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    # Gradio takes an IPv6 address in brackets: given ::1 it checked its new server at http://::1:P/, and the page
    # stopped on a traceback (httpx.InvalidURL), where open_to_network calls ::1 this machine's own
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    port = _free_port()
    app = demo.serve("mnist", host="::1", port=port, block=False)
    try:
        assert httpx.get(f"http://[::1]:{port}/", timeout=30).status_code == 200
    finally:
        app.close()
    # The address the command line prints is one a browser opens
    monkeypatch.setattr("np_draw.cli.serve", lambda *args, **kwargs: None)
    assert main(["demo", "--host", "::1", "--port", str(port)]) == 0
    assert f"np-draw demo on http://[::1]:{port} (Ctrl+C stops it)" in capsys.readouterr().out


def test_a_temperature_that_is_no_number_is_named():
    # Through the page's API an emptied temperature was float()'s "argument must be a string or a real number,
    # not 'NoneType'", which named no field
    with pytest.raises(InvalidInputError, match=r"^temperature must be a positive finite number, got None$"):
        demo.sample("mnist", 0, None, 1)
