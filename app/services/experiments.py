"""Create experiments from designs, launch sessions (participant links), pause/resume/close."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import designs
from app.cache import LruCache
from app.errors import Conflict, DesignInvalid, InvalidInput, NotFound
from app.models import Experiment, ExperimentSession, StimulusSet
from app.schedule import Schedule
from app.services.blobs import BlobStore, served_name
from app.services.stimuli import catalog_of, image_hashes

logger = logging.getLogger(__name__)

Platform = Literal["prolific", "mturk", "lab"]
PROLIFIC_COMPLETE_URL = "https://app.prolific.com/submissions/complete?cc={code}"
PROLIFIC_URL_PARAMETERS = (
    "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
)
"""Prolific replaces each `{{%NAME%}}` with the participant's, study's and session's id."""
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
OUTCOMES = ("completed", "failed_checks", "no_consent", "screen_too_small")
"""How a participant's visit can end; each may send them on with a code and a URL."""
TEST_SESSION_LABEL = "test mode"
"""The label of the lab session that experimenters take part through in test mode."""
_DESIGNS: LruCache[tuple[int, str, str], designs.Design] = LruCache(maxsize=256)
_TRIAL_COUNTS: LruCache[tuple[int, str, str], int] = LruCache(maxsize=256)


def read_design_source(source: str) -> tuple[str, str]:
    """Return (name, TOML text) for a preset name or a design file path.

    Raises:
        DesignInvalid: neither a preset nor a readable file.
    """
    path = Path(source)
    if path.suffix == ".toml" and path.is_file():
        return path.stem, path.read_text(encoding="utf-8")
    text = designs.preset_text(source)
    return source, text


def cache_key(experiment: Experiment) -> tuple[int, str, str]:
    """Identifies an experiment's unchanging design across databases (ids alone are reused)."""
    return (experiment.id, experiment.slug, experiment.created_at.isoformat())


def design_of(experiment: Experiment) -> designs.Design:
    """The experiment's parsed design (cached: an experiment's design never changes)."""
    return _DESIGNS.get(
        cache_key(experiment),
        lambda: designs.parse_design(experiment.design_toml, name=experiment.design_name),
    )


def trials_per_participant(experiment: Experiment) -> int:
    """Trials in the first participant's schedule (the longest arm's, for designs with
    between-subject arms): the landing page's time estimate (cached;
    generating a schedule costs ~0.6 ms, and the landing page is shown to every visitor)."""

    def count() -> int:
        design = design_of(experiment)
        catalog = catalog_of(experiment.stimulus_set)
        # Between-subject arms may differ in length: the estimate is the longest arm's.
        return max(
            len(designs.generate_schedule(design, catalog, 1, arm=arm).trials)
            for arm in (design.arms or (None,))
        )

    return _TRIAL_COUNTS.get(cache_key(experiment), count)


def create_experiment(
    session: Session,
    *,
    slug: str,
    stimulus_set: StimulusSet,
    design_source: str,
    title: str | None = None,
    design_text: str | None = None,
    owner_id: int | None = None,
    platform_id_export: Literal["raw", "pseudonymised"] = "pseudonymised",
    blobs: BlobStore | None = None,
) -> Experiment:
    """Create an experiment; the design is checked against the stimulus set first.

    Args:
        blobs: the blob store: the experiment then serves its images under names of its own
            (`served_name`), linked there now; None keeps content-hash names.
        design_source: a preset name or a design file path; with `design_text`, only the
            design's name (e.g. an uploaded file's stem).
        design_text: the design TOML itself (dashboard uploads).
        owner_id: the owning dashboard user (None: admins only, e.g. CLI-created).
        platform_id_export: how participants.csv writes platform ids.

    Raises:
        DesignInvalid: the design is broken or needs what the set lacks.
        Conflict: the slug is taken.
    """
    if not SLUG_PATTERN.match(slug):
        raise InvalidInput(f"experiment name {slug!r} must match {SLUG_PATTERN.pattern}")
    if session.scalar(select(Experiment.id).where(Experiment.slug == slug)) is not None:
        # Names are unique across accounts: the message must not confirm that another
        # experimenter's experiment has this one.
        raise Conflict(f"the name {slug!r} cannot be used; please choose another")
    if design_text is not None:
        name, text = design_source, design_text
    else:
        name, text = read_design_source(design_source)
    design = designs.parse_design(text, name=name)
    designs.check_design_against(design, catalog_of(stimulus_set))
    experiment = Experiment(
        slug=slug,
        title=title or slug,
        stimulus_set_id=stimulus_set.id,
        design_name=name,
        design_toml=text,
        owner_id=owner_id,
        platform_id_export=platform_id_export,
    )
    if blobs is not None:
        experiment.image_key = secrets.token_hex(32)
        ext = "png" if design.images.encoding == "png" else "webp"
        for sha in image_hashes(session, stimulus_set.id, design.images.encoding).values():
            blobs.alias(sha, ext, served_name(experiment.image_key, sha))
    session.add(experiment)
    session.flush()
    logger.info("experiment created", extra={"experiment": slug, "design": name})
    return experiment


def get_experiment(session: Session, slug: str) -> Experiment:
    found = session.scalar(select(Experiment).where(Experiment.slug == slug))
    if found is None:
        raise NotFound(f"no experiment named {slug!r}")
    return found


def default_outcomes(platform: Platform, completion_code: str | None) -> dict[str, Any]:
    code = completion_code or secrets.token_hex(4).upper()
    url = PROLIFIC_COMPLETE_URL.format(code=code) if platform == "prolific" else None
    return {
        "completed": {"code": code, "url": url},
        "failed_checks": {"code": code, "url": url},
        "no_consent": {"code": None, "url": None},
        # The screen check before consent failed: nobody was enrolled (a return, unpaid).
        "screen_too_small": {"code": None, "url": None},
    }


def platform_link(base_url: str, link_code: str, platform: str) -> str:
    """The URL to give the platform: for Prolific with its placeholders, which Prolific fills
    in per participant; MTurk appends `workerId`, `assignmentId`, ... itself, and lab links
    need nothing.
    """
    link = f"{base_url.rstrip('/')}/s/{link_code}"
    return link + PROLIFIC_URL_PARAMETERS if platform == "prolific" else link


def launch_session(
    session: Session,
    experiment: Experiment,
    *,
    platform: Platform = "lab",
    completion_code: str | None = None,
    outcomes: dict[str, Any] | None = None,
    max_participants: int | None = None,
    mturk_sandbox: bool = False,
    label: str = "",
    link_code: str | None = None,
) -> ExperimentSession:
    """Open a participant link for an experiment on a platform.

    Args:
        outcomes: per outcome (`completed`, `failed_checks`, `no_consent`, `screen_too_small`)
            a dict with `code` and
            `url`; missing ones default from `completion_code` (Prolific's completion URL).
    """
    if platform not in ("prolific", "mturk", "lab"):
        raise InvalidInput(f"unknown platform {platform!r}")
    if max_participants is not None and max_participants < 1:
        raise InvalidInput("the participant limit must be at least 1 (or none)")
    merged = default_outcomes(platform, completion_code)
    for key, value in (outcomes or {}).items():
        if key not in merged:
            raise InvalidInput(f"unknown outcome {key!r}")
        merged[key] = {**merged[key], **value}
    launched = ExperimentSession(
        experiment_id=experiment.id,
        link_code=link_code or secrets.token_urlsafe(9),
        label=label,
        platform=platform,
        status="open",
        max_participants=max_participants,
        outcomes=merged,
        mturk_sandbox=mturk_sandbox,
    )
    session.add(launched)
    session.flush()
    logger.info("session launched", extra={"experiment": experiment.slug, "platform": platform})
    return launched


def get_session_by_link(session: Session, link_code: str) -> ExperimentSession:
    if "\x00" in link_code:  # not storable in Postgres text: no link can hold it
        raise NotFound("this study link does not exist")
    found = session.scalar(
        select(ExperimentSession).where(ExperimentSession.link_code == link_code)
    )
    if found is None:
        raise NotFound("this study link does not exist")
    return found


def sessions_of(session: Session, experiment: Experiment) -> list[ExperimentSession]:
    """The experiment's sessions, newest first."""
    return list(
        session.scalars(
            select(ExperimentSession)
            .where(ExperimentSession.experiment_id == experiment.id)
            .order_by(ExperimentSession.id.desc())
        )
    )


def session_in(session: Session, experiment: Experiment, link_code: str) -> ExperimentSession:
    """One of the experiment's sessions by its link code.

    Raises:
        NotFound: no such session in this experiment.
    """
    found = session.scalar(
        select(ExperimentSession).where(
            ExperimentSession.experiment_id == experiment.id,
            ExperimentSession.link_code == link_code[:64],
        )
    )
    if found is None:
        raise NotFound("no such session in this experiment")
    return found


def test_session(session: Session, experiment: Experiment) -> ExperimentSession:
    """The open lab session for test-mode participants, launched on first use."""
    found = session.scalar(
        select(ExperimentSession).where(
            ExperimentSession.experiment_id == experiment.id,
            ExperimentSession.label == TEST_SESSION_LABEL,
            ExperimentSession.status == "open",
        )
    )
    if found is None:
        found = launch_session(session, experiment, platform="lab", label=TEST_SESSION_LABEL)
    return found


def launch_platform(choice: str, mturk_sandbox: bool) -> tuple[Platform, bool]:
    """The platform and MTurk mode of a launch: `mturk-sandbox` and `mturk-live` name both.

    Raises:
        InvalidInput: not a platform.
    """
    if choice in ("mturk-sandbox", "mturk-live"):
        return "mturk", choice == "mturk-sandbox"
    if choice not in ("prolific", "mturk", "lab"):
        raise InvalidInput("platform must be prolific, mturk or lab")
    return choice, mturk_sandbox  # type: ignore[return-value]


def given_outcomes(
    platform: Platform, given: Mapping[str, tuple[str, str]]
) -> dict[str, dict[str, str]]:
    """The outcomes an experimenter set (code, URL), for `launch_session(outcomes=...)`.

    Args:
        given: per outcome of `OUTCOMES`, (completion code, redirect URL), "" where not given.
            On Prolific a code without a URL gets Prolific's completion URL.

    Raises:
        InvalidInput: a URL that is not https.
    """
    outcomes: dict[str, dict[str, str]] = {}
    for outcome in OUTCOMES:
        code, url = given.get(outcome, ("", ""))
        if url and not url.startswith("https://"):
            raise InvalidInput(f"the {outcome} URL must start with https://")
        if platform == "prolific" and code and not url:
            url = PROLIFIC_COMPLETE_URL.format(code=code)
        chosen = {k: v for k, v in (("code", code), ("url", url)) if v}
        if chosen:
            outcomes[outcome] = chosen
    return outcomes


@dataclass(frozen=True)
class SchedulePreview:
    """A participant's schedule as balanced assignment would give it, as rows and as text."""

    schedule: Schedule
    rows: list[dict[str, Any]]
    text: str


def preview_schedule(experiment: Experiment, participant_number: int) -> SchedulePreview:
    """Participant `participant_number`'s schedule (the arm balanced assignment gives them)."""
    design = design_of(experiment)
    catalog = catalog_of(experiment.stimulus_set)
    arm = designs.expected_arm(design, participant_number)
    schedule = designs.generate_schedule(design, catalog, participant_number, arm=arm)
    return SchedulePreview(
        schedule,
        designs.preview_rows(schedule, catalog),
        designs.render_preview(schedule, "table", catalog),
    )


def set_session_status(
    launched: ExperimentSession, status: Literal["open", "paused", "closed"]
) -> None:
    if launched.status == "closed" and status != "closed":
        raise Conflict("a closed session cannot be reopened; launch a new one")
    launched.status = status


__all__ = [
    "DesignInvalid",
    "create_experiment",
    "design_of",
    "get_experiment",
    "get_session_by_link",
    "launch_session",
    "read_design_source",
    "set_session_status",
]
