"""Batched feature visualisation (docs/builder.md): many units and both directions at once.

The parameterisation (FFT spectrum, decay power 1, lucid's magic /4, decorrelated colour,
sigmoid) and the transforms (jitter, random scale, random rotate, jitter) follow lucent 0.1.8
line by line; they are re-implemented here because lucent fixes the device at import time,
draws from NumPy's global RNG and cannot give each (unit, direction) group its own
initialisation. Tests check them against lucent's own functions.

One parameter tensor holds ``groups x n_images`` images; each group is one (unit, direction).
The loss is the sum over groups of lucent's per-unit loss
``-sign * mean(channel) + w * diversity(layer)``, so each group's gradient is exactly what a
separate lucent render with the same transform draws would give.

No file or display I/O here.
"""

from __future__ import annotations

import logging
import math
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from stimuli_builder.config import RenderConfig
from stimuli_builder.nets import Net, capture_outputs, forward_until
from stimuli_builder.runtime import free_device_memory

logger = logging.getLogger(__name__)

# lucent/optvis/param/color.py
COLOR_CORRELATION_SVD_SQRT = np.asarray(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32
)
COLOR_CORRELATION_NORMALIZED = COLOR_CORRELATION_SVD_SQRT / np.max(
    np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0)
)
FFT_MAGIC = 4.0  # lucid/lucent: "increasing this seems to reduce saturation"


@dataclass(frozen=True)
class RenderTarget:
    """One optimisation group: ``n_images`` images for one unit and one direction."""

    unit_id: str
    layer: str
    channel: int
    sign: int
    """+1 maximises the channel's spatial mean, -1 minimises it."""

    @property
    def direction(self) -> str:
        """``"max"`` or ``"min"``."""
        return "max" if self.sign > 0 else "min"


@dataclass
class RenderResult:
    """Images of one group and their final objective (``sign * spatial mean`` on the kept crop).

    Attributes:
        images: float32 [n, 3, keep, keep] in [0, 1], strongest objective first.
        objectives: float32 [n], descending.
    """

    target: RenderTarget
    images: np.ndarray
    objectives: np.ndarray
    steps: int


def rfft2d_freqs(h: int, w: int) -> np.ndarray:
    """2D spectrum frequencies (lucent ``rfft2d_freqs``)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + 2] if w % 2 == 1 else np.fft.fftfreq(w)[: w // 2 + 1]
    # numpy's stubs type the broadcast sum of the two frequency arrays as Any.
    freqs: np.ndarray = np.sqrt(fx * fx + fy * fy)
    return freqs


def group_generator(seed: int, target: RenderTarget) -> torch.Generator:
    """CPU generator for a group's initial spectrum, independent of batching and device."""
    key = zlib.crc32(f"{target.unit_id}|{target.sign}".encode())
    return torch.Generator().manual_seed((seed * 1_000_003 + key) % (2**63))


class FFTImage(torch.nn.Module):
    """lucent ``param.image(w, batch, fft=True, decorrelate=True)`` for a stack of groups."""

    # Buffers (register_buffer): declared so that they type as tensors, not Tensor | Module.
    scale: torch.Tensor
    color: torch.Tensor

    def __init__(
        self,
        spectrum_t: torch.Tensor,
        size_px: int,
        decay_power: float = 1.0,
    ) -> None:
        super().__init__()
        self.size_px = size_px
        self.spectrum = torch.nn.Parameter(spectrum_t)
        freqs = rfft2d_freqs(size_px, size_px)
        scale = 1.0 / np.maximum(freqs, 1.0 / size_px) ** decay_power
        self.register_buffer(
            "scale", torch.tensor(scale).float()[None, None, ..., None].to(spectrum_t.device)
        )
        self.register_buffer(
            "color", torch.tensor(COLOR_CORRELATION_NORMALIZED.T).to(spectrum_t.device)
        )

    @staticmethod
    def init_spectrum(
        targets: Sequence[RenderTarget], n_images: int, size_px: int, sd: float, seed: int
    ) -> torch.Tensor:
        """Initial spectra [G * n, 3, H, W//2+1, 2]: lucent's ``randn * sd`` per group."""
        freqs = rfft2d_freqs(size_px, size_px)
        shape = (n_images, 3, *freqs.shape, 2)
        return torch.cat(
            [torch.randn(*shape, generator=group_generator(seed, t)) * sd for t in targets]
        )

    def forward(self) -> torch.Tensor:
        """RGB images [N, 3, H, W] in (0, 1)."""
        return fft_image(self.spectrum, self.scale, self.color, self.size_px)

    def compiled(self) -> Callable[[], torch.Tensor]:
        """``forward`` through one process-wide ``torch.compile`` of :func:`fft_image` (guards
        on shapes and dtypes, so a new render batch of the same size reuses the compiled code)."""
        global _FFT_IMAGE_COMPILED
        if _FFT_IMAGE_COMPILED is None:
            _FFT_IMAGE_COMPILED = torch.compile(fft_image, dynamic=False)
        compiled = _FFT_IMAGE_COMPILED
        return lambda: compiled(self.spectrum, self.scale, self.color, self.size_px)


def fft_image(
    spectrum: torch.Tensor, scale: torch.Tensor, color: torch.Tensor, size_px: int
) -> torch.Tensor:
    """lucent's spectrum -> decorrelated -> sigmoid image: [N, 3, H, W] in (0, 1)."""
    spec = torch.view_as_complex(scale * spectrum)
    image = torch.fft.irfftn(spec, s=(size_px, size_px), norm="ortho")
    image = image[:, :3, :size_px, :size_px] / FFT_MAGIC
    image = torch.matmul(image.permute(0, 2, 3, 1), color).permute(0, 3, 1, 2)
    return torch.sigmoid(image)


_FFT_IMAGE_COMPILED: Callable[..., torch.Tensor] | None = None


def _roundup(value: float) -> int:
    return int(np.ceil(value))


_REDUCED = (torch.bfloat16, torch.float16)


def _warp_reduced(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """kornia 0.4.1's ``warp_affine(x, m, dsize=x's size)`` for a bf16/fp16 image, computed in
    fp32 and returned in the image's dtype: kornia inverts matrices (no bf16 kernel), and a bf16
    sampling grid would round positions near the border of a 256 canvas to whole pixels."""
    from kornia.geometry.conversions import convert_affinematrix_to_homography
    from kornia.geometry.warp.homography_warper import normalize_homography

    b, c, h, w = x.shape
    norm = normalize_homography(convert_affinematrix_to_homography(m.float()), (h, w), (h, w))
    grid = F.affine_grid(torch.inverse(norm)[:, :2, :], [b, c, h, w], align_corners=False)
    out = F.grid_sample(x.float(), grid, align_corners=False, padding_mode="zeros")
    return out.to(x.dtype)


class PaperTransforms:
    """jitter(16) -> random_scale(scales) -> random_rotate(angles) -> jitter(8), as lucent.

    Draws come from a ``np.random.RandomState`` so that a given seed reproduces lucent's own
    transforms after ``np.random.seed(seed)``. One draw per step for the whole batch, as lucent
    does for its batch of 10.
    """

    def __init__(self, cfg: RenderConfig, rs: np.random.RandomState) -> None:
        self.cfg, self.rs = cfg, rs

    def jitter(self, x: torch.Tensor, d: int) -> torch.Tensor:
        """Translate by (dx, dy), each drawn from 0..d-1 (kornia translate, zero fill)."""
        from kornia.geometry.transform import translate

        dx, dy = self.rs.choice(d), self.rs.choice(d)
        if x.dtype in _REDUCED:
            # not a plain pixel shift: kornia 0.4.1 resamples (its normalisation and grid use
            # different corner conventions), so the reduced path resamples the same way
            m = torch.tensor([[1.0, 0.0, float(dx)], [0.0, 1.0, float(dy)]], device=x.device)
            return _warp_reduced(x, m.expand(x.shape[0], 2, 3))
        shift = torch.tensor([[dx, dy]], dtype=x.dtype, device=x.device).expand(x.shape[0], 2)
        return translate(x, shift)

    def random_scale(self, x: torch.Tensor) -> torch.Tensor:
        """Bilinear resize (align_corners) by a drawn factor; pad back when shrinking."""
        scale = self.rs.choice(self.cfg.scales)
        shp = x.shape[2:]
        new = [_roundup(scale * d) for d in shp]
        pad_x = max(0, _roundup((shp[1] - new[1]) / 2))
        pad_y = max(0, _roundup((shp[0] - new[0]) / 2))
        up = F.interpolate(x, size=new, mode="bilinear", align_corners=True)
        return F.pad(up, [pad_y, pad_x] * 2)

    def random_rotate(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate about the centre by a drawn angle in degrees (kornia warp_affine)."""
        import kornia

        b, _, h, w = x.shape
        alpha = self.rs.choice(self.cfg.angles_deg)
        angle = torch.ones(b) * alpha
        scale = torch.ones(b, 2)
        center = torch.ones(b, 2)
        center[..., 0] = (w - 1) / 2
        center[..., 1] = (h - 1) / 2
        m = kornia.get_rotation_matrix2d(center, angle, scale)
        if x.dtype in _REDUCED:
            return _warp_reduced(x, m.to(x.device))
        return kornia.warp_affine(x, m.to(x.device, x.dtype), dsize=(h, w))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = self.jitter(x, self.cfg.jitter1_px)
        x = self.random_scale(x)
        x = self.random_rotate(x)
        return self.jitter(x, self.cfg.jitter2_px)


def diversity_similarity(acts: torch.Tensor, gram_dtype: torch.dtype | None = None) -> torch.Tensor:
    """lucent's diversity penalty per group, vectorised: sum_{i!=j} cos(Gram_i, Gram_j) / n.

    Args:
        acts: float [G, n, C, h, w] pre-ReLU layer activations of G groups of n images, in
            either memory layout (a channels_last layer is read as [hw, C] without a copy).
        gram_dtype: dtype of the Gram products (None: the activations' dtype). With bf16 the
            products run on tensor cores with fp32 accumulation; cosines are formed in fp32
            from ``<G_i, G_j>`` and ``||G_i||² = <G_i, G_i>``.

    Returns:
        float [G]; lucent's ``diversity(layer)`` objective is the negation of one entry.

    Uses ``<G_i, G_j>_F = ||F_i^T F_j||_F^2`` (hw x hw matrices) when that is smaller than the
    C x C Gram matrices (deep layers: C = 1024, hw = 64).
    """
    g, n, c, h, w = acts.shape
    hw = h * w
    if gram_dtype is not None and acts.dtype != gram_dtype:
        acts = acts.to(gram_dtype)
    by_position = acts.permute(0, 1, 3, 4, 2)
    if by_position.is_contiguous() and not acts.is_contiguous():
        flat = by_position.reshape(g, n, hw, c).transpose(-1, -2)  # channels_last: a view
    else:
        flat = acts.reshape(g, n, c, hw)
    reduced = gram_dtype is not None and gram_dtype != torch.float32 and acts.is_floating_point()
    if c * c <= n * hw * hw:
        grams = flat @ flat.transpose(-1, -2)  # [G, n, C, C]
        if reduced:
            inner = torch.einsum("gicd,gjcd->gij", grams, grams).float()
            norms = inner.diagonal(dim1=1, dim2=2).clamp_min(0).sqrt().clamp_min(1e-12)
            sims = inner / (norms[:, :, None] * norms[:, None, :])
        else:
            grams = grams / grams.flatten(2).norm(dim=2).clamp_min(1e-12)[..., None, None]
            sims = torch.einsum("gicd,gjcd->gij", grams, grams)
    else:
        cross = torch.einsum("gicp,gjcq->gijpq", flat, flat)  # F_i^T F_j: [G, n, n, hw, hw]
        inner = (cross.float() if reduced else cross).pow(2).sum(dim=(-1, -2))  # <G_i, G_j>
        norms = inner.diagonal(dim1=1, dim2=2).sqrt().clamp_min(1e-12)  # ||G_i||
        sims = inner / (norms[:, :, None] * norms[:, None, :])
    off = sims.sum(dim=(1, 2)) - sims.diagonal(dim1=1, dim2=2).sum(dim=1)
    return off / n


class BatchedObjective:
    """Per-row channel objective and per-group diversity for a stack of render groups."""

    def __init__(
        self,
        net: Net,
        targets: Sequence[RenderTarget],
        n_images: int,
        weight: float,
        gram_dtype: torch.dtype | None = None,
        diversity_f: Callable[..., torch.Tensor] | None = None,
    ):
        self.net, self.targets, self.n, self.weight = net, list(targets), n_images, weight
        self.gram_dtype = gram_dtype
        self.diversity_f = diversity_f or diversity_similarity
        self.layers = list(dict.fromkeys(t.layer for t in targets))
        self.specs = {layer: net.layer_spec(layer) for layer in self.layers}
        self.modules = [m for s in self.specs.values() for m in s.modules]
        dev = net.device
        self.sign_rows = torch.tensor(
            [float(t.sign) for t in targets for _ in range(n_images)], device=dev
        )
        self.by_layer: dict[str, torch.Tensor] = {}
        self.channel_rows: dict[str, torch.Tensor] = {}
        # layers whose groups are all rows of the batch in order: no row gather (and no
        # scatter in the backward)
        self.all_rows: set[str] = set()
        for layer in self.layers:
            gidx = [i for i, t in enumerate(targets) if t.layer == layer]
            if gidx == list(range(len(targets))):
                self.all_rows.add(layer)
            self.by_layer[layer] = torch.tensor(gidx, device=dev)
            self.channel_rows[layer] = torch.tensor(
                [targets[i].channel for i in gidx for _ in range(n_images)], device=dev
            )

    def __call__(self, store: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (loss scalar to minimise, per-row objective ``sign * channel mean`` [G*n])."""
        n_groups = len(self.targets)
        feats = {}
        keep_reduced = self.gram_dtype in (torch.float16, torch.bfloat16)
        for layer in self.layers:
            modules = self.specs[layer].modules
            acts = (
                torch.cat([store[m] for m in modules], dim=1)
                if len(modules) > 1
                else store[modules[0]]
            )
            # autocast gives bf16/fp16 activations: reduce in fp32 (unless the Gram products
            # run in bf16: then only the channel means are upcast); keep fp64 for exact tests
            low = acts.dtype in (torch.float16, torch.bfloat16)
            feats[layer] = acts.float() if low and not keep_reduced else acts
        dtype = next(iter(feats.values())).dtype
        if dtype in (torch.float16, torch.bfloat16):
            dtype = torch.float32
        obj_rows = torch.zeros(n_groups * self.n, device=self.net.device, dtype=dtype)
        loss = torch.zeros((), device=self.net.device, dtype=dtype)
        for layer in self.layers:
            acts = feats[layer]
            gidx = self.by_layer[layer]
            rows = (gidx[:, None] * self.n + torch.arange(self.n, device=gidx.device)).reshape(-1)
            sel = acts if layer in self.all_rows else acts[rows]  # [G_L * n, C, h, w]
            chan = sel[torch.arange(len(rows), device=rows.device), self.channel_rows[layer]]
            vals = chan.to(dtype).mean(dim=(1, 2)) * self.sign_rows[rows].to(dtype)
            obj_rows = obj_rows.index_put((rows,), vals)
            # lucent: channel() is -mean over the group's images; diversity() is -sim/n.
            loss = loss - vals.reshape(-1, self.n).mean(dim=1).sum()
            if self.weight > 0 and self.n > 1:
                sim = self.diversity_f(
                    sel.reshape(len(gidx), self.n, *sel.shape[1:]), self.gram_dtype
                )
                loss = loss + self.weight * sim.sum()
        return loss, obj_rows


def layer_depth(net: Net, layer: str) -> int:
    """Position of the layer's first module in ``named_modules`` (sort key for early stopping)."""
    names = [n for n, _ in net.model.named_modules()]
    return names.index(net.layer_spec(layer).modules[0])


def _amp(device: torch.device, precision: str) -> torch.autocast | nullcontext[None]:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def render_memory_format(cfg: RenderConfig, device: torch.device) -> torch.memory_format:
    """The layout a render runs in (``render.memory_format``; auto = channels_last on CUDA)."""
    if cfg.memory_format == "channels_last" or (
        cfg.memory_format == "auto" and device.type == "cuda"
    ):
        return torch.channels_last
    return torch.contiguous_format


_GRAM_DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def render_batch(
    net: Net,
    targets: Sequence[RenderTarget],
    cfg: RenderConfig,
    seed: int,
    *,
    progress: bool = False,
    steps: int | None = None,
) -> list[RenderResult]:
    """Optimise ``len(targets) * n_images`` images jointly.

    Args:
        net: the network (parameters frozen).
        targets: the groups; group g owns rows ``g*n .. g*n+n-1``.
        cfg: recipe (steps, lr, diversity weight, transforms, canvas/keep size, precision).
        seed: build seed (initial spectra per group; transform draws per step).
        progress: show a tqdm bar when stderr is a terminal.
        steps: override ``cfg.steps`` (memory probing).

    Returns:
        One result per target, in the order given.
    """
    n, dev = cfg.n_images, net.device
    total_steps = cfg.steps if steps is None else steps
    spectrum = FFTImage.init_spectrum(targets, n, cfg.canvas_px, cfg.init_sd, seed).to(dev)
    param = FFTImage(spectrum, cfg.canvas_px, cfg.decay_power)
    optimizer = torch.optim.Adam([param.spectrum], lr=cfg.lr)
    transforms = PaperTransforms(cfg, np.random.RandomState(seed % (2**32)))
    layout = render_memory_format(cfg, dev)
    net.model.to(memory_format=layout)
    # the transforms run in the network's compute dtype when asked: its input needs no cast
    image_dtype = (
        torch.bfloat16 if cfg.transform_precision == "model" and cfg.precision == "bf16" else None
    )
    image_f: Callable[[], torch.Tensor] = param
    if cfg.compile:
        # the image parameterisation only: inductor's backward of diversity_similarity's
        # position route gave NaN on the CPU (torch 2.14), so that stays eager
        image_f = param.compiled()
    objective = BatchedObjective(net, targets, n, cfg.diversity, _GRAM_DTYPES[cfg.gram_precision])

    def network_input(images: torch.Tensor) -> torch.Tensor:
        x = net.input_transform_f(images)
        return x.contiguous(memory_format=layout) if layout == torch.channels_last else x

    n_groups = len(targets)
    window = torch.zeros(n_groups, device=dev)
    previous: torch.Tensor | None = None
    steps_run = 0
    bar = tqdm(
        total=total_steps,
        desc=f"render {n_groups} groups",
        unit="step",
        disable=not progress or not sys.stderr.isatty(),
        file=sys.stderr,
    )
    try:
        with capture_outputs(net.model, objective.modules) as store:
            for step in range(1, total_steps + 1):
                optimizer.zero_grad(set_to_none=True)
                images = image_f()
                if image_dtype is not None:
                    images = images.to(image_dtype)
                x = network_input(transforms(images))
                with _amp(dev, cfg.precision):
                    forward_until(net.model, x, store)
                loss, obj_rows = objective(store)
                # torch leaves Tensor.backward unannotated (an untyped call under --strict).
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                steps_run = step
                bar.update(1)
                if cfg.early_stop:
                    window += obj_rows.detach().reshape(n_groups, n).mean(dim=1)
                    if step % cfg.early_stop_every == 0:
                        current = window / cfg.early_stop_every
                        window.zero_()
                        if previous is not None:
                            gain = (current - previous) / previous.abs().clamp_min(1e-6)
                            if bool((gain < cfg.early_stop_rel_tol).all()):
                                logger.info("early stop at step %d", step)
                                break
                        previous = current
            with torch.no_grad():
                images = param()
                off = (cfg.canvas_px - cfg.keep_px) // 2
                kept = images[:, :, off : off + cfg.keep_px, off : off + cfg.keep_px]
                forward_until(net.model, network_input(kept), store)
                _, final_rows = objective(store)
    finally:
        bar.close()
    kept_np = kept.detach().float().cpu().numpy()
    final_np = final_rows.detach().float().cpu().numpy()
    results = []
    for g, target in enumerate(targets):
        rows = slice(g * n, (g + 1) * n)
        order = np.argsort(-final_np[rows], kind="stable")
        results.append(
            RenderResult(
                target,
                kept_np[rows][order].astype(np.float32),
                final_np[rows][order].astype(np.float32),
                steps_run,
            )
        )
    return results


def choose_groups_per_batch(
    net: Net, targets: Sequence[RenderTarget], cfg: RenderConfig, seed: int
) -> int:
    """Groups per optimisation batch: the configured number, 8 on CPU, else from free memory.

    On CUDA, one and two groups are run for two steps each; the difference in peak memory is
    the cost of one group, and ``memory_fraction`` of the free memory is filled.
    """
    if cfg.groups_per_batch > 0:
        return cfg.groups_per_batch
    if net.device.type != "cuda":
        return 8
    peaks = []
    probe = sorted(targets, key=lambda t: -layer_depth(net, t.layer))[:1]
    for count in (1, 2):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(net.device)
        base = torch.cuda.memory_allocated(net.device)
        render_batch(net, probe * count, cfg, seed, steps=2)
        peaks.append(torch.cuda.max_memory_allocated(net.device) - base)
    per_group = max(peaks[1] - peaks[0], peaks[0] // 2, 1)
    free = free_device_memory(net.device) or 0
    groups = max(1, int(cfg.memory_fraction * free // per_group))
    logger.info(
        "render batch: %d groups (%.0f MiB per group, %.0f MiB free)",
        groups,
        per_group / 2**20,
        free / 2**20,
    )
    return groups


def render_targets(
    net: Net,
    targets: Sequence[RenderTarget],
    cfg: RenderConfig,
    seed: int,
    *,
    progress: bool = True,
) -> tuple[list[RenderResult], dict[str, float]]:
    """Render all targets in memory-sized batches (shallow layers batched together).

    Returns:
        Results in the order of ``targets`` and timing stats (``image_steps_per_s``, ...).
    """
    per_batch = choose_groups_per_batch(net, targets, cfg, seed)
    order = sorted(range(len(targets)), key=lambda i: (layer_depth(net, targets[i].layer), i))
    n_batches = max(1, math.ceil(len(order) / per_batch))
    size = math.ceil(len(order) / n_batches)
    results: dict[int, RenderResult] = {}
    t0 = time.perf_counter()
    image_steps = 0
    for b in range(n_batches):
        idx = order[b * size : (b + 1) * size]
        if not idx:
            continue
        logger.info("render batch %d/%d: %d groups", b + 1, n_batches, len(idx))
        out = render_batch(net, [targets[i] for i in idx], cfg, seed, progress=progress)
        for i, res in zip(idx, out, strict=True):
            results[i] = res
            image_steps += res.steps * cfg.n_images
    seconds = time.perf_counter() - t0
    stats = {
        "seconds": seconds,
        "groups_per_batch": float(size),
        "image_steps_per_s": image_steps / seconds if seconds > 0 else 0.0,
    }
    return [results[i] for i in range(len(targets))], stats
