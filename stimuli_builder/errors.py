"""Builder exceptions: each carries a message a user can act on (no torch import)."""

from __future__ import annotations


class BuildError(Exception):
    """Base class for errors the CLI reports as a one-line message and exit status 1."""


class ConfigError(BuildError):
    """The configuration (file or command-line override) is invalid."""


class DatasetError(BuildError):
    """The image folder is missing, empty or unreadable."""


class ModelError(BuildError):
    """Unknown model, layer or channel, or weights that cannot be loaded."""


class StepOrderError(BuildError):
    """A step needs an artefact from an earlier step that is missing or stale."""
