"""BuildConfig: the builder's whole configuration, loaded from TOML and overridden from the CLI.

No torch import: the config must load (and be validated) without the GPU stack.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stimuli_builder.errors import ConfigError
from stimuli_builder.presets import PRESETS

Role = Literal["main", "practice", "catch", "intuitiveness"]
SET_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,79}$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _main_role_only() -> list[Role]:
    return ["main"]


class UnitSpec(_Section):
    """One feature map: a channel of a layer (global index in InceptionV1's pre-ReLU concat)."""

    layer: str
    channel: int = Field(ge=0)
    roles: list[Role] = Field(default_factory=_main_role_only)
    hand_picked: bool = False
    label: str | None = None
    sets: list[str] = Field(default_factory=list)

    @property
    def id(self) -> str:
        """``"<layer>:<channel>"``, the unit id in the manifest."""
        return f"{self.layer}:{self.channel}"


class ModelConfig(_Section):
    """Which network and weights."""

    name: str = "inceptionv1"
    weights: str = "pretrained"
    """``"pretrained"``, ``"random"`` (seeded by the top-level seed) or a path to a state dict."""


class DataConfig(_Section):
    """The natural image folder (ImageNet val: flat or class sub-folders)."""

    root: Path | None = None
    max_images: int | None = Field(default=None, ge=1)
    """Use only the first N files of the sorted listing (tests, quick looks)."""


class ScanConfig(_Section):
    """Options of the activation scan."""

    batch_size: int = Field(default=256, ge=1)
    num_workers: int | None = Field(default=None, ge=0)
    """DataLoader workers; None = min(16, CPU count) on CUDA, 0 on CPU."""
    chunk_size: int = Field(default=4096, ge=1)
    """Images per resumable chunk (rounded up to a multiple of batch_size)."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool = True
    decoder: Literal["auto", "pil", "torch"] = "auto"
    """``pil``: decode+resize in workers; ``torch``: read bytes in workers, decode with
    torchvision.io (nvJPEG on CUDA) and resize on the device. ``auto`` = torch on CUDA, else pil."""
    draft: bool = True
    """Let PIL decode large JPEGs at 1/2, 1/4 or 1/8 scale (DCT domain) when the shorter side
    stays >= resize_px; a no-op for typical ImageNet val images (shorter side < 512)."""
    overlap: bool = True
    """Decode, resize and copy batch k+1 in a thread (on a second CUDA stream on a GPU) while
    batch k runs the model; False runs them in turn on the main thread. Same results."""
    prefetch_batches: int = Field(default=2, ge=1)
    """With ``overlap``: batches staged ahead of the model (device memory: one uint8 batch
    each)."""
    agreement_images: int = Field(default=1024, ge=0)
    """With precision != fp32: also scan this many images in fp32 and report ranking agreement."""
    agreement_floor: float = Field(default=0.99, ge=0, le=1.01)
    """With precision != fp32: layers whose mean Spearman agreement with fp32 falls below this
    are scanned again in fp32 (0 = never), so reduced precision only ranks where it agrees."""
    resize_px: int = Field(default=256, ge=1)
    crop_px: int = Field(default=224, ge=1)


class SelectConfig(_Section):
    """Natural exemplar binning (docs/protocol.md, Stimuli)."""

    k: int = Field(default=10, ge=2, le=10)
    """Images per side per batch: 1 query + k-1 references."""
    batches: int = Field(default=20, ge=1)
    """B: number of batches (batch 0 is reserved for practice and catch trials)."""


class RenderConfig(_Section):
    """Feature visualisation recipe (docs/protocol.md, Stimuli; docs/builder.md)."""

    enabled: bool = True
    n_images: int = Field(default=10, ge=1)
    canvas_px: int = Field(default=256, ge=32)
    keep_px: int = Field(default=224, ge=8)
    steps: int = Field(default=2560, ge=1)
    lr: float = Field(default=0.05, gt=0)
    diversity: float = Field(default=100.0, ge=0)
    decay_power: float = 1.0
    init_sd: float = Field(default=0.01, gt=0)
    jitter1_px: int = Field(default=16, ge=2)
    scales: list[float] = Field(default_factory=lambda: [1.0, 0.975, 1.025, 0.95, 1.05])
    angles_deg: list[float] = Field(default_factory=lambda: [float(a) for a in range(-5, 6)])
    jitter2_px: int = Field(default=8, ge=2)
    groups_per_batch: int = Field(default=0, ge=0)
    """(unit, direction) groups optimised together; 0 = choose from free GPU memory (CPU: 8)."""
    memory_fraction: float = Field(default=0.8, gt=0, le=1)
    precision: Literal["fp32", "bf16"] = "fp32"
    memory_format: Literal["auto", "channels_last", "contiguous"] = "auto"
    """Layout of the images, the network and its activations during a render; ``auto`` =
    channels_last on CUDA (tensor-core convolutions without layout conversions), contiguous
    (NCHW) on the CPU. Speed only: results agree to rounding (docs/builder.md)."""
    transform_precision: Literal["fp32", "model"] = "fp32"
    """``model``: run the transforms in the network's compute dtype (bf16 with
    ``precision = "bf16"``), so the network's input needs no cast."""
    gram_precision: Literal["fp32", "bf16"] = "fp32"
    """dtype of the diversity Gram products (bf16: tensor cores, fp32 accumulation and
    normalisation)."""
    compile: bool = False
    """torch.compile the image parameterisation and the diversity term (static shapes)."""
    early_stop: bool = False
    early_stop_every: int = Field(default=128, ge=1)
    early_stop_rel_tol: float = Field(default=1e-3, ge=0)


class BuildConfig(_Section):
    """The resolved configuration of one stimulus-set build.

    ``units`` = the preset's units (if ``preset`` is set) followed by explicit ``units``;
    duplicates are merged. The resolved config is written into the manifest's provenance.
    """

    id: str = Field(default="stimuli", pattern=SET_ID_PATTERN)
    title: str | None = None
    created_at: datetime | None = None
    """Fixed creation time (ISO 8601) for reproducible manifests; None = now."""
    seed: int = 0
    device: str = "auto"
    preset: str | None = None
    units: list[UnitSpec] = Field(default_factory=list)
    work_dir: Path = Path("build/work")
    out_dir: Path = Path("build/stimuli")
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    scan: ScanConfig = Field(default_factory=ScanConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is not None and value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}; known: {', '.join(sorted(PRESETS))}")
        return value

    @field_validator("device")
    @classmethod
    def _device_form(cls, value: str) -> str:
        if value not in ("auto", "cpu", "cuda", "mps") and not value.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {value!r}")
        return value

    def resolved_units(self) -> list[UnitSpec]:
        """Preset units followed by explicit units; duplicates merged (roles and sets united)."""
        raw: list[UnitSpec] = []
        if self.preset is not None:
            for pu in PRESETS[self.preset]():
                raw.append(
                    UnitSpec(
                        layer=pu.layer,
                        channel=pu.channel,
                        roles=list(pu.roles),  # type: ignore[arg-type]
                        hand_picked=pu.hand_picked,
                        sets=list(pu.sets),
                    )
                )
        raw.extend(self.units)
        merged: dict[str, UnitSpec] = {}
        for unit in raw:
            if unit.id in merged:
                old = merged[unit.id]
                merged[unit.id] = old.model_copy(
                    update={
                        "roles": list(dict.fromkeys(old.roles + unit.roles)),
                        "sets": list(dict.fromkeys(old.sets + unit.sets)),
                        "hand_picked": old.hand_picked or unit.hand_picked,
                        "label": old.label or unit.label,
                    }
                )
            else:
                merged[unit.id] = unit
        return list(merged.values())

    def layers(self) -> list[str]:
        """The layers the units need, in first-use order."""
        return list(dict.fromkeys(u.layer for u in self.resolved_units()))

    def created_at_utc(self) -> datetime:
        """``created_at`` as an aware UTC datetime (now if unset), to the second."""
        value = self.created_at or datetime.now(UTC)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(microsecond=0)

    def to_jsonable(self) -> dict[str, Any]:
        """The config as plain JSON types (paths as strings), for hashing and the manifest."""
        jsonable: dict[str, Any] = json.loads(self.model_dump_json())
        return jsonable


def stable_hash(obj: Any) -> str:
    """sha256 (hex, 16 chars) of the canonical JSON of ``obj``."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _suggest(loc: tuple[Any, ...]) -> str:
    """'did you mean' hint for an unknown key at ``loc``."""
    section: type[BaseModel] | None = BuildConfig
    for part in loc[:-1]:
        if section is None or not isinstance(part, str):
            return ""
        field = section.model_fields.get(part)
        ann = field.annotation if field else None
        section = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if part == "units":
            section = UnitSpec
    if section is None or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], list(section.model_fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _format_validation(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key{_suggest(tuple(e['loc']))}")
        else:
            lines.append(f"  {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``key.path=value`` (value in TOML syntax; bare words are strings).

    Raises:
        ConfigError: no ``=`` or an empty key.
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.path=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[tuple[list[str], Any]]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``(key path, value)`` set (sections created as needed).

    Raises:
        ConfigError: a key path runs through a non-table value.
    """
    out: dict[str, Any] = json.loads(json.dumps(data, default=str))
    for parts, value in overrides:
        node = out
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"cannot set {'.'.join(parts)}: {part} is not a table")
            node = nxt
        node[parts[-1]] = value
    return out


def build_config(data: dict[str, Any], source: str = "config") -> BuildConfig:
    """Validate a config dict.

    Raises:
        ConfigError: a message naming every bad key (unknown keys get a suggestion).
    """
    try:
        return BuildConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation(err, source)) from None


def load_config(
    path: Path | None, overrides: list[tuple[list[str], Any]] | None = None
) -> BuildConfig:
    """Load a TOML config (or start from defaults when ``path`` is None) and apply overrides.

    Relative ``work_dir``/``out_dir``/``data.root``/``model.weights`` paths in the file are
    resolved against the file's folder.

    Raises:
        ConfigError: unreadable file, TOML syntax error, or invalid keys/values.
    """
    data: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        base = Path(path).resolve().parent
        for keys in (("work_dir",), ("out_dir",), ("data", "root")):
            node: Any = data
            for k in keys[:-1]:
                node = node.get(k, {}) if isinstance(node, dict) else {}
            if isinstance(node, dict) and isinstance(node.get(keys[-1]), str):
                node[keys[-1]] = str((base / node[keys[-1]]).resolve())
        weights = (
            data.get("model", {}).get("weights") if isinstance(data.get("model"), dict) else None
        )
        if isinstance(weights, str) and weights not in ("pretrained", "random"):
            data["model"]["weights"] = str((base / weights).resolve())
    data = apply_overrides(data, overrides or [])
    return build_config(data, source)
