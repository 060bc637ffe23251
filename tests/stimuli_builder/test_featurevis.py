"""Batched renderer: faithful to lucent's pieces, equal to per-unit rendering, moves objectives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL

from stimuli_builder.config import RenderConfig
from stimuli_builder.featurevis import (
    BatchedObjective,
    FFTImage,
    PaperTransforms,
    RenderTarget,
    diversity_similarity,
    render_batch,
    render_targets,
)
from stimuli_builder.nets import capture_outputs, count_forward_hooks, forward_until, load_model

CPU = torch.device("cpu")


def _cfg(**kw: object) -> RenderConfig:
    base: dict[str, object] = {
        "n_images": 3,
        "canvas_px": 32,
        "keep_px": 28,
        "steps": 6,
        "jitter1_px": 4,
        "jitter2_px": 2,
    }
    base.update(kw)
    return RenderConfig(**base)  # type: ignore[arg-type]


def test_fft_image_equals_lucent_param_image() -> None:
    from lucent.optvis import param

    torch.manual_seed(0)
    params, image_f = param.image(32, batch=4, fft=True, decorrelate=True)
    ours = FFTImage(params[0].detach().clone(), 32)
    torch.testing.assert_close(ours(), image_f().detach())


def test_transforms_equal_lucents_with_the_same_seed() -> None:
    from lucent.optvis import transform

    cfg = _cfg()
    x = torch.rand(2, 3, 32, 32)
    for seed in range(5):
        np.random.seed(seed)
        ref = transform.compose(
            [
                transform.jitter(cfg.jitter1_px),
                transform.random_scale(cfg.scales),
                transform.random_rotate(cfg.angles_deg),
                transform.jitter(cfg.jitter2_px),
            ]
        )(x)
        ours = PaperTransforms(cfg, np.random.RandomState(seed))(x)
        torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("shape", [(4, 5, 6, 6), (4, 40, 2, 2)])
def test_diversity_equals_lucents_on_both_routes(shape: tuple[int, int, int, int]) -> None:
    from lucent.optvis import objectives

    acts = torch.randn(*shape, dtype=torch.float64)
    ref = -objectives.diversity("L")(lambda _name: acts)
    ours = diversity_similarity(acts[None])
    torch.testing.assert_close(ours[0], ref)


def test_batched_objective_and_gradient_equal_per_unit_rendering() -> None:
    net = load_model(TINY_MODEL, "random", CPU, seed=0)
    targets = [
        RenderTarget("conv1:2", "conv1", 2, 1),
        RenderTarget("conv2:5", "conv2", 5, -1),
        RenderTarget("conv2:1", "conv2", 1, 1),
    ]
    n, weight = 3, 100.0
    torch.manual_seed(0)
    images = torch.rand(len(targets) * n, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    net.model.double()
    objective = BatchedObjective(net, targets, n, weight)
    with capture_outputs(net.model, objective.modules) as store:
        forward_until(net.model, images, store)
        loss, _rows = objective(store)
    (grad_batched,) = torch.autograd.grad(loss, images)

    from lucent.optvis import objectives

    total = torch.zeros((), dtype=torch.float64)
    for g, t in enumerate(targets):
        x = images.detach()[g * n : (g + 1) * n].clone().requires_grad_(True)
        feats = {}
        with capture_outputs(net.model, [t.layer]) as store:
            forward_until(net.model, x, store)
            feats = dict(store)
        chan = objectives.channel(t.layer, t.channel)
        obj = (chan if t.sign > 0 else -chan) - weight * objectives.diversity(t.layer)
        per_unit_loss = obj(lambda name, f=feats: f[name])
        (grad_single,) = torch.autograd.grad(per_unit_loss, x)
        torch.testing.assert_close(grad_batched[g * n : (g + 1) * n], grad_single)
        total = total + per_unit_loss.detach()
    torch.testing.assert_close(loss.detach(), total)
    assert count_forward_hooks(net.model) == 0


def test_render_moves_objective_up_for_max_and_down_for_min_and_is_deterministic() -> None:
    net = load_model(TINY_MODEL, "random", CPU, seed=0)
    targets = [RenderTarget("conv2:5", "conv2", 5, 1), RenderTarget("conv2:5", "conv2", 5, -1)]
    # diversity off: with weight 100 the similarity term dominates a 40-step run
    start = render_batch(net, targets, _cfg(steps=1, lr=1e-9, diversity=0.0), seed=1)
    end = render_batch(net, targets, _cfg(steps=40, diversity=0.0), seed=1)
    again = render_batch(net, targets, _cfg(steps=40, diversity=0.0), seed=1)
    for s, e in zip(start, end, strict=True):
        # objective = sign * channel mean: rises for both directions
        assert e.objectives.mean() > s.objectives.mean() + 1e-3
    # channel means: max images above min images (the min objective is the negated mean)
    assert end[0].objectives.mean() > -end[1].objectives.mean()
    for e, a in zip(end, again, strict=True):
        np.testing.assert_array_equal(e.images, a.images)
        np.testing.assert_array_equal(e.objectives, a.objectives)
    assert list(end[0].objectives) == sorted(end[0].objectives, reverse=True)
    assert end[0].images.shape == (3, 3, 28, 28)
    assert count_forward_hooks(net.model) == 0


def test_a_unit_renders_the_same_alone_and_in_a_batch() -> None:
    net = load_model(TINY_MODEL, "random", CPU, seed=0)
    a = RenderTarget("conv2:5", "conv2", 5, 1)
    others = [RenderTarget("conv1:1", "conv1", 1, -1), RenderTarget("conv2:3", "conv2", 3, 1)]
    alone = render_batch(net, [a], _cfg(), seed=4)[0]
    batched = render_batch(net, [*others, a], _cfg(), seed=4)[2]
    np.testing.assert_allclose(alone.images, batched.images, atol=1e-5)
    np.testing.assert_allclose(alone.objectives, batched.objectives, rtol=1e-4, atol=1e-5)


def test_render_targets_splits_into_batches_and_keeps_order() -> None:
    net = load_model(TINY_MODEL, "random", CPU, seed=0)
    targets = [RenderTarget(f"conv2:{c}", "conv2", c, s) for c in range(3) for s in (1, -1)]
    results, stats = render_targets(
        net, targets, _cfg(steps=2, groups_per_batch=4), seed=0, progress=False
    )
    assert [r.target for r in results] == targets
    assert stats["groups_per_batch"] == 3
    assert stats["image_steps_per_s"] > 0


def test_hooks_are_removed_when_rendering_fails() -> None:
    net = load_model(TINY_MODEL, "random", CPU, seed=0)
    with pytest.raises(IndexError):
        render_batch(net, [RenderTarget("conv2:99", "conv2", 99, 1)], _cfg(steps=1), seed=0)
    assert count_forward_hooks(net.model) == 0


def test_early_stopping_stops_before_the_step_budget() -> None:
    net = load_model(TINY_MODEL, "random", CPU, seed=0)
    cfg = _cfg(steps=400, early_stop=True, early_stop_every=10, early_stop_rel_tol=10.0)
    res = render_batch(net, [RenderTarget("conv2:5", "conv2", 5, 1)], cfg, seed=0)
    assert res[0].steps == 20
