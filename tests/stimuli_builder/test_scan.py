"""Scan: values, corrupt files, resumability, hook cleanup, preprocessing, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, make_image_folder
from PIL import Image

from stimuli_builder.config import build_config
from stimuli_builder.errors import DatasetError, ModelError
from stimuli_builder.images import list_images, load_crop
from stimuli_builder.nets import count_forward_hooks, load_model
from stimuli_builder.pipeline import load_net, run_scan
from stimuli_builder.scan import load_scan, ranking_agreement


def test_load_crop_matches_torchvision_resize_and_center_crop(tmp_path: Path) -> None:
    from torchvision import transforms

    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(500, 375), (375, 500), (300, 300), (260, 900)]):
        path = tmp_path / f"{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        ours = load_crop(path, 256, 224)
        tv = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])
        with Image.open(path) as img:
            ref = np.asarray(tv(img.convert("RGB")))
        assert ours.shape == (224, 224, 3)
        np.testing.assert_array_equal(ours, ref)


def test_scan_stores_spatial_mean_and_max_per_channel(tiny_config: Callable[..., Any]) -> None:
    cfg = build_config(tiny_config())
    net = load_net(cfg)
    run_scan(cfg, net=net, progress=False)
    table = load_scan(cfg.work_dir / "scan", _scan_hash(cfg))
    files = list_images(cfg.data.root)
    assert table.files == files
    x = (
        torch.stack(
            [
                torch.from_numpy(load_crop(cfg.data.root / f, 40, 32)).permute(2, 0, 1)
                for f in files[:5]
            ]
        ).float()
        / 255
    )
    with torch.no_grad():
        conv1 = net.model.conv1(x)
    np.testing.assert_allclose(
        table.mean["conv1"][:5], conv1.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        table.max["conv1"][:5], conv1.amax(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6
    )
    assert table.mean["conv2"].shape == (60, 16)
    assert count_forward_hooks(net.model) == 0


def _scan_hash(cfg: Any) -> str:
    from stimuli_builder.pipeline import step_hashes

    return step_hashes(cfg)["scan"]


def test_corrupt_images_are_skipped_and_counted(
    tiny_config: Callable[..., Any], image_folder: Path
) -> None:
    (image_folder / "n00000000" / "zz_broken.JPEG").write_bytes(b"\xff\xd8not a jpeg at all")
    (image_folder / "zz_empty.jpg").write_bytes(b"")
    cfg = build_config(tiny_config())
    done = run_scan(cfg, progress=False)
    assert done["n_images"] == 62
    assert done["n_skipped"] == 2
    table = load_scan(cfg.work_dir / "scan", _scan_hash(cfg))
    skipped = sorted(table.files[i] for i in table.skipped)
    assert skipped == ["n00000000/zz_broken.JPEG", "zz_empty.jpg"]
    assert np.isnan(table.mean["conv1"][sorted(table.skipped)]).all()


def test_interrupted_scan_resumes_to_the_identical_result(
    tiny_config: Callable[..., Any], tmp_path: Path
) -> None:
    fresh = build_config(tiny_config(work_dir=str(tmp_path / "fresh")))
    run_scan(fresh, progress=False)
    cfg = build_config(tiny_config(work_dir=str(tmp_path / "resumed")))
    net = load_net(cfg)
    seen: list[int] = []

    def stop_after_two(chunk: int) -> None:
        seen.append(chunk)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_scan(cfg, net=net, progress=False, on_chunk=stop_after_two)
    assert count_forward_hooks(net.model) == 0
    scan_dir = cfg.work_dir / "scan"
    assert not (scan_dir / "done.json").exists()
    assert json.loads((scan_dir / "progress.json").read_text())["done"] == [0, 1]
    from stimuli_builder.errors import StepOrderError

    with pytest.raises(StepOrderError, match="no finished scan"):
        load_scan(scan_dir, _scan_hash(cfg))
    resumed_chunks: list[int] = []
    run_scan(cfg, net=net, progress=False, on_chunk=resumed_chunks.append)
    assert resumed_chunks == [2, 3]
    a = load_scan(fresh.work_dir / "scan", _scan_hash(fresh))
    b = load_scan(scan_dir, _scan_hash(cfg))
    for layer in ("conv1", "conv2"):
        np.testing.assert_array_equal(a.mean[layer], b.mean[layer])
        np.testing.assert_array_equal(a.max[layer], b.max[layer])


def test_finished_scan_is_skipped_and_force_rescans(tiny_config: Callable[..., Any]) -> None:
    cfg = build_config(tiny_config())
    run_scan(cfg, progress=False)
    chunks: list[int] = []
    run_scan(cfg, progress=False, on_chunk=chunks.append)
    assert chunks == []
    run_scan(cfg, progress=False, on_chunk=chunks.append, force=True)
    assert chunks == [0, 1, 2, 3]


def test_empty_or_missing_folder_is_a_clear_error(
    tiny_config: Callable[..., Any], tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="holds no images"):
        run_scan(build_config(tiny_config(data={"root": str(empty)})), progress=False)
    with pytest.raises(DatasetError, match="does not exist"):
        run_scan(build_config(tiny_config(data={"root": str(tmp_path / "nope")})), progress=False)


def test_folder_of_only_corrupt_images_fails(
    tiny_config: Callable[..., Any], tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"{i}.jpg").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="none of the 3 images"):
        run_scan(build_config(tiny_config(data={"root": str(bad)})), progress=False)


def test_unknown_layer_and_channel_out_of_range_are_named(tiny_config: Callable[..., Any]) -> None:
    cfg = build_config(tiny_config(units=[{"layer": "conv3", "channel": 0}]))
    with pytest.raises(ModelError, match=r"unknown layer 'conv3'.*did you mean"):
        load_net(cfg)
    cfg = build_config(tiny_config(units=[{"layer": "conv2", "channel": 16}]))
    with pytest.raises(
        ModelError, match=r"unit conv2:16: channel 16 is out of range .*\(0\.\.15\)"
    ):
        load_net(cfg)


def test_bf16_scan_reports_ranking_agreement(tiny_config: Callable[..., Any]) -> None:
    cfg = build_config(
        tiny_config(
            scan={
                "batch_size": 8,
                "chunk_size": 16,
                "resize_px": 40,
                "crop_px": 32,
                "precision": "bf16",
                "agreement_images": 40,
            }
        )
    )
    done = run_scan(cfg, progress=False)
    agreement = done["agreement"]
    assert agreement["n_images"] == 40
    assert 0.9 < agreement["layers"]["conv1"]["spearman_mean"] <= 1.0


def test_ranking_agreement_is_one_for_identical_and_low_for_reversed() -> None:
    a = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    same = ranking_agreement(a, a.copy(), 5)
    assert same["spearman_min"] == pytest.approx(1.0) and same["top_overlap_min"] == 1.0
    rev = ranking_agreement(a, -a, 5)
    assert rev["spearman_mean"] == pytest.approx(-1.0)
    assert rev["top_overlap_mean"] == 0.0


def test_flat_folder_listing_is_sorted(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "flat", 5)
    assert list_images(root) == sorted(list_images(root))
    assert all("/" not in f for f in list_images(root))


def test_model_factory_weights_are_seeded() -> None:
    a = load_model(TINY_MODEL, "random", torch.device("cpu"), seed=1)
    b = load_model(TINY_MODEL, "random", torch.device("cpu"), seed=1)
    torch.testing.assert_close(a.model.conv1.weight, b.model.conv1.weight)
    assert a.weights_id == "random(seed=1)"


@pytest.mark.parametrize(("decoder", "workers"), [("pil", 0), ("torch", 0), ("pil", 2)])
def test_overlapped_staging_gives_the_same_scan_as_the_serial_loop(
    tiny_config: Callable[..., Any], tmp_path: Path, decoder: str, workers: int
) -> None:
    import threading

    tables = {}
    for overlap in (False, True):
        scan = {"batch_size": 8, "chunk_size": 16, "resize_px": 40, "crop_px": 32}
        cfg = build_config(
            tiny_config(
                work_dir=str(tmp_path / f"w{overlap}"),
                scan=scan
                | {
                    "decoder": decoder,
                    "overlap": overlap,
                    "prefetch_batches": 3,
                    "num_workers": workers,
                },
            )
        )
        run_scan(cfg, progress=False)
        tables[overlap] = load_scan(cfg.work_dir / "scan", _scan_hash(cfg))
    assert not [t for t in threading.enumerate() if t.name == "scan-stager"]
    for layer in ("conv1", "conv2"):
        np.testing.assert_array_equal(tables[True].mean[layer], tables[False].mean[layer])
        np.testing.assert_array_equal(tables[True].max[layer], tables[False].max[layer])


def test_batch_stager_overlaps_staging_with_the_consumer_and_reraises() -> None:
    import threading
    import time

    from stimuli_builder.scan import BatchStager

    cpu = torch.device("cpu")
    items = [(torch.tensor([i]), None, torch.tensor([True])) for i in range(6)]

    def slow_stage(item: Any) -> Any:
        time.sleep(0.05)
        return item[0], torch.zeros(1), item[2]

    waits = {}
    for overlap in (False, True):
        stager = BatchStager(items, slow_stage, cpu, overlap=overlap, depth=2)
        got = []
        for idx, _x, _ok in stager:
            time.sleep(0.05)  # the model's forward
            got.append(int(idx[0]))
        stager.close()
        assert got == list(range(6))
        waits[overlap] = stager.wait_seconds
    # serial: the consumer waits for every staging; overlapped: only for the first
    assert waits[True] < waits[False] / 2, waits

    def broken(item: Any) -> Any:
        raise OSError("disk gone")

    stager = BatchStager(items, broken, cpu, overlap=True)
    with pytest.raises(OSError, match="disk gone"):
        list(stager)
    stager.close()
    # a consumer that stops early stops the thread
    stager = BatchStager(items, slow_stage, cpu, overlap=True, depth=1)
    next(iter(stager))
    stager.close()
    assert not [t for t in threading.enumerate() if t.name == "scan-stager"]


def test_layers_below_the_agreement_floor_are_scanned_in_fp32(
    tiny_config: Callable[..., Any], tmp_path: Path
) -> None:
    base = {"batch_size": 8, "chunk_size": 16, "resize_px": 40, "crop_px": 32}
    exact = build_config(tiny_config(work_dir=str(tmp_path / "fp32"), scan=base))
    run_scan(exact, progress=False)
    ref = load_scan(exact.work_dir / "scan", _scan_hash(exact))
    for floor, expected in ((1.01, ["conv1", "conv2"]), (0.0, [])):
        scan = base | {"precision": "bf16", "agreement_images": 40, "agreement_floor": floor}
        cfg = build_config(tiny_config(work_dir=str(tmp_path / f"bf16-{floor}"), scan=scan))
        done = run_scan(cfg, progress=False)
        assert done["agreement"]["rescanned_fp32"] == expected
        table = load_scan(cfg.work_dir / "scan", _scan_hash(cfg))
        assert not (cfg.work_dir / "scan" / "fp32").exists()
        for layer in ("conv1", "conv2"):
            same = np.array_equal(table.mean[layer], ref.mean[layer])
            assert same == (layer in expected)
            if expected:
                np.testing.assert_array_equal(table.max[layer], ref.max[layer])
