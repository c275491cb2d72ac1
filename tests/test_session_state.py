"""A long-lived session (a notebook): calls in odd orders, global torch settings changed between them, interrupted
work. What a call leaves behind must be what it found, and a seed must draw the same whatever the session did."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

import pytest
import torch

from np_draw import NPDraw
from np_draw import model as model_module


def _flags(model: NPDraw) -> tuple[list[bool], list[bool]]:
    return ([p.requires_grad for p in model.parameters()], [m.training for m in model.modules()])


@pytest.fixture
def float64_default():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def test_a_seed_draws_the_same_under_a_float64_default_dtype(float64_default):
    model = NPDraw.from_pretrained("mnist")
    assert model.dtype == torch.float32  # from_pretrained's dtype=None is float32, as documented
    torch.set_default_dtype(torch.float32)
    ref = model.sample(4, generator=torch.Generator().manual_seed(0), progress=False)
    encoded = model.encode(ref.images, sample=True, generator=torch.Generator().manual_seed(1))
    torch.set_default_dtype(torch.float64)
    out = model.sample(4, generator=torch.Generator().manual_seed(0), progress=False)
    assert torch.equal(out.latents.ids, ref.latents.ids) and torch.equal(out.images, ref.images)
    again = model.encode(ref.images, sample=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.ids, encoded.ids) and torch.equal(again.locs, encoded.locs)


def test_from_pretrained_leaves_the_global_generator_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    NPDraw.from_pretrained("mnist")
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_fit_trains_inside_no_grad_and_inference_mode(mnist_images, context):
    model = NPDraw.from_pretrained("mnist")
    images = mnist_images[:32]
    block = torch.no_grad() if context == "no_grad" else torch.inference_mode()
    with block:
        if context == "inference_mode":
            images = images.clone()  # an inference tensor
        history = model.fit(images, steps=1, prior_steps=1, progress=False, patience=None)
        assert not torch.is_grad_enabled()
    assert len(history.val_bound) == 1
    assert _flags(model) == _flags(NPDraw.from_pretrained("mnist"))


def test_fit_hands_back_the_callers_requires_grad_flags(mnist_images):
    model = NPDraw.from_pretrained("mnist")
    model.requires_grad_(False)
    before = _flags(model)
    history = model.fit(mnist_images[:32], steps=1, prior_steps=1, progress=False)  # trains all the same
    assert len(history.val_bound) == 1
    assert _flags(model) == before
    assert all(parameter.grad is None for parameter in model.parameters())  # no memory held by the last step's


def test_an_interrupted_fit_leaves_the_modes_and_flags_as_they_were(mnist_images):
    model = NPDraw.from_pretrained("mnist")
    before = _flags(model)

    def interrupt(epoch, history):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(mnist_images[:32], steps=2, prior_steps=1, eval_every=1, progress=False, callback=interrupt)
    assert _flags(model) == before  # not the prior frozen, nor the encoder and decoder left in training mode


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs os.fork")
def test_a_process_forked_after_sampling_gets_a_working_thread_pool():
    model = NPDraw.from_pretrained("mnist")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model.sample(256, generator=torch.Generator().manual_seed(0), progress=False)  # starts the pool
    finally:
        torch.set_num_threads(threads)
    pid = os.fork()
    if pid == 0:  # the child: the parent's pool has no threads here; work handed to it would never run
        code = 1
        try:
            code = 0 if model_module._workers().submit(int, "7").result(timeout=10) == 7 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_fit_inside_a_cpu_autocast_block_warns_that_it_trains_in_half_precision(mnist_images, caplog, monkeypatch):
    from np_draw import networks

    monkeypatch.setattr(networks, "_cpu_flags", lambda: frozenset({"sse2", "avx2"}))  # a CPU without bfloat16's
    model = NPDraw.from_pretrained("mnist")
    with caplog.at_level(logging.WARNING, logger="np_draw"), torch.autocast("cpu", dtype=torch.bfloat16):
        model.fit(mnist_images[:16], steps=1, prior_steps=1, progress=False)
    assert "fit is called inside torch.autocast on the CPU, so it trains in bfloat16: this CPU has no AVX512-BF16 " \
           "or AMX instructions" in caplog.text


def test_half_precision_is_called_slow_only_on_a_cpu_without_its_instructions(monkeypatch):
    # The warning said "many times slower" on a CPU with AVX512-BF16, where a bfloat16 sample ran as fast as a
    # float32 one, and named bfloat16's instructions for float16, which ran 20-40x slower there
    from np_draw import networks

    real = networks._cpu_flags()  # this machine's, read for real: x86's or Arm's basic flags among them
    assert real is None or "fpu" in real or "fp" in real
    monkeypatch.setattr(networks, "_cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert networks.slow_on_cpu(torch.bfloat16) is None and networks.slow_on_cpu(torch.float32) is None
    assert "this CPU has no AVX512-FP16 or AMX-FP16 instructions" in networks.slow_on_cpu(torch.float16)
    monkeypatch.setattr(networks, "_cpu_flags", lambda: None)  # not Linux: not known
    assert networks.slow_on_cpu(torch.bfloat16).startswith("a CPU without AVX512-BF16 or AMX instructions")


def test_fit_of_a_model_loaded_inside_inference_mode_says_why_it_cannot_train(mnist_images):
    """Its weights are inference tensors: fit failed deep inside with torch's 'Setting requires_grad=True on
    inference tensor outside InferenceMode is not allowed'."""
    from np_draw.errors import InvalidInputError

    with torch.inference_mode():
        model = NPDraw.from_pretrained("mnist")
        with pytest.raises(InvalidInputError, match=r"weights were made under torch.inference_mode\(\).*load the "
                                                    r"model outside the inference_mode block"):
            model.fit(mnist_images[:16], steps=1, prior_steps=1, progress=False)


def test_fit_after_a_bound_measured_inside_inference_mode(mnist_images):
    """The first log p(z) of a session builds a table the process keeps (canvas._touched_tiles): built inside
    inference_mode it was an inference tensor, and every later log p(z) with gradients (fit's prior stage, log_weights
    with grad) failed with 'Inference tensors cannot be saved for backward'."""
    from np_draw import canvas
    from np_draw.metrics import nll

    model = NPDraw.from_pretrained("mnist")
    canvas._touched_tiles.cache_clear()  # as in a fresh session, whatever the tests before this one computed
    try:
        with torch.inference_mode():
            nll(model, mnist_images[:2], num_samples=2, progress=False)
        history = model.fit(mnist_images[:16], steps=1, prior_steps=1, progress=False)
        assert len(history.val_bound) == 1
    finally:
        canvas._touched_tiles.cache_clear()  # nothing made here outlives the test


def _overlapping_samples(model: NPDraw, second_inside: Callable[[], None]) -> None:
    """Two threads sample from ``model`` at once, as the demo's requests do: the second begins while the first is
    inside its draw, and draws only after the first has returned; ``second_inside()`` runs in the second's draw
    just then."""
    entered, joined, first_done = threading.Event(), threading.Event(), threading.Event()
    sample, errors = model.prior.sample, []

    def prior_sample(*args, **kwargs):
        if threading.current_thread().name == "first":
            entered.set()
            assert joined.wait(60)
        else:
            joined.set()
            assert first_done.wait(60)
            second_inside()
        return sample(*args, **kwargs)

    def run() -> None:
        try:
            model.sample(2, generator=torch.Generator().manual_seed(0), progress=False)
        except BaseException as error:  # noqa: BLE001 (reported by the test's thread)
            errors.append(error)
        finally:
            if threading.current_thread().name == "first":
                first_done.set()

    model.prior.sample = prior_sample
    try:
        first = threading.Thread(target=run, name="first")
        first.start()
        assert entered.wait(60)
        second = threading.Thread(target=run, name="second")
        second.start()
        first.join()
        second.join()
    finally:
        del model.prior.sample
    assert not errors, errors


def test_overlapping_samples_of_a_training_model_draw_in_eval_mode_and_leave_it_training():
    """The first sample to end handed the model back in training mode while the other was still drawing (its
    decoder's BatchNorm then used batch statistics, and changed its running statistics), and the last to end put
    it in eval mode for good (it had found it so)."""
    model = NPDraw.from_pretrained("mnist").train()
    modes = []
    _overlapping_samples(model, lambda: modes.append([module.training for module in model.modules()]))
    assert modes and not any(modes[0])
    assert all(module.training for module in model.modules())


def test_overlapping_samples_leave_torch_s_thread_count_as_they_found_it():
    """A sample sets torch's intra-op threads to 1 while it draws, which also sets the count that threads begin
    with; one that began while another drew found that 1 and gave it back last: every thread started afterwards (a
    server's next request) ran on one intra-op thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _overlapping_samples(NPDraw.from_pretrained("mnist"), lambda: None)
        later = []
        thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert later == [2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs os.fork")
def test_a_process_forked_while_another_thread_is_in_an_evaluating_block_starts_with_nothing_held():
    """networks.Overlapping forgets, in a forked copy, the blocks of threads that do not go on there and a lock that
    may have been copied held: evaluating in the child neither hangs nor keeps the parent's first-found mode."""
    from np_draw.networks import Overlapping, evaluating

    module = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).train()
    shared, inside, done = Overlapping(), threading.Event(), threading.Event()
    assert shared.hold({"k": 1}) == {"k": 1} and shared.hold({"k": 2}) == {"k": 1}  # the first holder's value
    assert shared.release(["k"]) == {} and shared.release(["k"]) == {"k": 1}  # handed back by the last

    def hold() -> None:
        with evaluating(module), shared.lock:  # a block under way, and a lock held, when the process is copied
            inside.set()
            done.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    inside.wait(10)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if shared.lock.acquire(timeout=5):  # the copy of a held lock would wait for ever
                shared.lock.release()
                module.train()
                with evaluating(module):
                    code = 0 if not module.training else 1
                code = code or (0 if module.training else 1)  # the parent's block is not counted here
        finally:
            os._exit(code)
    done.set()
    thread.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and module.training
