"""Builder models as a registry, load_model(name, weights, device) -> Net, and hooks.

Each :class:`ModelEntry` carries what the builder knows about a model: how to build it (lucent's
pretrained InceptionV1, torchvision weights, random weights), its input transform, its layer
naming and its branch map (which layers are concatenations of branch modules, and each branch's
name and channel count). ``inceptionv1`` is registered here; torchvision classification models
and ``package.module:factory`` names resolve to entries on demand. A layer that is not in the
branch map is a module name (``layer3.1``, ``features.10``) with channel = output channel.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import logging
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from stimuli_builder.errors import ModelError
from stimuli_builder.presets import BRANCH_MODULE_SUFFIX, BRANCHES, INCEPTION_BRANCH_SIZES

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

InputTransform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class BranchSpec:
    """One branch of a concatenated layer: its name, the module giving it, its channel count."""

    name: str
    module: str
    channels: int


@dataclass(frozen=True)
class ModelEntry:
    """Everything model-specific the builder needs.

    Attributes:
        name: the model name as configured.
        build: ``build(weights, seed) -> (module, weights_id)`` for ``weights`` in
            ``"pretrained"``/``"random"`` (a weights file is loaded into the ``"random"`` build).
        input_transform: maps RGB float [N, 3, H, W] in [0, 1] to the model's input.
        branches: layer name -> its branches in concatenation order (empty: no branch layers).
        prepare: called on the built module before it is moved to the device (fast layers).
    """

    name: str
    build: Callable[[str, int], tuple[nn.Module, str]]
    input_transform: InputTransform
    branches: Mapping[str, tuple[BranchSpec, ...]] = field(default_factory=dict)
    prepare: Callable[[nn.Module], None] | None = None

    def branch_of(self, layer: str, channel: int) -> str | None:
        """The branch holding global ``channel`` of ``layer``; None for unbranched layers or a
        channel past the end."""
        start = 0
        for branch in self.branches.get(layer, ()):
            if start <= channel < start + branch.channels:
                return branch.name
            start += branch.channels
        return None


_REGISTRY: dict[str, Callable[[], ModelEntry]] = {}


def register_model(
    name: str,
) -> Callable[[Callable[[], ModelEntry]], Callable[[], ModelEntry]]:
    """Decorator registering a zero-argument function that returns ``name``'s entry."""

    def decorate(fn: Callable[[], ModelEntry]) -> Callable[[], ModelEntry]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return decorate


def registered_models() -> list[str]:
    """Names registered with :func:`register_model` (torchvision names resolve on demand)."""
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    """The entry of a registered model, a ``package.module:factory`` or a torchvision model.

    Raises:
        ModelError: unknown name (with close matches).
    """
    if name in _REGISTRY:
        return _REGISTRY[name]()
    if ":" in name:
        return _factory_entry(name)
    return _torchvision_entry(name)


def branch_of(model: str, layer: str, channel: int) -> str | None:
    """The manifest's ``branch`` of a unit: from the model's branch map, None without one."""
    if model in _REGISTRY:
        return _REGISTRY[model]().branch_of(layer, channel)
    return None


def _inceptionv1_input(x: torch.Tensor) -> torch.Tensor:
    # lucid's inception5h graph takes RGB in [-117, 138] (lucent preprocess_inceptionv1).
    return x * 255.0 - 117.0


def _imagenet_input(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _build_inceptionv1(weights: str, seed: int) -> tuple[nn.Module, str]:
    from lucent.modelzoo.inceptionv1 import InceptionV1

    if weights == "pretrained":
        try:
            return InceptionV1(pretrained=True, progress=False), "lucent-pretrained"
        except (OSError, RuntimeError) as exc:
            raise ModelError(
                f"could not download lucent's InceptionV1 weights ({exc}); "
                "pass --weights FILE (inception5h.pth) or --random-weights"
            ) from None
    return InceptionV1(pretrained=False), f"random(seed={seed})"


@register_model("inceptionv1")
def inceptionv1() -> ModelEntry:
    """lucent's InceptionV1: mixed layers are pre-ReLU concatenations of four branch convs
    (docs/builder.md, docs/stimulus_set_v1.md), input x*255-117, fast LRN/RedirectedReLU."""
    branches = {
        layer: tuple(
            BranchSpec(b, f"{layer}_{BRANCH_MODULE_SUFFIX[b]}", size)
            for b, size in zip(BRANCHES, sizes, strict=True)
        )
        for layer, sizes in INCEPTION_BRANCH_SIZES.items()
    }
    return ModelEntry(
        "inceptionv1", _build_inceptionv1, _inceptionv1_input, branches, use_fast_layers
    )


def _factory_entry(name: str) -> ModelEntry:
    mod_name, _, attr = name.partition(":")
    try:
        factory = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"cannot import model factory {name!r}: {exc}") from None

    def build(weights: str, seed: int) -> tuple[nn.Module, str]:
        if weights == "pretrained":
            raise ModelError(f"model {name!r} has no pretrained weights; use random or a file")
        module: nn.Module = factory()
        return module, f"random(seed={seed})"

    return ModelEntry(name, build, _identity)


def _torchvision_entry(name: str) -> ModelEntry:
    import torchvision.models as tvm

    known = tvm.list_models(module=tvm)
    if name not in known:
        close = difflib.get_close_matches(name, known + registered_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelError(f"unknown model {name!r}{hint}")

    def build(weights: str, seed: int) -> tuple[nn.Module, str]:
        if weights == "pretrained":
            try:
                model: nn.Module = tvm.get_model(name, weights="DEFAULT")
            except (OSError, RuntimeError) as exc:
                raise ModelError(
                    f"could not download torchvision weights for {name}: {exc}"
                ) from None
            return model, f"torchvision:{tvm.get_model_weights(name).DEFAULT}"
        kwargs = (
            {"aux_logits": False, "init_weights": True}
            if name in ("googlenet", "inception_v3")
            else {}
        )
        return tvm.get_model(name, weights=None, **kwargs), f"random(seed={seed})"

    return ModelEntry(name, build, _imagenet_input)


@dataclass(frozen=True)
class LayerSpec:
    """A named layer: one or more modules whose outputs are concatenated along channels."""

    name: str
    modules: tuple[str, ...]
    branch_names: tuple[str | None, ...]


@dataclass
class Net:
    """A loaded network ready for scanning and rendering.

    Attributes:
        model: eval-mode module on ``device`` with ``requires_grad`` off for all parameters.
        name: model name as configured.
        weights_id: ``lucent-pretrained``, ``random(seed=S)``, ``sha256:<hex>`` or
            ``torchvision:<weights enum>``.
        input_transform_f: maps RGB float [N, 3, H, W] in [0, 1] to the model's input.
        entry: the model's registry entry (layer naming, branch map).
    """

    model: nn.Module
    name: str
    weights_id: str
    input_transform_f: InputTransform
    device: torch.device
    entry: ModelEntry
    _channels: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def layer_spec(self, layer: str) -> LayerSpec:
        """Resolve a layer name to the modules whose outputs form it.

        Raises:
            ModelError: no such layer (with close matches).
        """
        branches = self.entry.branches.get(layer)
        if branches:
            return LayerSpec(
                layer, tuple(b.module for b in branches), tuple(b.name for b in branches)
            )
        modules = dict(self.model.named_modules())
        if layer in modules and layer != "":
            return LayerSpec(layer, (layer,), (None,))
        candidates = list(self.entry.branches) + [n for n in modules if n]
        close = difflib.get_close_matches(layer, list(dict.fromkeys(candidates)), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelError(f"unknown layer {layer!r} for model {self.name!r}{hint}")

    def layer_channels(self, layer: str, probe_px: int = 224) -> tuple[int, ...]:
        """Channels per module of ``layer`` (probed with one forward pass, then cached)."""
        if layer not in self._channels:
            spec = self.layer_spec(layer)
            probe = torch.zeros(1, 3, probe_px, probe_px, device=self.device)
            with torch.inference_mode():
                outs = run_capture(self.model, spec.modules, self.input_transform_f(probe))
            self._channels[layer] = tuple(int(outs[m].shape[1]) for m in spec.modules)
        return self._channels[layer]

    def check_unit(self, layer: str, channel: int) -> str | None:
        """Validate ``(layer, channel)``; return its branch (None for unbranched layers).

        Raises:
            ModelError: unknown layer or channel out of range.
        """
        total = sum(self.layer_channels(layer))
        if not 0 <= channel < total:
            raise ModelError(
                f"channel {channel} is out of range for layer {layer!r} of {self.name} "
                f"(0..{total - 1})"
            )
        return self.entry.branch_of(layer, channel)


class _StopForward(Exception):
    """Raised by a hook once every needed output is captured, to skip the rest of the net."""


@contextmanager
def capture_outputs(
    model: nn.Module, module_names: Sequence[str], stop_early: bool = True
) -> Iterator[dict[str, torch.Tensor]]:
    """Register forward hooks on ``module_names``; always remove them on exit.

    Yields:
        A dict filled with ``module name -> output tensor`` on each forward pass. With
        ``stop_early``, the forward pass stops once all are captured: call the model through
        :func:`forward_until`.
    """
    modules = dict(model.named_modules())
    store: dict[str, torch.Tensor] = {}
    wanted = set(module_names)
    handles = []

    def make_hook(name: str) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def hook(_m: nn.Module, _inp: object, out: torch.Tensor) -> None:
            store[name] = out
            if stop_early and wanted.issubset(store):
                raise _StopForward

        return hook

    try:
        for name in module_names:
            handles.append(modules[name].register_forward_hook(make_hook(name)))
        yield store
    finally:
        for h in handles:
            h.remove()


def forward_until(model: nn.Module, x: torch.Tensor, store: dict[str, torch.Tensor]) -> None:
    """Run ``model(x)`` after clearing ``store``; a hook's early stop is not an error."""
    store.clear()
    try:
        model(x)
    except _StopForward:
        pass


def run_capture(
    model: nn.Module, module_names: Sequence[str], x: torch.Tensor
) -> dict[str, torch.Tensor]:
    """One forward pass returning the outputs of ``module_names`` (hooks removed afterwards)."""
    with capture_outputs(model, module_names) as store:
        forward_until(model, x, store)
        return dict(store)


def count_forward_hooks(model: nn.Module) -> int:
    """Number of forward hooks registered anywhere in ``model`` (0 after every builder call)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_state(model: nn.Module, path: Path) -> str:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ModelError(f"cannot load weights file {path}: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise ModelError(f"weights file {path} does not fit the model: {' '.join(first)}") from None
    return "sha256:" + file_sha256(path)


_BANDS: dict[tuple[int, int, torch.device, torch.dtype], torch.Tensor] = {}


def _band_matrix(c: int, size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The [c, c, 1, 1] window-mean weights of :func:`band_local_response_norm`, built once per
    (channels, size, device, dtype) instead of four small kernels and a cast every step."""
    key = (c, size, device, dtype)
    if key not in _BANDS:
        # a normal tensor even when first built inside a scan's inference_mode: renders use it
        # under autograd
        with torch.inference_mode(False):
            i = torch.arange(c, device=device)
            d = i[None, :] - i[:, None]
            band = ((d >= -(size // 2)) & (d <= (size - 1) // 2)).to(dtype) / size
            _BANDS[key] = band[:, :, None, None]
    return _BANDS[key]


def band_local_response_norm(
    x: torch.Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> torch.Tensor:
    """``F.local_response_norm`` for [N, C, H, W] as a 1x1 convolution with a band matrix.

    The same arithmetic (x / (k + alpha * mean of x² over the channel window) ** beta, window
    ``i - size//2 .. i + (size-1)//2``, zero outside), but the channel window sum runs as one
    matrix product on tensor cores instead of PyTorch's avg_pool3d, which dominates the forward
    and backward of InceptionV1's two LRN layers on a GPU.
    """
    c = x.shape[1]
    div = F.conv2d(x * x, _band_matrix(c, size, x.device, x.dtype))
    return x / (div * alpha + k).pow(beta)


class _FunctionalWithBandLRN:
    """``torch.nn.functional`` with ``local_response_norm`` replaced (for lucent's forward)."""

    local_response_norm = staticmethod(band_local_response_norm)

    def __getattr__(self, name: str) -> object:
        return getattr(F, name)


class _RedirectedReLU(torch.autograd.Function):
    """lucent's RedirectedReLU (ReLU forward; gradient x0.1 where the input is negative) without
    boolean-mask indexing, whose ``nonzero`` synchronised the GPU twice per layer and step."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return torch.where(x < 0, grad * 1e-1, grad)


def _fast_redirected_relu(self: nn.Module, tensor: torch.Tensor) -> torch.Tensor:
    return _RedirectedReLU.apply(tensor)  # type: ignore[no-any-return]


def use_fast_layers(model: nn.Module) -> None:
    """Make this lucent InceptionV1 instance run the same arithmetic faster on a GPU.

    - LRN: lucent's ``forward`` calls ``F.local_response_norm`` through its module's global
      ``F``; the instance gets a copy of that function whose globals see
      :func:`band_local_response_norm`.
    - RedirectedReLU layers: the same gradient rule without boolean-mask indexing.

    Other instances (lucent's own ``render_vis`` baseline in bench/builder) are untouched;
    :func:`use_lucent_layers` undoes it.
    """
    forward = type(model).forward
    namespace = {**forward.__globals__, "F": _FunctionalWithBandLRN()}
    fast = types.FunctionType(
        forward.__code__, namespace, forward.__name__, forward.__defaults__, forward.__closure__
    )
    model.forward = types.MethodType(fast, model)
    for module in model.modules():
        if type(module).__name__ == "RedirectedReluLayer":
            module.forward = types.MethodType(_fast_redirected_relu, module)


def use_lucent_layers(model: nn.Module) -> None:
    """Undo :func:`use_fast_layers`: lucent's own forward, LRN and RedirectedReLU (baselines)."""
    for module in model.modules():
        module.__dict__.pop("forward", None)


def load_model(name: str, weights: str, device: torch.device, seed: int = 0) -> Net:
    """Build a network in eval mode on ``device`` from its registry entry.

    Args:
        name: a registered model (``"inceptionv1"``), a torchvision classification model name
            (``"resnet50"``), or ``"package.module:factory"`` returning an ``nn.Module`` that
            takes RGB in [0, 1].
        weights: ``"pretrained"`` (downloads; needs the network), ``"random"`` (default init
            after seeding torch with ``seed``) or a path to a state dict file.
        device: where the model lives.
        seed: seed of the random initialisation.

    Returns:
        The loaded :class:`Net`.

    Raises:
        ModelError: unknown model, unreadable/mismatching weights, failed download.
    """
    torch.manual_seed(seed)
    entry = model_entry(name)
    model, weights_id = entry.build("pretrained" if weights == "pretrained" else "random", seed)
    if entry.prepare is not None:
        entry.prepare(model)
    if weights not in ("pretrained", "random"):
        path = Path(weights)
        if not path.is_file():
            raise ModelError(f"weights file {path} does not exist")
        weights_id = _load_state(model, path)
    model.eval().requires_grad_(False).to(device)
    logger.info("model loaded", extra={"model": name, "weights_id": weights_id})
    return Net(model, name, weights_id, entry.input_transform, device, entry)
