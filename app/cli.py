"""Typer command line: `psychvis` (database, stimuli, experiments, sessions, export, analysis)."""

from __future__ import annotations

import typer

app = typer.Typer(help="psychvis: run 2-AFC feature-visualization experiments.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
stimuli_app = typer.Typer(help="Stimulus sets.", no_args_is_help=True)
experiments_app = typer.Typer(help="Experiments and their designs.", no_args_is_help=True)
sessions_app = typer.Typer(help="Launched sessions (participant links).", no_args_is_help=True)
export_app = typer.Typer(help="CSV/JSON exports.", no_args_is_help=True)
users_app = typer.Typer(help="Experimenter accounts.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(stimuli_app, name="stimuli")
app.add_typer(experiments_app, name="experiments")
app.add_typer(sessions_app, name="sessions")
app.add_typer(export_app, name="export")
app.add_typer(users_app, name="users")
