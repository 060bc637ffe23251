"""Typer command line: `psychvis` (database, stimuli, experiments, sessions, export, analysis)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings, get_settings
from app.db import make_engine, make_sessionmaker
from app.errors import AppError, NotFound
from app.log import configure_logging

app = typer.Typer(
    help="psychvis: run 2-AFC feature-visualization experiments.", no_args_is_help=True
)
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

logger = logging.getLogger(__name__)
_options = {"verbose": False}


@app.callback()
def main(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Log at INFO, libraries included (as PSYCHVIS_LOG_LEVEL does)."
        ),
    ] = False,
) -> None:
    """psychvis: run 2-AFC feature-visualization experiments."""
    _options["verbose"] = verbose


def _settings() -> Settings:
    settings = get_settings()
    # A command's few lines of output must not drown in Alembic's and the app's INFO logs:
    # commands log warnings only unless asked (--verbose, or PSYCHVIS_LOG_LEVEL set).
    if _options["verbose"]:
        level = "INFO" if "log_level" not in settings.model_fields_set else settings.log_level
    elif "log_level" in settings.model_fields_set:
        level = settings.log_level
    else:
        level = "WARNING"
    configure_logging(level, settings.log_json)
    return settings


def _where(settings: Settings) -> str:
    """The instance's data folder and database, for commands that set an instance up."""
    from sqlalchemy.engine import make_url

    database = make_url(settings.database_url).render_as_string(hide_password=True)
    return f"data folder: {settings.home}\ndatabase:    {database}"


def _progress() -> Any:
    """A progress display on standard error (shown only when that is a terminal)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


class _Db:
    """An engine and session for one CLI command; errors of the app become clean exits."""

    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings.database_url, pool_size=2)
        self.session: Session = make_sessionmaker(self.engine)()

    def __enter__(self) -> Session:
        return self.session

    def __exit__(self, exc_type: object, exc: object, tb: object) -> Literal[False]:
        self.session.close()
        self.engine.dispose()
        if isinstance(exc, AppError):
            _fail(exc.detail)
        return False


def _db(require_current: bool = True) -> _Db:
    settings = _settings()
    db = _Db(settings)
    if require_current:
        from app.migrate import assert_schema_current

        try:
            assert_schema_current(db.engine)
        except AppError as exc:
            db.engine.dispose()
            _fail(exc.detail)
    return db


def _link(settings: Settings, link_code: str, platform: str = "lab") -> str:
    from app.services.experiments import platform_link

    return platform_link(settings.base_url, link_code, platform)


# --- db -----------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the database schema up to REVISION (default: the newest)."""
    from app.migrate import upgrade

    settings = _settings()
    engine = make_engine(settings.database_url, pool_size=1)
    upgrade(engine, revision)
    engine.dispose()
    typer.echo(_where(settings))
    typer.echo(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Migrate the database schema down to REVISION (`base` removes every table)."""
    from app.migrate import downgrade

    engine = make_engine(_settings().database_url, pool_size=1)
    downgrade(engine, revision)
    engine.dispose()
    typer.echo(f"database at {revision}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database and the newest one."""
    from app.migrate import current_revision, head_revision

    engine = make_engine(_settings().database_url, pool_size=1)
    typer.echo(f"current: {current_revision(engine)}\nhead:    {head_revision()}")
    engine.dispose()


# --- stimuli ------------------------------------------------------------------------------------


@stimuli_app.command("import")
def stimuli_import(
    paths: Annotated[
        list[Path], typer.Argument(help="Folders or .zip files; several make one set.")
    ],
    name: Annotated[
        str | None, typer.Option(help="Name in the app (default: the set's id).")
    ] = None,
    reference_type: Annotated[
        str | None,
        typer.Option(
            help="natural|synthetic: the references of IMI task folders whose index.json "
            "doesn't say."
        ),
    ] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(
            help="practice|main|catch|intuitiveness for the units of each folder, in the order "
            "of the folders (given once: for every folder)."
        ),
    ] = None,
    roles: Annotated[
        Path | None,
        typer.Option(help="JSON file {unit id or label: role or [roles]}, applied last."),
    ] = None,
    imi_numbering: Annotated[
        str, typer.Option(help="auto|old|new: reference numbering of IMI task folders.")
    ] = "auto",
) -> None:
    """Validate and import a stimulus set (v1, IMI task folder, IMI unit folders, paper tree)."""
    import json

    from app.services.blobs import BlobStore
    from app.services.stimuli import import_stimulus_sources
    from app.stimulus_sources import REFERENCE_TYPES, ImportOptions, format_report

    if reference_type is not None and reference_type not in REFERENCE_TYPES:
        _fail(f"--reference-type must be natural or synthetic, not {reference_type!r}")
    if imi_numbering not in ("auto", "old", "new"):
        _fail(f"--imi-numbering must be auto, old or new, not {imi_numbering!r}")
    per_folder = list(role or [])
    if len(per_folder) not in (0, 1, len(paths)):
        _fail(f"give --role once or once per folder ({len(paths)}), not {len(per_folder)} times")
    if len(per_folder) == 1:
        per_folder = per_folder * len(paths)
    role_map = None
    if roles is not None:
        try:
            role_map = json.loads(roles.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            _fail(f"cannot read {roles}: {exc}")
        if not isinstance(role_map, dict):
            _fail(f"{roles} must hold a JSON object")
    sources = [
        (
            path,
            ImportOptions(
                reference_type=reference_type,  # type: ignore[arg-type]
                role=per_folder[i] if per_folder else None,
                numbering=imi_numbering,  # type: ignore[arg-type]
            ),
        )
        for i, path in enumerate(paths)
    ]
    settings = _settings()
    with _db() as session:
        imported = import_stimulus_sources(
            session,
            sources,
            BlobStore(settings.stimuli_dir / "blobs"),
            set_id=name,
            role_map=role_map,
            max_total_bytes=settings.max_import_bytes,
        )
        session.commit()
        typer.echo(
            f"imported {imported.slug} ({imported.source_format}): "
            f"{len(imported.manifest['units'])} units, {imported.image_count} images"
        )
        from app.stimuli import StimulusManifest

        report = format_report(
            StimulusManifest.model_validate(imported.manifest),
            imported.manifest["provenance"].get("skipped", []),
        )
        typer.echo("\n".join(report))


@stimuli_app.command("sample")
def stimuli_sample(
    directory: Annotated[Path, typer.Argument(help="New (or empty) folder to write the set to.")],
    preset: Annotated[
        list[str] | None,
        typer.Option(help="Design preset the set must satisfy (repeatable; default: all)."),
    ] = None,
    size: Annotated[int, typer.Option(min=16, max=1024, help="Image size in pixels.")] = 64,
    set_id: Annotated[str, typer.Option("--id", help="The set's id.")] = "psychvis-sample",
) -> None:
    """Write a sample stimulus set (drawn gratings, not real stimuli) for the design presets."""
    from app.sample_set import sample_image_count, write_sample_set

    _settings()
    try:
        total = sample_image_count(preset)
        with _progress() as progress:
            task = progress.add_task("drawing sample images", total=total)
            write_sample_set(
                directory,
                preset,
                size=size,
                set_id=set_id,
                on_image=lambda: progress.advance(task),
            )
    except FileExistsError as exc:
        _fail(str(exc))
    except AppError as exc:
        _fail(exc.detail)
    typer.echo(
        f"wrote sample set {set_id} to {directory} ({total} images, {size} px; drawn gratings "
        f"for trying designs, NOT a real study's stimuli)"
    )


@stimuli_app.command("list")
def stimuli_list() -> None:
    """List imported stimulus sets."""
    from app.models import StimulusSet

    with _db() as session:
        for s in session.scalars(select(StimulusSet).order_by(StimulusSet.id)):
            typer.echo(
                f"{s.slug}\t{s.source_format}\t{len(s.manifest['units'])} units\t{s.image_count} images"
            )


# --- experiments --------------------------------------------------------------------------------


@experiments_app.command("create")
def experiments_create(
    name: str,
    stimuli: Annotated[str, typer.Option(help="Imported stimulus set name.")],
    design: Annotated[str, typer.Option(help="Preset name or design TOML file.")],
    title: Annotated[str | None, typer.Option()] = None,
    owner: Annotated[
        str | None, typer.Option(help="Owner's account email (default: none, admins only).")
    ] = None,
) -> None:
    """Create an experiment from a design and a stimulus set."""
    from app.services.auth import get_user_by_email
    from app.services.blobs import BlobStore
    from app.services.experiments import create_experiment
    from app.services.stimuli import get_stimulus_set

    with _db() as session:
        stimulus_set = get_stimulus_set(session, stimuli)
        owner_id = get_user_by_email(session, owner).id if owner else None
        experiment = create_experiment(
            session,
            slug=name,
            stimulus_set=stimulus_set,
            design_source=design,
            title=title,
            owner_id=owner_id,
            blobs=BlobStore(_settings().stimuli_dir / "blobs"),
        )
        session.commit()
        typer.echo(f"created experiment {experiment.slug} ({experiment.design_name})")


@experiments_app.command("list")
def experiments_list() -> None:
    """List experiments with their participant counts."""
    from app.models import Experiment, Participant

    with _db() as session:
        counts = dict(
            session.execute(
                select(Participant.experiment_id, func.count()).group_by(Participant.experiment_id)
            ).all()
        )
        for e in session.scalars(select(Experiment).order_by(Experiment.id)):
            typer.echo(f"{e.slug}\t{e.design_name}\t{counts.get(e.id, 0)} participants")


@experiments_app.command("preview")
def experiments_preview(
    design: Annotated[str, typer.Argument(help="Preset name or design TOML file.")],
    participant: Annotated[int, typer.Option(min=1, help="Participant number (1-based).")] = 1,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    stimulus_set: Annotated[
        Path | None, typer.Option(help="Stimulus set folder; default: units from the design.")
    ] = None,
    arm: Annotated[str | None, typer.Option(help="Arm (default: as balanced assignment).")] = None,
) -> None:
    """Print participant N's schedule, to check a design before launch."""
    from app import designs
    from app.stimuli import catalog_from_manifest, load_set

    if fmt not in ("table", "json"):
        _fail("--format must be table or json")
    try:
        catalog = None
        if stimulus_set is not None:
            catalog = catalog_from_manifest(load_set(stimulus_set).manifest)
        loaded = designs.load_design(design, catalog)
        chosen = arm if arm is not None else designs.expected_arm(loaded, participant)
        schedule = designs.generate_schedule(loaded, catalog, participant, arm=chosen)
    except AppError as exc:
        _fail(exc.detail)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(designs.render_preview(schedule, "json" if fmt == "json" else "table", catalog))


# --- sessions -----------------------------------------------------------------------------------


@sessions_app.command("launch")
def sessions_launch(
    experiment: str,
    platform: Annotated[str, typer.Option(help="prolific | mturk | lab")] = "lab",
    completion_code: Annotated[
        str | None, typer.Option(help="Completion code (Prolific's).")
    ] = None,
    failed_checks_code: Annotated[
        str | None,
        typer.Option(help="Code for participants the design's exclusion criteria excluded."),
    ] = None,
    no_consent_code: Annotated[
        str | None, typer.Option(help="Code for participants who declined consent.")
    ] = None,
    screen_too_small_code: Annotated[
        str | None,
        typer.Option(help="Code for visitors whose screen cannot show the task (not enrolled)."),
    ] = None,
    max_participants: Annotated[int | None, typer.Option(min=1)] = None,
    mturk_sandbox: Annotated[bool, typer.Option()] = False,
    label: str = "",
) -> None:
    """Open a participant link for EXPERIMENT and print it."""
    from app.services.experiments import PROLIFIC_COMPLETE_URL, get_experiment, launch_session

    settings = _settings()
    if platform not in ("prolific", "mturk", "lab"):
        _fail(f"unknown platform {platform!r} (prolific, mturk or lab)")
    outcomes: dict[str, dict[str, str | None]] = {}
    for outcome, code in (
        ("failed_checks", failed_checks_code),
        ("no_consent", no_consent_code),
        ("screen_too_small", screen_too_small_code),
    ):
        if code:
            url = PROLIFIC_COMPLETE_URL.format(code=code) if platform == "prolific" else None
            outcomes[outcome] = {"code": code, "url": url}
    with _db() as session:
        launched = launch_session(
            session,
            get_experiment(session, experiment),
            platform=platform,  # type: ignore[arg-type]
            completion_code=completion_code,
            outcomes=outcomes,
            max_participants=max_participants,
            mturk_sandbox=mturk_sandbox,
            label=label,
        )
        session.commit()
        typer.echo(_link(settings, launched.link_code, platform))
    if platform == "prolific":
        typer.echo(
            "Paste this whole URL (with its {{%...%}} placeholders) as the study URL in Prolific.",
            err=True,
        )
    elif platform == "mturk":
        typer.echo(
            "Use this URL in the HIT's ExternalQuestion; MTurk appends workerId and assignmentId.",
            err=True,
        )


@sessions_app.command("list")
def sessions_list() -> None:
    """List launched sessions with their links."""
    from app.models import ExperimentSession

    settings = _settings()
    with _db() as session:
        for s in session.scalars(select(ExperimentSession).order_by(ExperimentSession.id)):
            typer.echo(
                f"{s.experiment.slug}\t{s.platform}\t{s.status}\t{_link(settings, s.link_code, s.platform)}"
            )


def _set_status(link_code: str, status: str) -> None:
    from app.services.experiments import get_session_by_link, set_session_status

    with _db() as session:
        set_session_status(get_session_by_link(session, link_code), status)  # type: ignore[arg-type]
        session.commit()
        typer.echo(f"session {link_code} {status}")


@sessions_app.command("pause")
def sessions_pause(link_code: str) -> None:
    """Pause a session: new and running participants are told to come back later."""
    _set_status(link_code, "paused")


@sessions_app.command("resume")
def sessions_resume(link_code: str) -> None:
    """Reopen a paused session."""
    _set_status(link_code, "open")


@sessions_app.command("close")
def sessions_close(link_code: str) -> None:
    """Close a session for good."""
    _set_status(link_code, "closed")


# --- export -------------------------------------------------------------------------------------


ExportTable = Literal["responses", "participants", "events", "ratings", "json"]


def _export(
    table: ExportTable,
    experiment: str,
    out: Path | None,
    include_test: bool,
    platform_ids: str | None,
) -> None:
    """Stream one export to `out` (or standard output), chunk by chunk as the console does."""
    import sys

    from app.services import export
    from app.services.experiments import get_experiment

    settings = _settings()
    if platform_ids not in (None, "raw", "pseudonymised"):
        _fail(f"--platform-ids must be raw or pseudonymised, not {platform_ids!r}")
    with _db() as session:
        exp = get_experiment(session, experiment)
        chunks = export.iter_table_chunks(
            table,
            session,
            exp,
            pseudonym_key=settings.secret_key.get_secret_value().encode(),
            include_test=include_test,
            platform_id_mode=platform_ids,
        )
        if out is None:
            for chunk in chunks:
                sys.stdout.write(chunk)
            sys.stdout.flush()
        else:
            with out.open("w", encoding="utf-8", newline="") as fh:
                for chunk in chunks:
                    fh.write(chunk)
    typer.echo(f"exported {table} of {experiment}", err=True)


_OUT = Annotated[Path | None, typer.Option(help="Output file (default: standard output).")]
_INCLUDE_TEST = Annotated[bool, typer.Option(help="Include test-mode participants.")]
_PLATFORM_IDS = Annotated[
    str | None,
    typer.Option(
        help="raw or pseudonymised platform ids for this file (default: the experiment's setting)."
    ),
]


@export_app.command("responses")
def export_responses(
    experiment: str, out: _OUT = None, include_test: _INCLUDE_TEST = False
) -> None:
    """Write responses.csv (one row per answered trial; see the codebook in docs/analysis.md)."""
    _export("responses", experiment, out, include_test, None)


@export_app.command("participants")
def export_participants(
    experiment: str,
    out: _OUT = None,
    include_test: _INCLUDE_TEST = False,
    platform_ids: _PLATFORM_IDS = None,
) -> None:
    """Write participants.csv (one row per participant: status, times, exclusions, feedback)."""
    _export("participants", experiment, out, include_test, platform_ids)


@export_app.command("events")
def export_events(experiment: str, out: _OUT = None, include_test: _INCLUDE_TEST = False) -> None:
    """Write events.csv (one row per browser event: focus loss, fullscreen exits, resizes...)."""
    _export("events", experiment, out, include_test, None)


@export_app.command("ratings")
def export_ratings(experiment: str, out: _OUT = None, include_test: _INCLUDE_TEST = False) -> None:
    """Write ratings.csv (one row per intuitiveness rating)."""
    _export("ratings", experiment, out, include_test, None)


@export_app.command("json")
def export_json(
    experiment: str,
    out: _OUT = None,
    include_test: _INCLUDE_TEST = False,
    platform_ids: _PLATFORM_IDS = None,
) -> None:
    """Write everything as one JSON document with the codebook (as the console's download)."""
    _export("json", experiment, out, include_test, platform_ids)


# --- users --------------------------------------------------------------------------------------


@users_app.command("create")
def users_create(
    email: str,
    role: Annotated[str, typer.Option(help="experimenter or admin.")] = "experimenter",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a dashboard account (the password is asked twice, hidden; there is no default)."""
    from app.services.auth import create_user

    if role not in ("experimenter", "admin"):
        _fail("--role must be experimenter or admin")
    password = _read_password(password_stdin)
    with _db() as session:
        user = create_user(session, email, password, role)  # type: ignore[arg-type]
        session.commit()
        typer.echo(f"created {user.role} {user.email}")


@users_app.command("set-password")
def users_set_password(
    email: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Replace an account's password (ends its dashboard logins): the admin's reset."""
    from app.services import audit
    from app.services.auth import get_user_by_email, set_password

    password = _read_password(password_stdin)
    with _db() as session:
        user = get_user_by_email(session, email)
        revoked = set_password(session, user, password)
        audit.record(
            session,
            None,
            "user.set_password",
            target=f"user {user.id}",
            details={"logins_revoked": revoked, "via": "cli"},
        )
        session.commit()
        typer.echo(f"password changed for {user.email}; {revoked} dashboard login(s) ended")


def _read_password(from_stdin: bool) -> str:
    """A password from stdin (one line) or asked twice with hidden input; never a default."""
    import sys

    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@users_app.command("list")
def users_list() -> None:
    """List dashboard accounts."""
    from app.services.auth import list_users

    with _db() as session:
        for user in list_users(session):
            state = "active" if user.active else "inactive"
            typer.echo(f"{user.email}\t{user.role}\t{state}")


# --- demo and server ----------------------------------------------------------------------------

DEMO_EXPERIMENT = "demo"
DEMO_LINK = "demo"


def setup_demo(settings: Settings, progress: Any = None) -> str:
    """Idempotently create the demo: schema, stimulus set, experiment and an open lab link.

    `progress`: a rich Progress that shows drawing and importing the set (its first run).
    """
    from app.demo import DEMO_SET_ID, DEMO_UNITS, write_demo_set
    from app.migrate import upgrade
    from app.models import ExperimentSession, StimulusSet
    from app.services.blobs import BlobStore
    from app.services.experiments import create_experiment, get_experiment, launch_session
    from app.services.stimuli import get_stimulus_set, import_stimulus_set

    engine = make_engine(settings.database_url, pool_size=1)
    try:
        upgrade(engine)
        with make_sessionmaker(engine)() as session:
            if (
                session.scalar(select(StimulusSet.id).where(StimulusSet.slug == DEMO_SET_ID))
                is None
            ):
                drawing = importing = None
                if progress is not None:
                    drawing = progress.add_task("drawing the demo images", total=DEMO_UNITS)
                source = write_demo_set(
                    settings.stimuli_dir / "demo-source",
                    on_unit=None if drawing is None else lambda: progress.advance(drawing),
                )
                if progress is not None:
                    importing = progress.add_task("importing them", total=None)
                import_stimulus_set(session, source, BlobStore(settings.stimuli_dir / "blobs"))
                session.commit()
                if importing is not None:
                    progress.update(importing, total=1, completed=1)
            try:
                experiment = get_experiment(session, DEMO_EXPERIMENT)
            except NotFound:
                experiment = create_experiment(
                    session,
                    slug=DEMO_EXPERIMENT,
                    stimulus_set=get_stimulus_set(session, DEMO_SET_ID),
                    design_source="demo",
                    title="psychvis demo",
                    blobs=BlobStore(settings.stimuli_dir / "blobs"),
                )
                session.commit()
            launched = session.scalar(
                select(ExperimentSession).where(ExperimentSession.link_code == DEMO_LINK)
            )
            if launched is None:
                launch_session(
                    session,
                    experiment,
                    platform="lab",
                    link_code=DEMO_LINK,
                    completion_code="DEMO-DONE",
                )
                session.commit()
    finally:
        engine.dispose()
    return DEMO_LINK


@app.command("demo")
def demo(
    host: str = "127.0.0.1",
    port: int = 8000,
    serve_: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the server afterwards.")
    ] = True,
) -> None:
    """Set up the demo experiment (idempotent), print its links and start the server."""
    os.environ.setdefault("PSYCHVIS_BASE_URL", f"http://{host}:{port}")
    get_settings.cache_clear()
    settings = _settings()
    typer.echo(_where(settings))
    try:
        with _progress() as progress:
            link = setup_demo(settings, progress)
    except AppError as exc:
        _fail(exc.detail)
    typer.echo(f"demo ready: participant link {_link(settings, link)}")
    typer.echo(
        f"Prolific-style:   {_link(settings, link)}?PROLIFIC_PID=demo-participant&STUDY_ID=s&SESSION_ID=x"
    )
    typer.echo(f"dashboard:        {settings.base_url.rstrip('/')}/dashboard")
    typer.echo(
        "                  (log in after `psychvis users create you@example.org --role admin`)"
    )
    typer.echo(f"API docs:         {settings.base_url.rstrip('/')}/api/docs")
    if serve_:
        serve(host=host, port=port, workers=1)


@app.command("serve")
def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the web server (uvicorn); refuses to start on an out-of-date schema."""
    import uvicorn

    settings = _settings()
    from app.db import autovacuum_warning
    from app.migrate import assert_schema_current

    engine = make_engine(settings.database_url, pool_size=1)
    try:
        assert_schema_current(engine)
        warning = autovacuum_warning(engine)
        if warning:
            logger.warning(warning)
            typer.echo(f"warning: {warning}", err=True)
    except AppError as exc:
        _fail(exc.detail)
    finally:
        engine.dispose()

    uvicorn.run(
        "app.asgi:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
    )


@app.command("analyze")
def analyze(
    path: Annotated[Path, typer.Argument(help="responses.csv in the export format.")],
    by: Annotated[
        str, typer.Option(help="Grouping columns, comma-separated ('' = one overall row).")
    ] = "condition",
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
    plots: Annotated[
        Path | None, typer.Option(help="Folder for the figures (PNG and SVG).")
    ] = None,
    include_excluded: Annotated[
        bool, typer.Option(help="Keep participants marked excluded.")
    ] = False,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples (per-unit CI).")] = 10_000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    strict: Annotated[
        bool,
        typer.Option(
            help="Refuse the file for any missing column or invalid value (default: invalid "
            "values the analysis does not need, and invalid RTs, become missing with a warning)."
        ),
    ] = False,
) -> None:
    """Accuracy, RT, confidence and tests of exported responses (docs/analysis.md)."""
    import warnings

    from app.analysis import AnalysisInputError, AnalysisInputWarning, analyze_file, parse_by

    configure_logging("WARNING")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AnalysisInputWarning)
        try:
            text = analyze_file(
                path,
                by=parse_by(by),
                fmt=fmt,
                plots_dir=plots,
                include_excluded=include_excluded,
                n_boot=n_boot,
                seed=seed,
                strict=strict,
            )
        except AnalysisInputError as exc:
            _fail(str(exc))
    for warning in caught:
        if issubclass(warning.category, AnalysisInputWarning):
            typer.secho(f"warning: {warning.message}", fg=typer.colors.YELLOW, err=True)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    typer.echo(text, nl=False)
