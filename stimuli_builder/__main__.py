"""``python -m stimuli_builder``: the same CLI as the ``stimuli-builder`` command."""

from stimuli_builder.cli import app

app(prog_name="stimuli-builder")
