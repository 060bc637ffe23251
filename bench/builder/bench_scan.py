"""Scan benchmark: stimuli_builder scan vs a plain ImageFolder + PIL + DataLoader + fp32 loop.

Usage (GPU, full size):  python bench/builder/bench_scan.py --images 16000 --workers 16
      (CPU, small):      python bench/builder/bench_scan.py --images 192 --workers 2 --batch 32
Writes JSON to bench/out/scan.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from stimuli_builder.config import ScanConfig
from stimuli_builder.images import list_images
from stimuli_builder.nets import capture_outputs, load_model, use_fast_layers, use_lucent_layers
from stimuli_builder.scan import LayerReducer, scan_folder

logger = logging.getLogger("bench.scan")
LAYERS = [
    "mixed3a",
    "mixed3b",
    "mixed4a",
    "mixed4b",
    "mixed4c",
    "mixed4d",
    "mixed4e",
    "mixed5a",
    "mixed5b",
]


def _make_image(args: tuple[Path, int, int]) -> None:
    """One ImageNet-sized (500x375 or 375x500) JPEG with photo-like structure, seeded by index."""
    root, seed, i = args
    rng = np.random.default_rng((seed, i))
    base = np.random.default_rng((seed, i % 8, 1)).normal(0, 1, (47, 63, 3))
    w, h = (500, 375) if i % 4 else (375, 500)
    small = base + rng.normal(0, 0.5, base.shape)
    img = Image.fromarray(np.clip(128 + 60 * small, 0, 255).astype(np.uint8)).resize(
        (w, h), Image.BICUBIC
    )
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 8, (h, w, 3))
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(
        root / f"ILSVRC2012_val_{i:08d}.JPEG", quality=90
    )


def make_folder(root: Path, n: int, seed: int = 0, workers: int = 1) -> Path:
    """n ImageNet-sized JPEGs (smooth + noise); existing ones are kept, generated in parallel."""
    root.mkdir(parents=True, exist_ok=True)
    have = len(list(root.glob("*.JPEG")))
    jobs = [(root, seed, i) for i in range(have, n)]
    if workers > 1 and len(jobs) > 64:
        from multiprocessing import Pool

        with Pool(workers) as pool:
            pool.map(_make_image, jobs, chunksize=64)
    else:
        for job in jobs:
            _make_image(job)
    return root


class PlainDataset(Dataset[torch.Tensor]):
    """torchvision-style: PIL open -> Resize(256) -> CenterCrop(224) -> ToTensor (float)."""

    def __init__(self, root: Path, files: list[str]) -> None:
        from torchvision import transforms

        self.root, self.files = root, files
        self.tf = transforms.Compose(
            [transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()]
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.root / self.files[i]) as img:
            return self.tf(img.convert("RGB"))


def plain_scan(net, root: Path, files: list[str], batch: int, workers: int) -> dict[str, float]:
    """The straightforward baseline: float tensors from workers, fp32, full forward."""
    specs = [net.layer_spec(layer) for layer in LAYERS]
    modules = [m for s in specs for m in s.modules]
    loader = DataLoader(
        PlainDataset(root, files),
        batch_size=batch,
        num_workers=workers,
        pin_memory=net.device.type == "cuda",
    )
    sync(net.device)
    t0 = time.perf_counter()
    with torch.no_grad(), capture_outputs(net.model, modules, stop_early=False) as store:
        for x in loader:
            store.clear()
            net.model(net.input_transform_f(x.to(net.device)))
            for s in specs:
                torch.cat([store[m] for m in s.modules], 1).mean(dim=(2, 3)).cpu()
    sync(net.device)
    return {"images_per_s": len(files) / (time.perf_counter() - t0)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def breakdown(net, root: Path, files: list[str], batch: int, precision: str) -> dict[str, float]:
    """Per-image milliseconds of each stage on one core, and the model's images/s."""
    sample = files[: min(64, len(files))]
    t = time.perf_counter()
    blobs = [(root / f).read_bytes() for f in sample]
    read = time.perf_counter() - t
    t = time.perf_counter()
    imgs = [Image.open(io.BytesIO(b)).convert("RGB") for b in blobs]
    dec = time.perf_counter() - t
    t = time.perf_counter()
    for im in imgs:
        w, h = im.size
        s = 256 / min(w, h)
        im.resize((int(w * s), int(h * s)), Image.Resampling.BILINEAR).crop((0, 0, 224, 224))
    rs = time.perf_counter() - t
    x = (
        torch.randint(0, 255, (batch, 3, 224, 224), dtype=torch.uint8).pin_memory()
        if net.device.type == "cuda"
        else torch.randint(0, 255, (batch, 3, 224, 224), dtype=torch.uint8)
    )
    sync(net.device)
    t = time.perf_counter()
    for _ in range(5):
        xd = x.to(net.device, non_blocking=True)
    sync(net.device)
    h2d = (time.perf_counter() - t) / 5 / batch
    reducer = LayerReducer(net, LAYERS, ScanConfig(precision=precision), precision)
    with torch.inference_mode(), capture_outputs(net.model, reducer.modules) as store:
        reducer(xd, store)
        sync(net.device)
        reps = 5 if net.device.type == "cuda" else 1
        t = time.perf_counter()
        for _ in range(reps):
            reducer(xd, store)
        sync(net.device)
        model_s = (time.perf_counter() - t) / reps / batch
    n = len(sample)
    return {
        "read_ms": 1e3 * read / n,
        "decode_ms": 1e3 * dec / n,
        "resize_crop_ms": 1e3 * rs / n,
        "h2d_ms": 1e3 * h2d,
        "model_ms": 1e3 * model_s,
        "model_images_per_s": 1 / model_s,
    }


def save(path: Path, result: dict[str, object]) -> None:
    """Write the results so far."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=192)
    ap.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--precision", default="bf16" if torch.cuda.is_available() else "fp32")
    ap.add_argument("--folder", type=Path, default=Path("bench/out/scan_images"))
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument(
        "--decoders", default="", help="also scan with these decoders (pil,torch) in --precision"
    )
    ap.add_argument(
        "--overlap",
        choices=["on", "off", "both"],
        default="on",
        help="staging thread (decode batch k+1 while batch k runs); both = each run twice, "
        "serial first, and the two results compared",
    )
    ap.add_argument(
        "--json",
        type=Path,
        default=Path("bench/out/scan.json"),
        help="results, rewritten after every measurement (a time limit keeps what was done)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    root = make_folder(args.folder, args.images, workers=args.workers)
    files = list_images(root, args.images)
    net = load_model("inceptionv1", "random", device, seed=0)
    result: dict[str, object] = {
        "device": torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"cpu x{os.cpu_count()}",
        "images": len(files),
        "workers": args.workers,
        "batch": args.batch,
        "torch": torch.__version__,
    }
    if not args.skip_baseline:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        # The plain loop runs lucent's model as shipped (avg_pool3d LRN).
        use_lucent_layers(net.model)
        result["plain"] = plain_scan(net, root, files, min(args.batch, 256), args.workers)
        use_fast_layers(net.model)
        if device.type == "cuda":
            result["plain"]["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30  # type: ignore[index]
    runs = [("fp32", "auto"), (args.precision, "auto")]
    runs += [(args.precision, d) for d in args.decoders.split(",") if d]
    overlaps = {"on": [True], "off": [False], "both": [False, True]}[args.overlap]
    for precision, decoder in dict.fromkeys(runs):
        serial: dict[str, np.ndarray] = {}
        for overlap in overlaps:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            cfg = ScanConfig(
                batch_size=args.batch,
                num_workers=args.workers,
                precision=precision,
                decoder=decoder,
                overlap=overlap,
                chunk_size=max(4096, args.batch),
                agreement_images=min(1024, len(files)),
                # throughput of the precision itself; a build rescans weak layers in fp32
                agreement_floor=0.0,
            )
            out = Path(f"bench/out/scan_{precision}_{decoder}_{'overlap' if overlap else 'serial'}")
            stats = scan_folder(
                net,
                LAYERS,
                root,
                files,
                out,
                cfg,
                config_hash=f"bench-{time.time()}",
                progress=False,
            )
            entry: dict[str, object] = {
                "images_per_s": stats.images_per_s,
                "seconds": stats.seconds,
                "main_thread_wait_s": stats.wait_seconds,
                "stage_s": stats.stage_seconds,
                "agreement": stats.agreement,
            }
            means = {layer: np.load(out / f"{layer}.mean.npy") for layer in LAYERS}
            if not overlap:
                serial = means
            elif serial:
                entry["identical_to_serial"] = all(
                    np.array_equal(means[k], serial[k], equal_nan=True) for k in LAYERS
                )
            if device.type == "cuda":
                entry["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
            name = f"ours_{precision}" + ("" if decoder == "auto" else f"_{decoder}")
            if len(overlaps) > 1:
                name += "_overlap" if overlap else "_serial"
            result[name] = entry
            save(args.json, result)
    result["breakdown"] = breakdown(
        net, root, files, min(args.batch, 64 if device.type == "cpu" else 512), args.precision
    )
    save(args.json, result)
    sys.stdout.write(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
