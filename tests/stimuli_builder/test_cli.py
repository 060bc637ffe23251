"""CLI and pipeline: tiny end-to-end builds, determinism, step order, messages for bad input."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_MODEL
from typer.testing import CliRunner

from stimuli_builder.cli import app
from stimuli_builder.config import build_config
from stimuli_builder.manifest import StimulusManifest
from stimuli_builder.pipeline import run_build, run_select, run_write
from stimuli_builder.write import manifest_digest, sha256_file

runner = CliRunner()


def _flags(root: Path, tmp: Path, *extra: str) -> list[str]:
    return [
        "--data",
        str(root),
        "--work-dir",
        str(tmp / "work"),
        "--out",
        str(tmp / "out"),
        "--model",
        TINY_MODEL,
        "--random-weights",
        "--device",
        "cpu",
        "--steps",
        "4",
        "--batches",
        "4",
        "--k",
        "3",
        "--images",
        "3",
        "--canvas",
        "32",
        "--created-at",
        "2026-01-01T00:00:00Z",
        "--id",
        "cli-tiny",
        "--set",
        "scan.resize_px=40",
        "--set",
        "scan.crop_px=32",
        "--set",
        "scan.batch_size=16",
        "--set",
        "render.jitter1_px=4",
        "--set",
        "render.jitter2_px=2",
        "-q",
        *extra,
    ]


def _config_file(tmp: Path) -> Path:
    path = tmp / "build.toml"
    path.write_text(
        '[[units]]\nlayer = "conv1"\nchannel = 1\n\n'
        '[[units]]\nlayer = "conv2"\nchannel = 7\nroles = ["practice", "catch"]\n'
    )
    return path


def test_cli_build_writes_a_valid_set_quickly(image_folder: Path, tmp_path: Path) -> None:
    t0 = time.perf_counter()
    result = runner.invoke(
        app, ["build", str(_config_file(tmp_path)), *_flags(image_folder, tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - t0 < 60
    data = json.loads((tmp_path / "out" / "manifest.json").read_text())
    manifest = StimulusManifest.model_validate(data)
    assert manifest.id == "cli-tiny" and manifest.created_at == "2026-01-01T00:00:00Z"
    assert [u.id for u in manifest.units] == ["conv1:1", "conv2:7"]
    unit = manifest.units[1]
    assert unit.roles == ["practice", "catch"] and unit.branch is None
    assert [b.batch for b in unit.natural.batches] == [0, 1, 2, 3]  # type: ignore[union-attr]
    assert len(unit.synthetic.max_references) == 3  # type: ignore[union-attr]
    objs = [s.objective for s in unit.synthetic.max_references]  # type: ignore[union-attr]
    assert objs == sorted(objs, reverse=True)
    for rel, entry in manifest.files.items():
        assert sha256_file(tmp_path / "out" / rel) == entry.sha256
    prov = manifest.provenance
    assert prov["weights_id"] == "random(seed=0)"
    assert prov["dataset"]["n_images"] == 60 and prov["dataset"]["n_skipped"] == 0
    assert prov["config"]["render"]["steps"] == 4
    assert {"torch", "torch-lucent", "numpy"} <= set(prov["packages"])
    assert "git_commit" in prov


def test_each_step_runs_alone_in_order(image_folder: Path, tmp_path: Path) -> None:
    cfg_path = _config_file(tmp_path)
    flags = _flags(image_folder, tmp_path)
    early = runner.invoke(app, ["select", str(cfg_path), *flags])
    assert early.exit_code == 1 and "run `stimuli-builder scan` first" in early.output
    for step in ("scan", "select", "render", "write"):
        res = runner.invoke(app, [step, str(cfg_path), *flags])
        assert res.exit_code == 0, (step, res.output)
    assert (tmp_path / "out" / "manifest.json").exists()


def test_same_seed_gives_byte_identical_sets(
    tiny_config: Callable[..., Any], tmp_path: Path
) -> None:
    cfg = build_config(tiny_config())
    first = run_build(cfg, progress=False)
    files_first = {rel: (tmp_path / "out" / rel).read_bytes() for rel in first["files"]}
    text_first = (tmp_path / "out" / "manifest.json").read_bytes()
    second = run_build(cfg, force=True, progress=False)
    assert (tmp_path / "out" / "manifest.json").read_bytes() == text_first
    assert {rel: (tmp_path / "out" / rel).read_bytes() for rel in second["files"]} == files_first
    other = run_build(build_config(tiny_config(seed=4)), force=True, progress=False)
    assert manifest_digest(other) != manifest_digest(first)


def test_write_refuses_a_selection_from_another_config(tiny_config: Callable[..., Any]) -> None:
    cfg = build_config(tiny_config(render={"enabled": False}))
    run_build(cfg, progress=False)
    changed = build_config(tiny_config(render={"enabled": False}, select={"k": 2, "batches": 4}))
    from stimuli_builder.errors import StepOrderError

    with pytest.raises(StepOrderError, match="another configuration"):
        run_write(changed, force=True)
    run_select(changed)
    assert run_write(changed)["units"][0]["natural"]["batches"][0]["max_references"].__len__() == 1


def test_interrupted_write_leaves_no_half_set(
    tiny_config: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = build_config(tiny_config(render={"enabled": False}))
    run_build(cfg, progress=False)
    before = (tmp_path / "out" / "manifest.json").read_bytes()
    import stimuli_builder.write as write_mod

    def boom(*_a: Any, **_k: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(write_mod, "_save_png", boom)
    with pytest.raises(KeyboardInterrupt):
        run_write(cfg, force=True)
    assert (tmp_path / "out" / "manifest.json").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set", "scan.batch_sise=4"],
            "scan.batch_sise: unknown key (did you mean 'batch_size'?)",
        ),
        (["--set", "units=[{layer='conv9', channel=0}]"], "unknown layer 'conv9'"),
        (["--set", "units=[{layer='conv1', channel=8}]"], "channel 8 is out of range"),
        (["--device", "gpu"], "device must be"),
    ],
)
def test_bad_input_exits_1_with_a_message(
    image_folder: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(
        app,
        [
            "scan",
            *_flags(image_folder, tmp_path),
            "--set",
            "units=[{layer='conv1', channel=0}]",
            *args,
        ],
    )
    assert result.exit_code == 1
    assert message in result.output


def test_empty_folder_message(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["scan", str(_config_file(tmp_path)), *_flags(empty, tmp_path)])
    assert result.exit_code == 1 and "holds no images" in result.output


def test_presets_and_show_config_commands() -> None:
    res = runner.invoke(app, ["presets"])
    assert res.exit_code == 0 and "paper-exp1: 63 units" in res.output
    res = runner.invoke(
        app, ["show-config", "--preset", "paper-exp2", "--steps", "8", "--random-weights"]
    )
    cfg = json.loads(res.output)
    assert cfg["render"]["steps"] == 8 and cfg["model"]["weights"] == "random"


def test_every_image_has_the_set_size_even_with_a_small_render_canvas(
    tiny_config: Callable[..., Any], tmp_path: Path
) -> None:
    from PIL import Image

    cfg = build_config(tiny_config())  # renders keep 28 px, natural crops are 32 px
    manifest = run_build(cfg, progress=False)
    sizes = {Image.open(tmp_path / "out" / rel).size for rel in manifest["files"]}
    assert sizes == {(32, 32)} and manifest["image_size_px"] == 32
