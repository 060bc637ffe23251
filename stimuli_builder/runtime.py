"""Runtime helpers: seeding, device choice, library versions and git commit for provenance."""

from __future__ import annotations

import logging
import random
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from stimuli_builder.errors import ConfigError

logger = logging.getLogger(__name__)

PROVENANCE_PACKAGES = (
    "torch",
    "torchvision",
    "torch-lucent",
    "kornia",
    "numpy",
    "pillow",
    "pydantic",
    "psychvis",
)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def pick_device(requested: str) -> torch.device:
    """Resolve ``"auto"`` to CUDA when present, else CPU; check an explicit request is usable.

    Raises:
        ConfigError: CUDA (or MPS) requested but not available.
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(requested)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {requested!r} requested but CUDA is not available; use cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' requested but MPS is not available; use cpu")
    return dev


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that determine the output."""
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in PROVENANCE_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(path: Path | None = None) -> str | None:
    """The git commit of the checkout holding this package (suffix ``-dirty`` if modified)."""
    where = path or Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "stimuli_builder"],
            cwd=where.parent if where.name == "stimuli_builder" else where,
            capture_output=True,
            text=True,
            timeout=10,
        )
        suffix = "-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else ""
        return head.stdout.strip() + suffix
    except (OSError, subprocess.SubprocessError):
        return None


def free_device_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA device (None for CPU)."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def configure_logging(level: int = logging.INFO) -> None:
    """Route builder logs and Python warnings (torch, lucent, kornia) to stderr. CLI only."""
    root = logging.getLogger()
    if not any(getattr(h, "_stimuli_builder", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._stimuli_builder = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
