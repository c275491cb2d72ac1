"""The prior p(z) (spec §5): a causal Transformer over the canvases drawn so far.

Token t sees the canvas after steps < t plus a footprint channel (both masked by z_is), embedded by a shallow CNN,
plus a sinusoidal encoding of t (Vaswani et al., 2017); it predicts z_id, z_loc and z_is of step t, independently
given the history. Sampling keeps a key/value cache, so drawing T steps costs O(T) token evaluations, not the
O(T²) of re-running the prefix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .bank import PartBank
from .canvas import Grid
from .config import PriorConfig
from .errors import InvalidInputError, InvalidTypeError, check_flags, check_temperature
from .latents import Latents, StepLogits, gumbel


class CanvasEmbedding(nn.Module):
    """The shallow CNN (paper: two layers of 16 channels, ReLU after the first) and a projection to the model width.

    The first layer is a 4x4 convolution with stride 4 and the second a 1x1 convolution, written as linear maps on
    4x4 patches: the same function as ``nn.Conv2d``, several times faster to train on a CPU than 3x3 convolutions.
    """

    patch = 4

    def __init__(self, channels: int, canvas_size: int, hidden: int, width: int) -> None:
        super().__init__()
        self.pad = -canvas_size % self.patch
        self.cells = ((canvas_size + self.pad) // self.patch) ** 2
        self.conv1 = nn.Linear(channels * self.patch**2, hidden)
        self.conv2 = nn.Linear(hidden, hidden)
        self.proj = nn.Linear(hidden * self.cells, width)

    def tiles(self, canvases: torch.Tensor) -> torch.Tensor:
        """(N, T, C + 1, S, S) -> (N, T, cells, (C + 1) * 4 * 4): the 4x4 patches the first layer reads."""
        if self.pad:
            canvases = F.pad(canvases, (0, self.pad, 0, self.pad))
        return rearrange(canvases, "n t c (h i) (w j) -> n t (h w) (c i j)", i=self.patch, j=self.patch)

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        """(N, T, cells + k, (C + 1) * 4 * 4) patches (:meth:`tiles`) -> (N, T, width). Tiles after the first
        ``cells`` are not read: sampling's canvas keeps one more, see :meth:`np_draw.canvas.Grid.tile_index`."""
        features = self._convolve(tiles)
        if features.shape[2] > self.cells:  # only sampling's canvas has more
            features = features.narrow(2, 0, self.cells)
        return F.linear(features.flatten(2), self.proj.weight, self.proj.bias)

    def stepwise(self, tiles: torch.Tensor, drawn: torch.Tensor, replaced: torch.Tensor, locations: torch.Tensor,
                 touched: torch.Tensor) -> torch.Tensor:
        """The embedding of drawings' canvases given step by step -> (N, T, width), as :meth:`forward` of the
        canvases before each step.

        The projection is linear, so a canvas's embedding is the blank canvas's plus, for each step before it, the
        projection of what that step changed: the difference of the features of the few tiles it drew on, through
        the weights of those tiles. Steps are grouped by location, in chunks of 16, for one batched product.
        Projecting every canvas whole read T x cells tiles, 12x as many rows on 28 px canvases and 64x on 32 px
        ones with 4 px parts (a part is one tile), and its product took a tenth of the prior's training step. The
        same function to float rounding (a sum over steps where the projection sums over cells).

        Args:
            tiles: (U, (C + 1) * 4 * 4) tiles, the first blank.
            drawn: (N, T, m) int64 rows of the tiles each step drew on.
            replaced: (N, T, m) int64 rows of the tiles they replaced.
            locations: (N, T) int64 cell of each step, L for a step that drew nothing.
            touched: (L, m) the tiles each location draws on, ``self.cells`` for none
                (:meth:`np_draw.canvas.Grid.touched_tiles`).
        """
        features = self._convolve(tiles)
        n, steps, m = drawn.shape
        rows, sources, chunk_locations = _chunks(locations.flatten(), len(touched))
        # An empty row of a chunk reads the blank tile twice: no change.
        drawn, replaced = (F.pad(x.flatten(0, 1), (0, 0, 0, 1))[sources] for x in (drawn, replaced))
        change = (_rows(features, drawn) - _rows(features, replaced)).view(-1, _CHUNK, m * features.shape[-1])
        # Rows gathered by _rows, whose backward adds repeated rows in a fixed order (indexing's adds them with
        # atomics on the CPU, in an order that changes from run to run on more than one thread)
        weight = F.pad(rearrange(self.proj.weight, "o (c f) -> c (o f)", c=self.cells), (0, 0, 0, 1))
        weight = rearrange(_rows(weight, touched), "l m (o f) -> l (m f o)", o=self.proj.out_features)
        weight = _rows(weight, chunk_locations).view(len(chunk_locations), m * features.shape[-1], self.proj.out_features)
        projected = F.pad(torch.bmm(change, weight).flatten(0, 1), (0, 0, 0, 1))  # a step of none: the zero row
        delta = _rows(projected, rows.view(n, steps))
        blank = F.linear(features[0].repeat(self.cells), self.proj.weight, self.proj.bias)
        # The sums of the changes before each step, as a product with a strictly lower triangle of ones: cumsum's
        # CUDA kernel is not deterministic (torch.use_deterministic_algorithms refuses it)
        before = torch.ones(steps, steps, dtype=delta.dtype, device=delta.device).tril_(-1)
        return blank + torch.matmul(before, delta)

    def _convolve(self, tiles: torch.Tensor) -> torch.Tensor:
        """The two convolutions on 4x4 patches (..., (C + 1) * 4 * 4) -> (..., hidden)."""
        conv1, conv2 = self.conv1, self.conv2
        return F.linear(F.relu(F.linear(tiles, conv1.weight, conv1.bias)), conv2.weight, conv2.bias)

    def _step_weights(self) -> tuple:
        """The weights :func:`_tile_features` and :func:`_embed_step` read, transposed as ``F.linear`` passes them to
        ``torch.addmm``."""
        conv1, conv2, proj = self.conv1, self.conv2, self.proj
        return self.cells, conv1.weight.t(), conv1.bias, conv2.weight.t(), conv2.bias, proj.weight.t(), proj.bias


def _tile_features(tiles: torch.Tensor, weights: tuple) -> torch.Tensor:
    """The two convolutions of :class:`CanvasEmbedding` on (R, (C + 1) * 4 * 4) tile rows -> (R, hidden), with the
    weights of its ``_step_weights``: the same products, as F.linear on contiguous input is torch.addmm over its
    rows."""
    _, w1, b1, w2, b2, _, _ = weights
    return torch.addmm(b2, torch.relu(torch.addmm(b1, tiles, w1)), w2)


def _embed_step(features: torch.Tensor, count: int, weights: tuple) -> torch.Tensor:
    """:class:`CanvasEmbedding` of ``count`` tiled canvases from their tiles' (count * (cells + 1), hidden) features
    (:func:`_tile_features`) -> (count, width)."""
    cells, _, _, _, b2, wp, bp = weights
    return torch.addmm(bp, features.view(count, cells + 1, b2.shape[0]).narrow(1, 0, cells).flatten(1), wp)


# On the machine measured (MKL's default kernels, float32 and bfloat16), a product of 4 rows or more gives each row
# the values it has in a larger one, and one of 1 to 3 rows rounds otherwise (another kernel). Elsewhere (float64,
# MKL_CBWR=COMPATIBLE, cuBLAS) rows may round by the product's size: the same values to float rounding.
_FEWEST_ROWS = 16


def _rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` for int64 rows of a (R, F) table -> (*index.shape, F). On the CPU index_select, whose
    backward (index_add_) ran 2x faster than F.embedding's; on CUDA that backward adds with atomics, in no fixed
    order, where F.embedding's sorts: the same gradients every run."""
    if table.is_cuda:
        return F.embedding(index, table)
    return table.index_select(0, index.flatten()).view(*index.shape, table.shape[-1])


_CHUNK = 16  # rows of a chunk of CanvasEmbedding.stepwise: a product of 16 rows runs near a whole one's rate


@torch.no_grad()
def _chunks(keys: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A table of chunks of ``_CHUNK`` rows, each chunk one key's, for entries with ``keys`` (E,) int64 in [0,
    count] (count: none): each entry's row (the table's length for none), each row's entry (E for an empty row),
    and each chunk's key. Padding each key's entries to whole chunks, not to the most any key has, keeps the table
    within E + count * _CHUNK rows whatever the keys."""
    sizes = torch.bincount(keys, minlength=count + 1)
    chunks = -(-sizes[:count] // _CHUNK)
    total = int(chunks.sum()) * _CHUNK
    first = F.pad((chunks.cumsum(0) - chunks) * _CHUNK, (0, 1), value=total)
    order = torch.argsort(keys, stable=True)
    ordered = keys[order]
    ranks = torch.arange(len(keys), device=keys.device) - (sizes.cumsum(0) - sizes)[ordered]
    rows = torch.empty_like(keys).index_put_((order,), torch.where(ordered < count, first[ordered] + ranks, total))
    sources = keys.new_full((total + 1,), len(keys))
    sources[rows] = torch.arange(len(keys), device=keys.device)  # entries of none all land past the table
    return rows, sources[:total], torch.repeat_interleave(torch.arange(count, device=keys.device), chunks,
                                                          output_size=total // _CHUNK)


def sinusoidal_encoding(length: int, width: int) -> torch.Tensor:
    """(length, width) sinusoidal encoding of positions 0..length-1, on the CPU (a constant, moved with the module;
    computed on the meta device it would import torch's decompositions, three seconds). Where the meta device is
    the default (from_pretrained's first build of a model, to compare its shapes with the weights'), an empty meta
    tensor: a config.json asking for an absurd width or grid would otherwise fill gigabytes before it is refused."""
    if torch.empty(0).device.type == "meta":  # a device block (get_default_device does not see one on torch 2.4)
        return torch.empty(length, width)
    position = torch.arange(length, dtype=torch.float32, device="cpu")[:, None]
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32, device="cpu") * (-math.log(10000.0) / width))
    encoding = torch.zeros(length, width, device="cpu")
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency[: width // 2])
    return encoding


def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout: zero each value with chance ``p``, scale the rest so that the expectation is x.

    On the CPU each value's draw is a 16-bit integer, four from each 64-bit draw of the generator: the masks of the
    prior's training step, a float32 uniform per value from ``torch.rand`` (``F.dropout``'s Bernoulli draw is
    slower still), were its largest elementwise cost, and these are 2.5x faster to make. ``p`` is then a multiple of 2^-16
    (0.1 becomes 0.1000061; below 2^-17 nothing is dropped), and the scale is that of the rounded p. On other
    devices, ``F.dropout``."""
    if x.device.type != "cpu" or not p:
        return F.dropout(x, p, True)
    dropped = min(round(p * 2**16), 2**16 - 1)  # p < 1 (PriorConfig), so never all
    bits = torch.empty(-(-x.numel() // 4), dtype=torch.int64, device=x.device).random_(-(2**63), None)
    # Integers in [-2^15, 2^15): below -2^15 + dropped with chance dropped / 2^16. The mask is made scaled, in
    # place, outside autograd, so that the product is the only step backward goes through, in float32 whatever x's
    # dtype (a bfloat16 scale would be rounded); the product is rounded to x's dtype once.
    keep = bits.view(torch.int16)[: x.numel()].view(x.shape).float()
    return (x * keep.ge_(dropped - 2**15).mul_(2**16 / (2**16 - dropped))).to(x.dtype)


class KVCache:
    """Sampling's keys and values of the tokens seen so far, with each layer's attention projections laid out for them.

    Each layer's keys and values are preallocated as one (T + 1, 2, d, H, N) tensor: step, key or value, head channel,
    head, then image innermost. A step's key, value and query come from one product, the projection times the tokens'
    transpose (its rows put in (d, H) order once, here), written where they belong as they are computed, without a
    copy: the key and value at the step's own place, the query in the next step's key slot, which that step
    overwrites (and the last step, the extra one). The single query's dot products with the keys and its weighted
    sum of the values then run over outer axes, a whole contiguous row of images at a time, where the tokens'
    (N, H, d) layout summed each head's 16 channels innermost, far below a CPU's rate, and copied every key and value
    into the cache: 1.3-1.4x fewer instructions per prior step at batch 64
    (benchmarks/bench_sampling_instructions.py). One product rather than three saves two calls per layer, much of
    a batch-1 step (each row of a product is its own dot product: the same values). A query slot of its own at
    every step would make the cache half as large again: at batch 128 that was fresh memory at every call, which
    the operating system supplies a page fault at a time, and the prior ran slower than with three products.

    The output projection is kept transposed, as ``F.linear`` hands it to ``torch.addmm``. The projections are the
    layers' weights when the cache is built: a cache serves one sampling call, under ``torch.no_grad()`` (its
    in-place writes cannot be differentiated).

    Args:
        attentions: the prior's attention layers, in order.
        batch: N.
        length: T, the most steps cached.
    """

    def __init__(self, attentions: Sequence[CausalSelfAttention], batch: int, length: int) -> None:
        if torch.is_grad_enabled():
            raise InvalidInputError("a KVCache is for sampling: build and use it under torch.no_grad()")
        weight = attentions[0].out.weight
        heads, width = attentions[0].heads, weight.shape[0]
        head = width // heads

        def kvq(x: torch.Tensor) -> torch.Tensor:  # rows (q, k, v) x (h d) -> (k, v, q) x (d h)
            q, k, v = rearrange(x, "(k h d) ... -> k (d h) ...", k=3, h=heads)
            # 1 / sqrt(d) folded into the query: exact when it is a power of two (d = 4, 16, 64; every bundled model
            # has d = 16), else a rounding of the last bit.
            return torch.cat([k, v, q * head**-0.5])

        self.projections = [(kvq(attention.qkv.weight).t(), kvq(attention.qkv.bias),
                             rearrange(attention.out.weight, "o (h d) -> o (d h)", h=heads).t(), attention.out.bias)
                            for attention in attentions]
        # Never read past what has been written, so never cleared.
        self.steps = [weight.new_empty(length + 1, 2, head, heads, batch) for _ in attentions]
        # Views made once: a view costs as much Python as a small product, and a step would make several per layer.
        # rows[t] is the transpose of the (3 width, N) matrix of step t: key and value t, then the query; torch.addmm
        # writes a transposed output as it is, without a copy. Keys (T + 1, d, 1, H, N) and step t's query (d, 1, H, N)
        # have an axis of one where the head channel is summed out, so that the attention's weights come out (t, 1, H,
        # N), ready to multiply the values (t, d, H, N).
        self.rows = [steps.as_strided((length, batch, 3 * width), (2 * width * batch, 1, batch)).unbind(0)
                     for steps in self.steps]
        self.keys = [steps.select(1, 0).unsqueeze(2) for steps in self.steps]
        self.values = [steps.select(1, 1) for steps in self.steps]
        self.queries = [keys[1:].unbind(0) for keys in self.keys]
        # The attention's output (d, H, N), written in place, and its (N, D) transpose, which the out projection reads.
        self.mixed = weight.new_empty(head, heads, batch)
        self.mixed_rows = self.mixed.view(width, batch).t()
        self.batch, self.capacity, self.length = batch, length, 0


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention that can append to a key/value cache."""

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.heads = config.num_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        """x: (N, t, D) -> (N, t, D). With a cache, x is one new token per image, (N, D), which attends to the
        cached ones too."""
        if cache is not None:
            self._check_token(x, cache, layer)
            return _attention_step(x, cache, layer)
        n, t, width = x.shape
        heads, head = self.heads, width // self.heads
        qkv = F.linear(x, self.qkv.weight, self.qkv.bias)
        if self.training and self.dropout and not x.is_cuda:
            # Written out on the CPU for dropout's mask (see dropout); the kernel's own adds a check of every row.
            q, k, v = rearrange(qkv, "n t (k h d) -> k (n h) t d", k=3, h=heads)
            future = torch.full((t, t), float("-inf"), dtype=q.dtype, device=x.device).triu_(1)
            scores = torch.baddbmm(future, q, k.transpose(1, 2), alpha=head**-0.5)
            y = rearrange(dropout(torch.softmax(scores, -1), self.dropout) @ v, "(n h) t d -> n t (h d)", n=n)
        else:
            q, k, v = qkv.view(n, t, 3, heads, head).permute(2, 0, 3, 1, 4).unbind(0)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.dropout if self.training else 0.0)
            y = y.transpose(1, 2).reshape(n, t, width)
        return F.linear(y, self.out.weight, self.out.bias)

    def _check_token(self, x: torch.Tensor, cache: KVCache, layer: int) -> None:
        """Refuse what a cached forward cannot take: anything but one token per image, or a full cache."""
        # Several tokens after a prefix would need an offset mask; sampling feeds one at a time.
        n, steps = cache.batch, cache.capacity
        if x.shape != (n, self.out.in_features):
            raise InvalidInputError(f"a cached forward takes one token per image, (N, D) = ({n}, "
                                    f"{self.out.in_features}), got {tuple(x.shape)}")
        if cache.length == steps:
            raise InvalidInputError(f"the cache is full: it holds {steps} steps")


def _attention_step(x: torch.Tensor, cache: KVCache, layer: int) -> torch.Tensor:
    """One token per image (N, D) through layer ``layer``'s attention, appending its key and value to ``cache``."""
    # Functions of the cache's tensors and views rather than submodules and einops: a sampling step runs this 8
    # times on one token, where Python's share of the time is larger than the arithmetic's.
    w, b, wo, bo = cache.projections[layer]
    step = cache.length
    if x.dtype != w.dtype:  # a half model under CUDA autocast gets float32 from layer_norm; out= is not cast
        x = x.to(w.dtype)  # (a call even when there is nothing to cast: 2 % of a batch-1 step, so only then)
    torch.addmm(b, x, w, out=cache.rows[layer][step])
    # Products and sums over the cached steps (linalg.vecdot: one call for both); a batched matrix product of
    # one row per image and head runs far below the machine's rate on a CPU. Slices: less Python than narrow.
    weights = torch.softmax(torch.linalg.vecdot(cache.queries[layer][step], cache.keys[layer][:step + 1], dim=1),
                            dim=0)
    if weights.dtype == cache.mixed.dtype:
        torch.linalg.vecdot(weights, cache.values[layer][:step + 1], dim=0, out=cache.mixed)
    else:  # under autocast, whose casts a call with out= skips: its dtypes, then the buffer's
        cache.mixed.copy_(torch.linalg.vecdot(weights, cache.values[layer][:step + 1], dim=0))
    return torch.addmm(bo, cache.mixed_rows, wo)


class Block(nn.Module):
    """Pre-norm Transformer block."""

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden_size)
        self.attn = CausalSelfAttention(config)
        self.norm2 = nn.LayerNorm(config.hidden_size)
        self.mlp = nn.Sequential(
            nn.Linear(config.hidden_size, config.ff_size), nn.GELU(), nn.Linear(config.ff_size, config.hidden_size),
            nn.Dropout(config.dropout),
        )
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        """x: (N, t, D) -> (N, t, D); with ``cache``, one token per image (N, D) that attends to the cached steps
        too and is appended to them."""
        if cache is not None:
            self.attn._check_token(x, cache, layer)
            return _block_step(x, cache, layer, self._step_weights(x.shape[0]))
        # The submodules' own functions, called directly (see CausalSelfAttention.forward).
        norm1, norm2, (up, _, down, drop) = self.norm1, self.norm2, self.mlp
        h = self.attn(F.layer_norm(x, norm1.normalized_shape, norm1.weight, norm1.bias, norm1.eps))
        x = x + (dropout(h, self.drop.p) if self.training else h)
        h = F.layer_norm(x, norm2.normalized_shape, norm2.weight, norm2.bias, norm2.eps)
        h = F.linear(F.gelu(F.linear(h, up.weight, up.bias)), down.weight, down.bias)
        return x + (dropout(h, drop.p) if self.training else h)

    def _step_weights(self, batch: int) -> tuple:
        """What :func:`_block_step` reads of this block for ``batch`` tokens: its weights as ``torch.layer_norm`` and
        ``torch.addmm`` take them (``F.linear`` passes the transpose), each dropout's p (0 when evaluating: dropout
        is then skipped), and buffers for the MLP's hidden layer."""
        norm1, norm2, (up, _, down, drop) = self.norm1, self.norm2, self.mlp
        p = (self.drop.p, drop.p) if self.training else (0.0, 0.0)
        # The hidden layer (N, F) is written into the first N F values of a (2, ceil(N F / 2)) buffer, which gelu
        # reads transposed (see _block_step), and gelu writes another such buffer the same way.
        size = batch * up.out_features
        into, out = (up.weight.new_zeros(2, -(-size // 2)) for _ in range(2))
        hidden, activated = (buffer.view(-1)[:size].view(batch, up.out_features) for buffer in (into, out))
        return ((norm1.normalized_shape, norm1.weight, norm1.bias, norm1.eps), up.weight.t(), up.bias,
                (norm2.normalized_shape, norm2.weight, norm2.bias, norm2.eps), down.weight.t(), down.bias, *p,
                hidden, into.t(), out.t(), activated)


def _block_step(x: torch.Tensor, cache: KVCache, layer: int, weights: tuple) -> torch.Tensor:
    """:class:`Block` on one token per image (N, D) that attends to the cached steps and is appended to them, with
    the block's ``_step_weights``: a function of tensors looked up once per sampling call, not per step, as an
    nn.Module's parameters and submodules are found by its ``__getattr__`` after a failed lookup (which formats an
    AttributeError): those lookups were a fifth of a batch-1 sampling step's instructions."""
    norm1, up, up_bias, norm2, down, down_bias, p_attention, p_mlp, hidden, hidden_t, activated_t, activated = weights
    h = _attention_step(torch.layer_norm(x, *norm1), cache, layer)
    # x + h, not h += x: under autocast h comes back in half precision, and the residual stream must stay in x's
    x = x + (dropout(h, p_attention) if p_attention else h)
    # F.gelu hands contiguous float32 CPU input to oneDNN, whose fixed cost per call (~50,000 instructions) was 7% of
    # a batch-1 step; ATen's own kernel, a fifth of that, takes non-contiguous input: here the transpose of the
    # buffer the up projection writes, which its loop reads as one contiguous run. Rounds as ATen's gelu, which
    # differs from oneDNN's in the last bit of some values.
    h = torch.layer_norm(x, *norm2)
    torch.addmm(up_bias, h if h.dtype == up.dtype else h.to(up.dtype), up, out=hidden)  # cast as in _attention_step
    F.gelu(hidden_t, out=activated_t)
    h = torch.addmm(down_bias, activated, down)
    return x.add_(dropout(h, p_mlp) if p_mlp else h)  # x is this function's own tensor (above)


class Prior(nn.Module):
    """p(z): a causal Transformer over T steps.

    Args:
        config: the Transformer's sizes.
        grid: the canvas cells (T = L = grid.num_cells).
        channels: canvas channels C.
        num_parts: B.
    """

    def __init__(self, config: PriorConfig, grid: Grid, channels: int, num_parts: int) -> None:
        super().__init__()
        self.config = config
        self.grid = grid
        self.num_parts = num_parts
        self.channels = channels
        self.num_steps = grid.num_cells
        self.embed = CanvasEmbedding(channels + 1, grid.canvas_size, config.cnn_channels, config.hidden_size)
        self.register_buffer("position", sinusoidal_encoding(self.num_steps, config.hidden_size), persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.hidden_size)
        self.head = nn.Linear(config.hidden_size, num_parts + self.num_steps + 1)

    def _run(self, x: torch.Tensor) -> StepLogits:
        """Logits of the steps whose embedded canvases are ``x`` (N, t, D)."""
        x = x + self.position.narrow(0, 0, x.shape[1])
        if self.training:
            x = dropout(x, self.drop.p)
        for block in self.blocks:
            x = block(x)
        return self._logits(self.head(self.norm(x)))

    def _step_weights(self, batch: int) -> tuple:
        """What :meth:`_step` reads of the prior for ``batch`` drawings, looked up once per sampling call (see
        :func:`_block_step`)."""
        norm, head = self.norm, self.head
        return (self.embed._step_weights(), self.position.unbind(0),
                [block._step_weights(batch) for block in self.blocks],
                (norm.normalized_shape, norm.weight, norm.bias, norm.eps), head.weight.t(), head.bias)

    def _step(self, features: torch.Tensor, cache: KVCache, weights: tuple) -> StepLogits:
        """Logits of the step after the cached ones, (N, B), (N, L), (N,), from the features of the tiled canvases'
        tiles (:func:`_tile_features` of :meth:`np_draw.canvas.Grid.new_tiled`'s (N * (cells + 1), F) rows), with
        :meth:`_step_weights`; the step is appended to ``cache``."""
        embed, positions, blocks, norm, head, head_bias = weights
        x = _embed_step(features, cache.batch, embed) + positions[cache.length]
        if self.training:
            x = dropout(x, self.drop.p)
        for layer, block in enumerate(blocks):
            x = _block_step(x, cache, layer, block)
        cache.length += 1
        return self._logits(torch.addmm(head_bias, torch.layer_norm(x, *norm), head))

    def _logits(self, out: torch.Tensor) -> StepLogits:
        """The head's output (..., B + L + 1) as StepLogits."""
        # split_with_sizes: Tensor.split's Python wrapper doubled its cost, a step's largest view
        ids, locs, present = out.split_with_sizes([self.num_parts, self.num_steps, 1], dim=-1)
        return StepLogits(ids, locs, present.squeeze(-1))

    def forward(self, canvases: torch.Tensor) -> StepLogits:
        """Logits of every step given the history (teacher forcing).

        Args:
            canvases: (N, t, C + 1, S, S), entry i = canvas and footprint after steps < i (the running maximum of
                each step's :meth:`np_draw.canvas.Grid.place` and :meth:`np_draw.canvas.Grid.box`), t <= T.
        Returns:
            StepLogits for steps 0..t-1.
        """
        return self.of_tiles(self.embed.tiles(canvases))

    def of_tiles(self, tiles: torch.Tensor) -> StepLogits:
        """:meth:`forward` of the history cut in the embedding's tiles: (N, t, tiles + k, (C + 1) * 4 * 4), as
        :meth:`CanvasEmbedding.tiles` or :meth:`np_draw.canvas.Grid.history` lays it out (tiles after the first
        ``tiles`` are not read)."""
        return self._run(self.embed(tiles))

    def log_prob(self, latents: Latents, bank: PartBank) -> torch.Tensor:
        """Teacher-forced log p(z) of hard latents (N, k), k <= T, summed over steps: (N,) in nats. ``bank`` is its
        model's (:class:`PartBank` of B parts of C x K x K pixels); the latents' values are not scanned (training
        and the bound call this for every batch)."""
        if not isinstance(latents, Latents):
            raise InvalidTypeError(f"latents must be Latents, got {type(latents).__name__}")
        self._check_bank(bank)
        return self._run(self.embed.stepwise(*self._drawn_tiles(latents, bank))).log_prob(latents)

    def _check_bank(self, bank: PartBank) -> None:
        """Refuse a bank of another model: its parts failed deep inside the sampler or the embedding (a shape
        error from a matrix product)."""
        if not isinstance(bank, PartBank):
            raise InvalidTypeError(f"bank must be a PartBank (model.bank), got {type(bank).__name__}")
        size = self.grid.part_size
        expected = (self.num_parts, self.channels, size, size)
        if tuple(bank.parts.shape) != expected:
            raise InvalidInputError(f"bank must hold this prior's B={self.num_parts} parts of C x K x K = "
                                    f"{self.channels} x {size} x {size} pixels, shape {expected}, got parts of shape "
                                    f"{tuple(bank.parts.shape)} (another model's bank?)")

    @torch.no_grad()
    def _drawn_tiles(self, latents: Latents, bank: PartBank) -> tuple[torch.Tensor, ...]:
        """The prior's input for hard latents as :meth:`CanvasEmbedding.stepwise` takes it: the canvas and footprint
        drawn a step at a time in the embedding's tiles as sampling draws them, kept as the tiles each step drew on,
        (U, (C + 1) * 4 * 4) with a blank one first, and for each step (N, T, m) int64 the rows of the tiles it drew,
        of those they replaced, each step's location (L for a step that draws nothing), and the (L, m) tiles each
        location draws on. The same canvases as :meth:`np_draw.canvas.Grid.history` (maxima are exact). Hard latents
        carry no gradient."""
        n, steps = latents.ids.shape
        like = bank.parts
        tiled = self.grid.new_tiled(n, like.shape[1] + 1, self.embed.patch, like)
        index = self.grid.tile_index(like.shape[1] + 1, self.embed.patch, like.device)
        touched = self.grid.touched_tiles(self.embed.patch, like.device)
        table = _footprinted(bank, like)
        # int64 to index with, whatever integer dtype the latents hold (uint8 locs would index as a mask)
        ids, locs = (x.to(like.device, torch.long) for x in (latents.ids, latents.locs))
        present = latents.present.to(like.device)
        # The row of each tile of each canvas, the tile past the canvas's edge last (written, never read)
        rows = torch.zeros(n, tiled.shape[1], dtype=torch.long, device=like.device)
        cells = touched[locs]
        drawn, replaced = torch.empty_like(cells), torch.empty_like(cells)
        tiles, count = [tiled.new_zeros(1, tiled.shape[2])], 1
        for t in range(steps):
            where = cells[:, t]
            self.grid.draw(tiled, table[ids[:, t]] * present[:, t, None].to(like), locs[:, t], index)
            tiles.append(tiled.gather(1, where[..., None].expand(-1, -1, tiled.shape[2])).flatten(0, 1))
            replaced[:, t] = rows.gather(1, where)
            drawn[:, t] = torch.arange(count, count + where.numel(), device=like.device).view_as(where)
            rows.scatter_(1, where, drawn[:, t])
            count += where.numel()
        # A step that draws nothing changes no tile: stepwise skips it, wherever its location points.
        return torch.cat(tiles), drawn, replaced, torch.where(present > 0, locs, self.num_steps), touched

    @torch.no_grad()
    def sample(self, bank: PartBank, noise: torch.Tensor, *, temperature: float = 1.0,
               use_cache: bool = True, prefix: Latents | None = None) -> Latents:
        """Draw T steps, or finish a drawing whose first k steps are given.

        Args:
            bank: the parts pasted on the canvas.
            noise: (N, T, B + L + 1) float32 uniform noise in (0, 1) on this module's device; step t uses noise[:, t]
                (Gumbel-max for z_id and z_loc, a threshold for z_is), so the same noise gives the same latents
                with or without the cache. Another shape or device, integers, or values outside [0, 1] are an error.
            temperature: divides the logits (a positive finite number); 1 samples the prior itself.
            use_cache: keep keys and values (O(T)); False re-runs the whole prefix at every step (O(T²)).
            prefix: the first k <= T steps of each drawing (ids, locs, present of shape (N, k)): they are drawn as
                given (teacher forcing, through the cache when it is on) and only steps k..T-1 are sampled, from
                p(z_t | z_<t); noise[:, :k] is not used. None (or k = 0) samples every step.
        Returns:
            Latents with the final canvas (N, C, S, S); with a prefix, their first k steps equal it.
        """
        temperature = check_temperature(temperature)
        check_flags(use_cache=use_cache)
        self._check_bank(bank)
        self._check_noise(noise)
        n, steps = noise.shape[0], self.num_steps
        given = 0 if prefix is None else self._check_prefix(prefix, n)
        if given:  # in the dtypes drawn steps have: indices must be int64 (uint8 would index as a mask)
            prefix = Latents(prefix.ids.to(noise.device, torch.long), prefix.locs.to(noise.device, torch.long),
                             prefix.present.to(noise.device, bank.parts.dtype))
        c, tile = bank.parts.shape[1], self.embed.patch
        like = bank.parts.new_empty(0).to(noise.device)  # the model's dtype; noise is float32
        ids = torch.zeros(n, steps, dtype=torch.long, device=noise.device)
        locs = torch.zeros_like(ids)
        present = like.new_zeros(n, steps)
        # Canvas and footprint after the steps so far, cut in the tiles the prior's embedding reads.
        tiled = self.grid.new_tiled(n, c + 1, tile, like)
        index = self.grid.tile_index(c + 1, tile, noise.device)
        table = _footprinted(bank, like)
        # Each step's noise (Gumbel, transformed once for every step) and latents as views made once, not per step:
        # Python's share of a step is large at small batches. The latents are written into their step's columns.
        noise = list(zip(*(x.unbind(1) for x in gumbel(noise, self.num_parts))))
        columns = list(zip(ids.unbind(1), locs.unbind(1), present.unbind(1)))
        drawn = present[..., None].unbind(1)  # (N, 1): z_is, which multiplies the parts
        tiles, canvas = tiled.flatten(0, 1), tiled.flatten(1)  # the embedding's rows; the pixels Grid.draw writes
        if use_cache:
            cache = KVCache([block.attn for block in self.blocks], n, steps)
            weights = self._step_weights(n)
            # The tiles' features are kept, and a step convolves again only the few tiles it drew on (1 of a CelebA
            # canvas's 65, 4 of MNIST's 50), in rows of the tiles each location touches: convolving every tile at
            # every step was a fifth of CelebA's prior. The same values (see _FEWEST_ROWS), so the same latents. A
            # single drawing's few tiles cost less than the bookkeeping's four calls: it convolves them all again.
            features, redrawn = _tile_features(tiles, weights[0]), None
            if n > 1:
                touched = self.grid.touched_tiles(tile, like.device)
                offsets = torch.arange(0, n * tiled.shape[1], tiled.shape[1], device=like.device)[:, None]
                # Rows past the step's own pad the product with the first canvas's extra tile, which nothing reads.
                redrawn = offsets.new_full((max(n * touched.shape[1], _FEWEST_ROWS),), tiled.shape[1] - 1)
                redrawn_rows = redrawn.narrow(0, 0, n * touched.shape[1]).view(n, touched.shape[1])
        else:
            past = like.new_zeros(n, steps, *tiled.shape[1:])
        for t, (ids_t, locs_t, _) in enumerate(columns):
            if not use_cache:
                past[:, t] = tiled
            if t < given:
                if use_cache:  # the given step's keys and values must be in the cache for the steps after it
                    self._step(features, cache, weights)
                for into, value in zip(columns[t], (prefix.ids[:, t], prefix.locs[:, t], prefix.present[:, t])):
                    into.copy_(value)
            else:
                logits = (self._step(features, cache, weights) if use_cache
                          else self._run(self.embed(past[:, :t + 1]))[:, -1])
                logits.draw(noise[t], temperature, out=columns[t])
            self.grid.draw(canvas, table[ids_t] * drawn[t], locs_t, index)
            if use_cache and t + 1 < steps:
                if redrawn is None:
                    features = _tile_features(tiles, weights[0])
                else:
                    torch.add(touched[locs_t], offsets, out=redrawn_rows)
                    features.index_copy_(0, redrawn, _tile_features(tiles.index_select(0, redrawn), weights[0]))
        return Latents(ids, locs, present, canvas=self.grid.untile(tiled, tile)[:, :c].contiguous())

    def _check_noise(self, noise: torch.Tensor) -> None:
        """Refuse noise :meth:`sample` cannot draw from: a wrong shape failed deep in the sampler (a shorter T was an
        IndexError, a longer one was silently cut), and values outside [0, 1] (integers, a Gaussian) drew latents of
        no distribution."""
        if not isinstance(noise, torch.Tensor):
            raise InvalidTypeError(f"noise must be a torch tensor of uniform draws, got {type(noise).__name__}")
        expected = (self.num_steps, self.num_parts + self.num_steps + 1)
        if noise.ndim != 3 or tuple(noise.shape[1:]) != expected or not noise.is_floating_point():
            raise InvalidInputError(f"noise must be floating uniform draws of shape (N, T, B + L + 1) = (N, "
                                    f"{expected[0]}, {expected[1]}), got {noise.dtype} of shape {tuple(noise.shape)}")
        if noise.device != self.head.weight.device:
            raise InvalidInputError(f"noise must be on the prior's device {self.head.weight.device}, got noise on "
                                    f"{noise.device}")
        if noise.numel() and not (noise.min() >= 0 and noise.max() <= 1):  # NaN fails both
            raise InvalidInputError(f"noise must be uniform draws in [0, 1] (torch.rand), got values in "
                                    f"[{noise.min().item():g}, {noise.max().item():g}]")

    def _check_prefix(self, prefix: Latents, count: int) -> int:
        """The number of given steps k of a prefix for ``count`` drawings, after checking its shapes and values."""
        if not isinstance(prefix, Latents):
            raise InvalidTypeError(f"prefix must be Latents, got {type(prefix).__name__}")
        return prefix.check(num_parts=self.num_parts, num_steps=self.num_steps, count=count, name="prefix")


def _footprinted(bank: PartBank, like: torch.Tensor) -> torch.Tensor:
    """Each part with its footprint (a channel of ones), flat as a tiled canvas holds a cell's pixels:
    (B, (C + 1) * K * K), in ``like``'s dtype and on its device. A step draws the rows of its parts times z_is."""
    parts = bank.parts.to(like)
    return torch.cat([parts, torch.ones_like(parts[:, :1])], dim=1).flatten(1)
