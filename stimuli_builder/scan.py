"""Batched forward pass over an image folder -> per-channel spatial mean and max per layer.

Layout of ``<work_dir>/scan``: ``meta.json`` (file list, layers, config hash),
``<layer>.mean.npy`` / ``<layer>.max.npy`` (float32 [N, C], memory-mapped, row = image index),
``progress.json`` (finished chunks, rewritten atomically) and ``done.json`` (written last; the
only marker later steps trust).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.lib.format import open_memmap
from torch.utils.data import DataLoader
from tqdm import tqdm

from stimuli_builder.config import ScanConfig
from stimuli_builder.errors import DatasetError, StepOrderError
from stimuli_builder.fsutil import write_json_atomic
from stimuli_builder.images import (
    BytesDataset,
    CropDataset,
    center_crop_box,
    collate_items,
    resize_size,
    unpack_buffers,
)
from stimuli_builder.nets import Net, capture_outputs, forward_until

logger = logging.getLogger(__name__)

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class ScanStats:
    """Timings and counts of one scan call."""

    n_images: int = 0
    n_scanned: int = 0
    n_skipped: int = 0
    seconds: float = 0.0
    wait_seconds: float = 0.0
    """Time the main thread waited for the next staged batch (0 when staging keeps ahead)."""
    stage_seconds: float = 0.0
    """Time spent staging batches (loader wait, decode, resize, host-to-device copy); with
    ``overlap`` it runs in the staging thread, alongside the model."""
    device_seconds: float = 0.0
    agreement: dict[str, Any] | None = None
    skipped_files: list[str] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        """Scanned images per second of wall time."""
        return self.n_scanned / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class ScanTable:
    """A finished scan, read back from disk (arrays are memory-mapped, read-only)."""

    root: Path
    files: list[str]
    skipped: frozenset[int]
    mean: dict[str, np.ndarray]
    max: dict[str, np.ndarray]
    meta: dict[str, Any]


def _decode_on_device(
    buffers: list[torch.Tensor], device: torch.device, resize_px: int, crop_px: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode JPEG/PNG bytes with torchvision.io (nvJPEG on CUDA), resize and crop on ``device``.

    Images of the same size are resized together (one interpolation per distinct size, not
    per image): ImageNet's validation images come in a few dozen sizes.

    Returns:
        uint8 [B, 3, crop, crop] on ``device`` and a bool [B] "decoded" mask.
    """
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg

    decoded: list[torch.Tensor | None] = [None] * len(buffers)
    if device.type == "cuda":
        jpeg_idx = [
            i for i, b in enumerate(buffers) if b.numel() > 2 and b[0] == 0xFF and b[1] == 0xD8
        ]
        try:
            outs = decode_jpeg(
                [buffers[i] for i in jpeg_idx], mode=ImageReadMode.RGB, device=device
            )
            for i, out in zip(jpeg_idx, outs, strict=True):
                decoded[i] = out
        except RuntimeError:
            pass  # one bad file fails the whole batch: fall back to per-image CPU decoding
    for i, buf in enumerate(buffers):
        if decoded[i] is None and buf.numel() > 0:
            try:
                decoded[i] = decode_image(buf, mode=ImageReadMode.RGB).to(device)
            except RuntimeError as exc:
                logger.warning("skipping undecodable image (batch item %d): %s", i, exc)
    out = torch.zeros(len(buffers), 3, crop_px, crop_px, dtype=torch.uint8, device=device)
    ok = torch.zeros(len(buffers), dtype=torch.bool)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, img in enumerate(decoded):
        if img is not None and img.shape[1] > 0 and img.shape[2] > 0:
            by_size.setdefault((img.shape[1], img.shape[2]), []).append(i)
    for (h, w), rows in by_size.items():
        x = torch.stack([decoded[i] for i in rows]).float()  # type: ignore[misc]
        nw, nh = resize_size(w, h, resize_px)
        if (nw, nh) != (w, h):
            x = F.interpolate(
                x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False
            )
        if nw < crop_px or nh < crop_px:
            # like load_crop (and torchvision's CenterCrop): pad with zeros around the centre
            pw, ph = max(0, crop_px - nw), max(0, crop_px - nh)
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
            nh, nw = x.shape[2], x.shape[3]
        left, top, right, bottom = center_crop_box(nw, nh, crop_px)
        crops = x[:, :, top:bottom, left:right].round_().clamp_(0, 255).to(torch.uint8)
        index = torch.tensor(rows, device=device)
        out.index_copy_(0, index, crops)
        ok[rows] = True
    return out, ok


@contextmanager
def exact_fp32() -> Iterator[None]:
    """fp32 means fp32: no TF32 tensor-core rounding (PyTorch allows it for cuDNN convolutions
    by default, which moved activations by ~1e-3 and reordered near-tied exemplars between CPU
    and GPU scans). bf16/fp16 scans are the fast mode."""
    conv, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, matmul


class LayerReducer:
    """Forward a uint8 batch and reduce each needed layer to per-channel spatial mean and max."""

    def __init__(self, net: Net, layers: list[str], cfg: ScanConfig, precision: str) -> None:
        self.net, self.layers, self.cfg = net, layers, cfg
        self.specs = [net.layer_spec(layer) for layer in layers]
        self.modules = [m for spec in self.specs for m in spec.modules]
        self.dtype = DTYPES[precision]
        if cfg.channels_last and net.device.type == "cuda":
            net.model.to(memory_format=torch.channels_last)

    def __call__(
        self, x_u8: torch.Tensor, store: dict[str, torch.Tensor]
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """x_u8: uint8 [B, 3, H, W] on the device -> layer: (mean, max), float32 [B, C] each."""
        x = self.net.input_transform_f(x_u8.float().div_(255.0))
        if self.cfg.channels_last and x.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        amp = (
            torch.autocast(device_type=x.device.type, dtype=self.dtype)
            if self.dtype is not None
            else exact_fp32()
        )
        with amp:
            forward_until(self.net.model, x, store)
        out = {}
        for spec in self.specs:
            act = torch.cat([store[m] for m in spec.modules], dim=1).float()
            if act.dim() == 4:
                out[spec.name] = (act.mean(dim=(2, 3)), act.amax(dim=(2, 3)))
            else:
                flat = act.flatten(1) if act.dim() > 2 else act
                out[spec.name] = (flat, flat)
        return out


LoaderItem = tuple[torch.Tensor, Any, torch.Tensor]
Staged = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


class BatchStager:
    """Turns loader items into uint8 device batches, optionally ahead of the consumer.

    ``stage(item) -> (indices, uint8 [B, 3, H, W] on the device, ok mask on the CPU)`` does the
    decoding, resizing and host-to-device copy. With ``overlap``, a thread iterates the loader
    and stages up to ``depth`` batches ahead, on its own CUDA stream on a GPU; the consumer's
    stream waits on an event recorded after each batch (no host synchronisation) and the batch's
    memory is marked as used by the consumer's stream. Without ``overlap``, staging runs inline.
    Exceptions in the thread re-raise in the consumer; :meth:`close` stops the thread.
    """

    def __init__(
        self,
        items: Iterable[LoaderItem],
        stage: Callable[[LoaderItem], Staged],
        device: torch.device,
        *,
        overlap: bool,
        depth: int = 2,
    ) -> None:
        self.items, self.stage, self.device, self.overlap = items, stage, device, overlap
        self.stage_seconds = 0.0
        self.wait_seconds = 0.0
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._source: Iterator[LoaderItem] = iter(())
        self._stream: torch.cuda.Stream | None = None
        if overlap and device.type == "cuda":
            self._stream = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]

    def _put(self, obj: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(obj, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        stream_ctx: AbstractContextManager[object] = (
            torch.cuda.stream(self._stream) if self._stream is not None else nullcontext()
        )
        try:
            with stream_ctx, torch.inference_mode():
                it = self._source
                while not self._stop.is_set():
                    t0 = time.perf_counter()
                    item = next(it, None)
                    if item is None:
                        break
                    staged = self.stage(item)
                    event: torch.cuda.Event | None = None
                    if self._stream is not None:
                        event = torch.cuda.Event()  # type: ignore[no-untyped-call]
                        event.record(self._stream)
                    self.stage_seconds += time.perf_counter() - t0
                    if not self._put((staged, event)):
                        return
            self._put(_END)
        except BaseException as exc:  # re-raised in the consumer
            self._put(_Failed(exc))

    def __iter__(self) -> Iterator[Staged]:
        if not self.overlap:
            it = iter(self.items)
            while True:
                t0 = time.perf_counter()
                item = next(it, None)
                if item is None:
                    return
                staged = self.stage(item)
                dt = time.perf_counter() - t0
                self.stage_seconds += dt
                self.wait_seconds += dt
                yield staged
        # the loader's iterator (and its worker processes) start on the calling thread, as the
        # serial loop's do; the staging thread only pulls items from it
        self._source = iter(self.items)
        self._thread = threading.Thread(target=self._run, name="scan-stager", daemon=True)
        self._thread.start()
        while True:
            t0 = time.perf_counter()
            got = self._queue.get()
            self.wait_seconds += time.perf_counter() - t0
            if got is _END:
                return
            if isinstance(got, _Failed):
                raise got.exc
            batch: Staged
            event: torch.cuda.Event | None
            batch, event = got  # type: ignore[misc]
            if event is not None:
                consumer = torch.cuda.current_stream(self.device)
                consumer.wait_event(event)
                batch[1].record_stream(consumer)
            yield batch

    def close(self) -> None:
        """Stop the staging thread (pending batches are dropped)."""
        self._stop.set()
        if self._thread is not None:
            while self._thread.is_alive():
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    self._thread.join(timeout=0.05)
            self._thread = None
        self._source = iter(())  # drops the loader's iterator: its workers shut down


class _ChunkWriter:
    """Copies a finished chunk's reductions to the host and writes them to the arrays.

    On CUDA the copies are asynchronous (pinned memory) and a chunk is written when the next
    one finishes or at the end, so the main thread never waits for the device mid-scan.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.pending: list[
            tuple[int, list[tuple[np.ndarray, dict[str, tuple[torch.Tensor, torch.Tensor]]]], Any]
        ] = []

    def submit(
        self,
        c: int,
        rows: list[tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]],
    ) -> None:
        copies = []
        for bidx, red in rows:
            host = {
                layer: (
                    mean_t.to("cpu", non_blocking=self.device.type == "cuda"),
                    max_t.to("cpu", non_blocking=self.device.type == "cuda"),
                )
                for layer, (mean_t, max_t) in red.items()
            }
            copies.append((bidx.numpy(), host))
        event: torch.cuda.Event | None = None
        if self.device.type == "cuda":
            event = torch.cuda.Event()  # type: ignore[no-untyped-call]
            event.record()
        self.pending.append((c, copies, event))

    def ready(
        self, flush_all: bool = False
    ) -> Iterator[tuple[int, list[tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]]]]:
        """Chunks whose copies are done: all but the newest (all with ``flush_all``)."""
        keep = 0 if flush_all or self.device.type != "cuda" else 1
        while len(self.pending) > keep:
            c, copies, event = self.pending.pop(0)
            if event is not None:
                event.synchronize()
            yield (
                c,
                [
                    (rows, {k: (a.numpy(), b.numpy()) for k, (a, b) in host.items()})
                    for rows, host in copies
                ],
            )


def _batches(indices: range, batch_size: int) -> list[list[int]]:
    return [list(indices[i : i + batch_size]) for i in range(0, len(indices), batch_size)]


def scan_folder(
    net: Net,
    layers: list[str],
    root: Path,
    files: list[str],
    out_dir: Path,
    cfg: ScanConfig,
    config_hash: str,
    *,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> ScanStats:
    """Scan ``files`` and store per-layer activation statistics in ``out_dir`` (resumable).

    Args:
        net: the loaded network (its device decides CPU/CUDA).
        layers: layer names (validated with ``net.layer_spec``).
        root: dataset root; ``files`` are relative to it.
        files: sorted file list (row i of every array is ``files[i]``).
        out_dir: ``<work_dir>/scan``.
        cfg: scan options.
        config_hash: hash of everything that determines the output; a folder with another
            hash is discarded and scanned afresh.
        progress: show a tqdm bar (images/s) when stderr is a terminal.
        on_chunk: called with each finished chunk id (tests use it to interrupt).

    Returns:
        Counts and timings.

    Raises:
        BuildError subclasses for unknown layers.
    """
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    specs = {layer: net.layer_spec(layer) for layer in layers}
    channels = {layer: sum(net.layer_channels(layer, cfg.crop_px)) for layer in layers}
    n = len(files)
    chunk = max(cfg.batch_size, -(-cfg.chunk_size // cfg.batch_size) * cfg.batch_size)
    n_chunks = -(-n // chunk)
    meta = {
        "config_hash": config_hash,
        "root": str(root),
        "files": files,
        "layers": {
            layer: {"channels": channels[layer], "modules": list(specs[layer].modules)}
            for layer in layers
        },
        "chunk_size": chunk,
        "n_chunks": n_chunks,
        "precision": cfg.precision,
        "model": net.name,
        "weights_id": net.weights_id,
    }
    meta_path, progress_path = out_dir / "meta.json", out_dir / "progress.json"
    done_chunks: set[int] = set()
    skipped: set[int] = set()
    fresh = True
    if meta_path.exists() and progress_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("config_hash") == config_hash and old.get("files") == files:
            prog = json.loads(progress_path.read_text())
            done_chunks = set(prog["done"])
            skipped = set(prog["skipped"])
            fresh = False
            logger.info("resuming scan: %d of %d chunks done", len(done_chunks), n_chunks)
    if fresh:
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        for layer in layers:
            for stat in ("mean", "max"):
                arr = open_memmap(
                    out_dir / f"{layer}.{stat}.npy", "w+", np.float32, (n, channels[layer])
                )
                arr[:] = np.nan
                arr.flush()
                del arr
        write_json_atomic(progress_path, {"done": [], "skipped": []})
        write_json_atomic(meta_path, meta)
    (out_dir / "done.json").unlink(missing_ok=True)
    arrays = {
        (layer, stat): open_memmap(out_dir / f"{layer}.{stat}.npy", "r+")
        for layer in layers
        for stat in ("mean", "max")
    }
    pending = [c for c in range(n_chunks) if c not in done_chunks]
    batch_list = [
        b
        for c in pending
        for b in _batches(range(c * chunk, min(n, (c + 1) * chunk)), cfg.batch_size)
    ]
    stats = ScanStats(n_images=n)
    device = net.device
    decoder = (
        cfg.decoder if cfg.decoder != "auto" else ("torch" if device.type == "cuda" else "pil")
    )
    workers = cfg.num_workers
    if workers is None:
        workers = min(16, os.cpu_count() or 1) if device.type == "cuda" else 0
    dataset = (
        CropDataset(root, files, cfg.resize_px, cfg.crop_px, cfg.draft)
        if decoder == "pil"
        else BytesDataset(root, files)
    )
    loader = DataLoader(
        dataset,
        batch_sampler=batch_list,
        num_workers=workers,
        pin_memory=device.type == "cuda" and decoder == "pil",
        collate_fn=collate_items,
        prefetch_factor=4 if workers > 0 else None,
        persistent_workers=False,
    )
    reducer = LayerReducer(net, layers, cfg, cfg.precision)
    bar = tqdm(
        total=sum(len(b) for b in batch_list),
        unit="img",
        desc="scan",
        disable=not progress or not sys.stderr.isatty(),
        file=sys.stderr,
    )

    def stage(item: LoaderItem) -> Staged:
        idx, data, ok = item
        if decoder == "pil":
            assert isinstance(data, torch.Tensor)
            return idx, data.to(device, non_blocking=True), ok
        x, ok_dec = _decode_on_device(unpack_buffers(data), device, cfg.resize_px, cfg.crop_px)
        return idx, x, ok & ok_dec

    stager = BatchStager(loader, stage, device, overlap=cfg.overlap, depth=cfg.prefetch_batches)
    writer = _ChunkWriter(device)
    chunk_rows: dict[
        int, list[tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]]
    ] = {}
    chunk_left = {c: min(n, (c + 1) * chunk) - c * chunk for c in pending}

    def write_ready(flush_all: bool = False) -> None:
        for c, rows in writer.ready(flush_all):
            t_dev = time.perf_counter()
            for bidx, host in rows:
                for layer, (mean_a, max_a) in host.items():
                    arrays[(layer, "mean")][bidx] = mean_a
                    arrays[(layer, "max")][bidx] = max_a
            for arr in arrays.values():
                for i in skipped:
                    if c * chunk <= i < (c + 1) * chunk:
                        arr[i] = np.nan
                arr.flush()
            stats.device_seconds += time.perf_counter() - t_dev
            done_chunks.add(c)
            write_json_atomic(
                progress_path, {"done": sorted(done_chunks), "skipped": sorted(skipped)}
            )
            if on_chunk is not None:
                on_chunk(c)

    try:
        with capture_outputs(net.model, reducer.modules) as store, torch.inference_mode():
            for idx, x, ok in stager:
                reduced = reducer(x, store)
                c = int(idx[0]) // chunk
                chunk_rows.setdefault(c, []).append((idx, reduced))
                for i in idx[~ok].tolist():
                    skipped.add(int(i))
                    logger.warning("skipped unreadable image %s", files[int(i)])
                chunk_left[c] -= len(idx)
                bar.update(len(idx))
                if chunk_left[c] == 0:
                    writer.submit(c, chunk_rows.pop(c))
                    write_ready()
                stats.n_scanned += len(idx)
            write_ready(flush_all=True)
    finally:
        stager.close()
        stats.wait_seconds = stager.wait_seconds
        stats.stage_seconds = stager.stage_seconds
        bar.close()
        for arr in arrays.values():
            arr.flush()
        arrays.clear()  # closes the memory maps
    stats.n_skipped = len(skipped)
    stats.skipped_files = [files[i] for i in sorted(skipped)]
    stats.seconds = time.perf_counter() - t_start
    if cfg.precision != "fp32" and cfg.agreement_images > 0:
        stats.agreement = precision_agreement(
            net, layers, root, files, out_dir, cfg, skipped, decoder
        )
        weak = [
            layer
            for layer, agreement in stats.agreement["layers"].items()
            if agreement["spearman_mean"] < cfg.agreement_floor
        ]
        if weak:
            _rescan_in_fp32(net, weak, root, files, out_dir, cfg, config_hash, progress)
        stats.agreement["floor"] = cfg.agreement_floor
        stats.agreement["rescanned_fp32"] = weak
    if stats.n_skipped == n:
        raise DatasetError(f"none of the {n} images under {root} could be decoded")
    write_json_atomic(
        out_dir / "done.json",
        {
            "config_hash": config_hash,
            "n_images": n,
            "n_skipped": stats.n_skipped,
            "skipped": sorted(skipped),
            "agreement": stats.agreement,
        },
    )
    logger.info(
        "scan finished: %d images (%d skipped) in %.1f s, %.0f images/s",
        n,
        stats.n_skipped,
        stats.seconds,
        stats.images_per_s,
    )
    return stats


def _rescan_in_fp32(
    net: Net,
    layers: list[str],
    root: Path,
    files: list[str],
    out_dir: Path,
    cfg: ScanConfig,
    config_hash: str,
    progress: bool,
) -> None:
    """Scan ``layers`` again in fp32 (resumable, under ``out_dir/fp32``) and replace their
    reduced-precision arrays with the fp32 ones."""
    logger.warning(
        "%s ranks of %s disagree with fp32 (mean Spearman < %.4f): scanning them in fp32",
        cfg.precision,
        ", ".join(layers),
        cfg.agreement_floor,
    )
    sub = out_dir / "fp32"
    fp32 = cfg.model_copy(update={"precision": "fp32"})
    scan_folder(net, layers, root, files, sub, fp32, f"{config_hash}:fp32", progress=progress)
    for layer in layers:
        for stat in ("mean", "max"):
            dst = open_memmap(out_dir / f"{layer}.{stat}.npy", "r+")
            dst[:] = np.load(sub / f"{layer}.{stat}.npy", mmap_mode="r")
            dst.flush()
            del dst
    shutil.rmtree(sub)


def ranking_agreement(reference: np.ndarray, other: np.ndarray, top: int) -> dict[str, float]:
    """How well ``other`` reproduces the per-channel image ranking of ``reference``.

    Args:
        reference: float32 [N, C] (fp32 scan).
        other: float32 [N, C] (reduced-precision scan of the same images).
        top: size of the top set compared.

    Returns:
        ``spearman_min``/``spearman_mean`` over channels and ``top_overlap_min``/``_mean``: the
        fraction of the reference top-``top`` images that are also in the other's top-``top``.
    """
    n, c = reference.shape
    top = max(1, min(top, n))
    ref_rank = reference.argsort(axis=0).argsort(axis=0).astype(np.float64)
    oth_rank = other.argsort(axis=0).argsort(axis=0).astype(np.float64)
    ref_rank -= ref_rank.mean(axis=0)
    oth_rank -= oth_rank.mean(axis=0)
    denom = np.sqrt((ref_rank**2).sum(axis=0) * (oth_rank**2).sum(axis=0))
    rho = np.where(denom > 0, (ref_rank * oth_rank).sum(axis=0) / np.maximum(denom, 1e-30), 1.0)
    ref_top = np.argsort(-reference, axis=0)[:top]
    oth_top = np.argsort(-other, axis=0)[:top]
    overlap = np.array([len(np.intersect1d(ref_top[:, j], oth_top[:, j])) / top for j in range(c)])
    return {
        "spearman_min": float(rho.min()),
        "spearman_mean": float(rho.mean()),
        "top_overlap_min": float(overlap.min()),
        "top_overlap_mean": float(overlap.mean()),
    }


def precision_agreement(
    net: Net,
    layers: list[str],
    root: Path,
    files: list[str],
    out_dir: Path,
    cfg: ScanConfig,
    skipped: set[int],
    decoder: str = "pil",
) -> dict[str, Any]:
    """Rescan the first ``cfg.agreement_images`` images in fp32 and compare rankings per layer.

    The images are decoded as the scan decoded them, so only the precision differs.
    """
    n = min(cfg.agreement_images, len(files))
    keep = [i for i in range(n) if i not in skipped]
    crops = CropDataset(root, files, cfg.resize_px, cfg.crop_px, cfg.draft)
    raw = BytesDataset(root, files)
    reducer = LayerReducer(net, layers, cfg, "fp32")
    ref: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    with capture_outputs(net.model, reducer.modules) as store, torch.inference_mode():
        for batch in _batches(range(len(keep)), cfg.batch_size):
            if decoder == "pil":
                x = torch.stack([crops[keep[i]][1] for i in batch]).to(net.device)
            else:
                bufs = [raw[keep[i]][1] for i in batch]
                x, _ok = _decode_on_device(bufs, net.device, cfg.resize_px, cfg.crop_px)
            for layer, (mean_t, _max_t) in reducer(x, store).items():
                ref[layer].append(mean_t.cpu().numpy())
    result: dict[str, Any] = {"n_images": len(keep), "precision": cfg.precision, "layers": {}}
    top = max(1, len(keep) // 20)
    for layer in layers:
        other = np.load(out_dir / f"{layer}.mean.npy", mmap_mode="r")[keep]
        result["layers"][layer] = ranking_agreement(
            np.concatenate(ref[layer]), np.asarray(other), top
        )
    worst = min(v["spearman_min"] for v in result["layers"].values())
    logger.info(
        "%s vs fp32 ranking agreement on %d images: min Spearman %.4f",
        cfg.precision,
        len(keep),
        worst,
    )
    return result


def load_scan(out_dir: Path, config_hash: str) -> ScanTable:
    """Open a finished scan.

    Raises:
        StepOrderError: no finished scan, or one made with another configuration.
    """
    out_dir = Path(out_dir)
    done_path = out_dir / "done.json"
    if not done_path.exists():
        raise StepOrderError(f"no finished scan in {out_dir}; run `stimuli-builder scan` first")
    done = json.loads(done_path.read_text())
    if done.get("config_hash") != config_hash:
        raise StepOrderError(
            f"the scan in {out_dir} was made with another configuration "
            f"(hash {done.get('config_hash')} != {config_hash}); rerun `stimuli-builder scan`"
        )
    meta = json.loads((out_dir / "meta.json").read_text())
    mean = {
        layer: np.load(out_dir / f"{layer}.mean.npy", mmap_mode="r") for layer in meta["layers"]
    }
    mx = {layer: np.load(out_dir / f"{layer}.max.npy", mmap_mode="r") for layer in meta["layers"]}
    return ScanTable(
        Path(meta["root"]),
        meta["files"],
        frozenset(done["skipped"]),
        mean,
        mx,
        meta | {"done": done},
    )
