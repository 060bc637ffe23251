"""Dashboard accounts: argon2 password hashes, users, login with throttling, server-side logins
(revocable), experiment access and sharing.

Access rule: an experimenter sees the experiments they own and those shared with them; an
admin sees every experiment, including ownerless ones (created with the CLI or the demo).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.orm import Session, joinedload
from zxcvbn import zxcvbn

from app.db import utc_now
from app.errors import Conflict, InvalidInput, NotFound, TooManyAttempts
from app.models import DashboardLogin, Experiment, ExperimentShare, LoginAttempt, User

logger = logging.getLogger(__name__)

Role = Literal["admin", "experimenter"]
ROLES: tuple[Role, ...] = ("admin", "experimenter")
MIN_PASSWORD_LENGTH = 10
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")
ATTEMPT_RETENTION = timedelta(days=1)
"""Login attempts older than this are pruned (they only serve throttling)."""
MAX_THROTTLE_S = 15 * 60
LOGIN_SEEN_RESOLUTION_S = 60
"""A login's `last_seen_at` is written at most this often (the Live panel polls every 3 s)."""
LOGIN_TOKEN_MAX_LEN = 64

_HASHER = PasswordHasher()
# Verified when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("psychvis-no-such-user-placeholder")


MIN_PASSWORD_SCORE = 3
"""zxcvbn's score (0-4) a password needs: 3 is "safely unguessable" for online attacks; common
passwords, repeats, keyboard walks and the account's own email score lower."""


def check_password(password: str, email: str = "") -> None:
    """Refuse short, common or guessable passwords and ones made from the account's email.

    zxcvbn (Dropbox's estimator) checks the password against its lists of common passwords,
    names and words and against the email given as user input.

    Raises:
        InvalidInput: the password is too weak; the message says why.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    inputs = [email, email.split("@")[0], *re.split(r"[@.+_-]", email)] if email else []
    folded = password.casefold()
    if email and (email.casefold() in folded or folded in email.casefold()):
        raise InvalidInput("a password must not be (or contain) the account's email")
    estimate = zxcvbn(password[:100], user_inputs=[i for i in inputs if i])
    if estimate["score"] < MIN_PASSWORD_SCORE:
        hint = estimate["feedback"]["warning"] or "it is easy to guess"
        raise InvalidInput(f"choose a stronger password: {hint.rstrip('.')}")


def hash_password(password: str, email: str = "") -> str:
    """Hash a password with argon2id (argon2-cffi defaults, RFC 9106 low-memory profile).

    Raises:
        InvalidInput: too short, common or guessable, or made from `email` (`check_password`).
    """
    check_password(password, email)
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches the stored hash (constant-time inside argon2)."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def normalise_email(email: str) -> str:
    return email.strip().lower()


def create_user(session: Session, email: str, password: str, role: Role) -> User:
    """Create an account.

    Raises:
        InvalidInput: bad email, role or too weak a password.
        Conflict: the email has an account already.
    """
    email = normalise_email(email)
    if not EMAIL_PATTERN.match(email):
        raise InvalidInput(f"{email!r} is not an email address")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"an account for {email} exists already")
    user = User(email=email, password_hash=hash_password(password, email), role=role, active=True)
    session.add(user)
    session.flush()
    logger.info("user created", extra={"user": user.id, "role": role})
    return user


def set_password(session: Session, user: User, password: str) -> int:
    """Replace the password and end every dashboard login of the account.

    Returns:
        The number of logins revoked.

    Raises:
        InvalidInput: too weak a password (nothing is changed).
    """
    user.password_hash = hash_password(password, user.email)
    return revoke_logins(session, user)


def set_active(session: Session, user: User, active: bool) -> int:
    """Deactivate (ending every dashboard login of the account) or reactivate an account.

    Returns:
        The number of logins revoked (0 when reactivating).
    """
    user.active = active
    session.flush()
    return 0 if active else revoke_logins(session, user)


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.email)))


def get_user(session: Session, user_id: int) -> User:
    found = session.get(User, user_id)
    if found is None:
        raise NotFound("no such user")
    return found


def get_user_by_email(session: Session, email: str) -> User:
    found = session.scalar(select(User).where(User.email == normalise_email(email)))
    if found is None:
        raise NotFound(f"no account for {normalise_email(email)}")
    return found


@dataclass(frozen=True)
class ThrottlePolicy:
    """`max_failures` failures within `window_s` (per email, and per address) slow logins down:
    each further failure doubles the wait after the last one (2 s, 4 s, ... up to the window)."""

    max_failures: int = 5
    window_s: int = 15 * 60


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def throttle_wait_s(
    session: Session, email: str, address: str, policy: ThrottlePolicy, now: datetime
) -> int:
    """Seconds the next login attempt for `email` from `address` must still wait (0: go)."""
    since = now - timedelta(seconds=policy.window_s)
    wait = 0.0
    for column, value in ((LoginAttempt.email, email), (LoginAttempt.address, address)):
        failures, last = session.execute(
            select(func.count(), func.max(LoginAttempt.attempted_at)).where(
                column == value,
                LoginAttempt.succeeded.is_(False),
                LoginAttempt.attempted_at >= since,
            )
        ).one()
        if failures >= policy.max_failures and last is not None:
            excess = failures - policy.max_failures + 1
            delay = min(2.0**excess, policy.window_s, MAX_THROTTLE_S)
            wait = max(wait, delay - (now - _aware(last)).total_seconds())
    return max(0, int(wait + 0.999))


def authenticate(
    session: Session,
    email: str,
    password: str,
    address: str,
    *,
    policy: ThrottlePolicy | None = None,
    now: datetime | None = None,
) -> User | None:
    """Check a login; every attempt is stored (the caller commits, also on failure).

    Args:
        address: the client's network address (stored for throttling only, never logged).

    Returns:
        The active user, or None for a wrong email/password or an inactive account.

    Raises:
        TooManyAttempts: too many recent failures for this email or address; nothing is
            checked or stored.
    """
    policy = policy or ThrottlePolicy()
    now = now or utc_now()
    email = normalise_email(email)[:254]
    address = address[:64]
    session.execute(delete(LoginAttempt).where(LoginAttempt.attempted_at < now - ATTEMPT_RETENTION))
    wait = throttle_wait_s(session, email, address, policy, now)
    if wait > 0:
        known = session.scalar(select(User.id).where(User.email == email))
        logger.warning("login throttled", extra={"user": known, "retry_after_s": wait})
        raise TooManyAttempts(f"too many failed logins; try again in {wait} s", wait)
    user = session.scalar(select(User).where(User.email == email))
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
    ok = ok and user is not None and user.active
    session.add(LoginAttempt(email=email, address=address, succeeded=ok, attempted_at=now))
    if not ok or user is None:
        logger.warning("login failed", extra={"user": user.id if user else None})
        session.flush()
        return None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    user.last_login_at = now
    session.flush()
    logger.info("login", extra={"user": user.id})
    return user


# --- server-side logins ---------------------------------------------------------------------------


def _token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_login(
    session: Session,
    user: User,
    *,
    user_agent: str | None,
    address: str | None,
    max_age_s: int,
    now: datetime | None = None,
) -> tuple[DashboardLogin, str]:
    """Record a new dashboard login of `user` and prune expired ones (of every account).

    Args:
        user_agent: the browser's User-Agent header, shown to the user on their account page.
        address: the client's network address, shown there too (never logged).
        max_age_s: login lifetime; logins created longer ago are deleted.

    Returns:
        The login row and its random token (for the signed cookie; only its hash is stored).
    """
    now = now or utc_now()
    # "fetch": SQLite hands back naive datetimes, which the default in-Python evaluation of
    # the condition against loaded rows cannot compare with `now`.
    session.execute(
        delete(DashboardLogin)
        .where(DashboardLogin.created_at < now - timedelta(seconds=max_age_s))
        .execution_options(synchronize_session="fetch")
    )
    token = secrets.token_urlsafe(32)
    login = DashboardLogin(
        token_sha256=_token_sha256(token),
        user_id=user.id,
        created_at=now,
        last_seen_at=now,
        user_agent=user_agent[:400] if user_agent else None,
        address=address[:64] if address else None,
    )
    session.add(login)
    session.flush()
    logger.info("dashboard login started", extra={"user": user.id, "login": login.id})
    return login, token


def find_login(
    session: Session, token: str, *, max_age_s: int, now: datetime | None = None
) -> DashboardLogin | None:
    """The login a cookie's token names, with its user loaded, unless unknown, revoked or older
    than `max_age_s`."""
    if len(token) > LOGIN_TOKEN_MAX_LEN:
        return None
    now = now or utc_now()
    return session.scalar(
        select(DashboardLogin)
        .options(joinedload(DashboardLogin.user))
        .where(
            DashboardLogin.token_sha256 == _token_sha256(token),
            DashboardLogin.revoked_at.is_(None),
            DashboardLogin.created_at >= now - timedelta(seconds=max_age_s),
        )
    )


def touch_login(login: DashboardLogin, now: datetime) -> bool:
    """Note that the login was used; changes the row only when `last_seen_at` is older than
    `LOGIN_SEEN_RESOLUTION_S`, so polling pages cost no write per request.

    Returns:
        Whether `last_seen_at` changed (the caller then commits it).
    """
    if (now - _aware(login.last_seen_at)).total_seconds() < LOGIN_SEEN_RESOLUTION_S:
        return False
    login.last_seen_at = now
    return True


def active_logins(
    session: Session, user: User, *, max_age_s: int, now: datetime | None = None
) -> list[DashboardLogin]:
    """The user's logins that are neither revoked nor expired, most recently seen first."""
    now = now or utc_now()
    return list(
        session.scalars(
            select(DashboardLogin)
            .where(
                DashboardLogin.user_id == user.id,
                DashboardLogin.revoked_at.is_(None),
                DashboardLogin.created_at >= now - timedelta(seconds=max_age_s),
            )
            .order_by(DashboardLogin.last_seen_at.desc(), DashboardLogin.id.desc())
        )
    )


def revoke_login(session: Session, login: DashboardLogin, now: datetime | None = None) -> None:
    """End one login (logout): its cookie, and every copy of it, no longer logs anyone in."""
    if login.revoked_at is None:
        login.revoked_at = now or utc_now()
        session.flush()
        logger.info("dashboard login revoked", extra={"user": login.user_id, "login": login.id})


def revoke_logins(
    session: Session,
    user: User,
    *,
    keep: DashboardLogin | None = None,
    now: datetime | None = None,
) -> int:
    """End every login of `user` that is not revoked yet, except `keep` (the current one).

    Returns:
        The number of logins revoked.
    """
    query = select(DashboardLogin.id).where(
        DashboardLogin.user_id == user.id, DashboardLogin.revoked_at.is_(None)
    )
    if keep is not None:
        query = query.where(DashboardLogin.id != keep.id)
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(DashboardLogin)
            .where(DashboardLogin.id.in_(ids))
            .values(revoked_at=now or utc_now())
        )
        session.flush()
        logger.info("dashboard logins revoked", extra={"user": user.id, "count": len(ids)})
    return len(ids)


# --- experiment access ----------------------------------------------------------------------------


def visible_experiments_query(user: User) -> Select[Experiment]:
    """A SELECT of the experiments `user` may see (owner, shared, or any for admins)."""
    query = select(Experiment)
    if user.role != "admin":
        shared = select(ExperimentShare.experiment_id).where(ExperimentShare.user_id == user.id)
        query = query.where(or_(Experiment.owner_id == user.id, Experiment.id.in_(shared)))
    return query


def visible_experiments(session: Session, user: User) -> list[Experiment]:
    return list(session.scalars(visible_experiments_query(user).order_by(Experiment.id.desc())))


def may_share(user: User, experiment: Experiment) -> bool:
    """Whether `user` may share the experiment or take a share back (its owner, or an admin)."""
    return user.role == "admin" or experiment.owner_id == user.id


def experiment_for(session: Session, user: User, slug: str) -> Experiment:
    """The experiment named `slug` if `user` may see it.

    Raises:
        NotFound: no such experiment, or not visible to the user (the same answer on purpose,
            so names of others' experiments do not leak).
    """
    found = session.scalar(visible_experiments_query(user).where(Experiment.slug == slug[:80]))
    if found is None:
        raise NotFound(f"no experiment named {slug[:80]!r}")
    return found


def share_experiment(session: Session, experiment: Experiment, email: str) -> ExperimentShare:
    """Share an experiment with another account (idempotent).

    Raises:
        NotFound: no account with that email.
    """
    user = get_user_by_email(session, email)
    existing = session.scalar(
        select(ExperimentShare).where(
            ExperimentShare.experiment_id == experiment.id, ExperimentShare.user_id == user.id
        )
    )
    if existing is not None:
        return existing
    share = ExperimentShare(experiment_id=experiment.id, user_id=user.id)
    session.add(share)
    session.flush()
    logger.info("experiment shared", extra={"experiment": experiment.slug, "user": user.id})
    return share


def unshare_experiment(session: Session, experiment: Experiment, user_id: int) -> User:
    """Take back a share: the account no longer sees the experiment (unless it owns it).

    Returns:
        The account the experiment was shared with.

    Raises:
        NotFound: the experiment is not shared with that account.
    """
    share = session.scalar(
        select(ExperimentShare).where(
            ExperimentShare.experiment_id == experiment.id, ExperimentShare.user_id == user_id
        )
    )
    if share is None:
        raise NotFound("the experiment is not shared with that account")
    user = get_user(session, user_id)
    session.delete(share)
    session.flush()
    logger.info("experiment unshared", extra={"experiment": experiment.slug, "user": user.id})
    return user


def shared_with(session: Session, experiment: Experiment) -> list[User]:
    return list(
        session.scalars(
            select(User)
            .join(ExperimentShare, ExperimentShare.user_id == User.id)
            .where(ExperimentShare.experiment_id == experiment.id)
            .order_by(User.email)
        )
    )
