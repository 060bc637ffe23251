"""Server-side dashboard logins: a validly signed cookie logs in only while its `dashboard_login`
row is live. Logout, password changes, deactivation and "sign out other sessions" revoke rows;
last_seen_at is written at most once a minute; every step is in the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import utc_now
from app.models import AuditLog, DashboardLogin, StimulusSet, User
from app.routes.deps import SESSION_COOKIE, _serializer, password_tag
from app.services import auth
from tests.app.routes.dashboard_client import PASSWORD, csrf_of, login
from tests.factories import make_user

ACCOUNT = "/dashboard/account"


def _logins(db_session: Session, user: User) -> list[DashboardLogin]:
    db_session.expire_all()
    return list(
        db_session.scalars(
            select(DashboardLogin)
            .where(DashboardLogin.user_id == user.id)
            .order_by(DashboardLogin.id)
        )
    )


def _actions(db_session: Session) -> list[str]:
    return list(db_session.scalars(select(AuditLog.action).order_by(AuditLog.id)))


def _browser(client: TestClient) -> TestClient:
    """A second browser on the same app (its own cookie jar)."""
    return TestClient(client.app)


def test_logout_ends_every_copy_of_the_cookie(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    user = make_user(db_session, "owner@example.org")
    db_session.commit()
    token = login(client, "owner@example.org")
    stolen = client.cookies.get(SESSION_COOKIE, path="/dashboard")
    assert stolen
    thief = _browser(client)
    thief.cookies.set(SESSION_COOKIE, stolen, path="/dashboard")
    assert thief.get(ACCOUNT).status_code == 200  # a copied cookie works while the login lives

    out = client.post("/dashboard/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    (row,) = _logins(db_session, user)
    assert row.revoked_at is not None
    # Signed, unexpired, but revoked on the server: no login anywhere.
    assert thief.get(ACCOUNT, follow_redirects=False).status_code == 303
    assert thief.get("/dashboard/api/experiments/x/live").status_code == 401
    client.cookies.set(SESSION_COOKIE, stolen, path="/dashboard")
    assert client.get("/dashboard", follow_redirects=False).status_code == 303
    assert _actions(db_session) == ["user.login", "user.logout"]
    entry = db_session.scalar(select(AuditLog).where(AuditLog.action == "user.logout"))
    assert entry is not None and entry.user_id == user.id and entry.target == f"login {row.id}"


def test_a_signed_cookie_without_a_live_login_row_is_no_login(
    client: TestClient, db_session: Session, demo_set: StimulusSet, settings: Settings
) -> None:
    user = make_user(db_session, "owner@example.org")
    other = make_user(db_session, "other@example.org")
    _, other_token = auth.start_login(
        db_session, other, user_agent=None, address=None, max_age_s=3600
    )
    db_session.commit()

    def cookie(**fields: Any) -> int:
        value = _serializer(settings).dumps(
            {"csrf": "c" * 43, "uid": user.id, "pw": password_tag(user), **fields}
        )
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, value, path="/dashboard")
        return client.get("/dashboard/api/experiments/x/live").status_code

    assert cookie() == 401  # a cookie of the old format (no login id)
    assert cookie(lid="unknown-login-token") == 401
    assert cookie(lid=other_token) == 401  # someone else's login under this user id
    assert cookie(lid="x" * 5000) == 401
    _, own_token = auth.start_login(db_session, user, user_agent=None, address=None, max_age_s=60)
    db_session.commit()
    assert cookie(lid=own_token) == 404  # logged in: the experiment does not exist
    # The server enforces the lifetime too, whatever the cookie's own timestamp says.
    (row,) = _logins(db_session, user)
    row.created_at = utc_now() - timedelta(seconds=settings.session_max_age_s + 1)
    db_session.commit()
    assert cookie(lid=own_token) == 401


def test_password_change_revokes_every_login_of_the_account(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    user = make_user(db_session, "owner@example.org")
    bystander = make_user(db_session, "other@example.org")
    db_session.commit()
    login(client, "owner@example.org")
    second = _browser(client)
    login(second, "owner@example.org")
    third = _browser(client)
    login(third, "other@example.org")

    assert auth.set_password(db_session, user, "a brand new password") == 2
    db_session.commit()
    assert all(row.revoked_at is not None for row in _logins(db_session, user))
    assert [row.revoked_at for row in _logins(db_session, bystander)] == [None]
    for browser in (client, second):
        assert browser.get(ACCOUNT, follow_redirects=False).status_code == 303
    assert third.get(ACCOUNT).status_code == 200
    login(client, "owner@example.org", "a brand new password")
    assert client.get(ACCOUNT).status_code == 200


def test_deactivation_revokes_logins_for_good(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    user = make_user(db_session, "exp@example.org")
    make_user(db_session, "admin@example.org", role="admin")
    db_session.commit()
    victim = _browser(client)
    login(victim, "exp@example.org")
    admin_token = login(client, "admin@example.org")

    def set_active(value: str) -> None:
        done = client.post(
            f"/dashboard/users/{user.id}/active",
            data={"csrf_token": admin_token, "active": value},
            follow_redirects=False,
        )
        assert done.status_code == 303

    set_active("no")
    assert [row.revoked_at is not None for row in _logins(db_session, user)] == [True]
    assert victim.get(ACCOUNT, follow_redirects=False).status_code == 303
    # Reactivating does not bring the old cookie back (it did when only `active` was checked).
    set_active("yes")
    assert victim.get(ACCOUNT, follow_redirects=False).status_code == 303
    entry = db_session.scalar(select(AuditLog).where(AuditLog.action == "user.deactivate"))
    assert entry is not None and entry.details == {"logins_revoked": 1}
    login(victim, "exp@example.org")
    assert victim.get(ACCOUNT).status_code == 200


def test_sign_out_other_sessions_keeps_only_this_browser(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    user = make_user(db_session, "owner@example.org")
    db_session.commit()
    laptop = _browser(client)
    login(laptop, "owner@example.org")
    token = login(client, "owner@example.org")

    page = client.get(ACCOUNT)
    assert page.status_code == 200
    assert page.text.count("data-login=") == 2 and page.text.count("data-current-login") == 1
    assert "testclient" in page.text  # the user agent recorded at login
    assert 'href="/dashboard/account"' in page.text  # linked from the header

    url = "/dashboard/account/sign-out-others"
    assert client.post(url, data={}).status_code == 403  # CSRF-protected
    assert laptop.get(ACCOUNT).status_code == 200
    done = client.post(url, data={"csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == ACCOUNT
    assert laptop.get(ACCOUNT, follow_redirects=False).status_code == 303
    page = client.get(ACCOUNT)
    assert page.status_code == 200 and page.text.count("data-login=") == 1
    assert "data-sign-out-others" not in page.text
    assert [row.revoked_at is None for row in _logins(db_session, user)] == [False, True]
    entry = db_session.scalar(select(AuditLog).where(AuditLog.action == "user.sign_out_others"))
    assert entry is not None and entry.details == {"logins_revoked": 1}
    # Nothing personal in the audit log: no address, no user agent.
    for logged in db_session.scalars(select(AuditLog)):
        assert "testclient" not in f"{logged.target} {logged.details}"


@contextmanager
def _counting_updates(db_session: Session) -> Iterator[list[str]]:
    engine = db_session.get_bind().engine
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE DASHBOARD_LOGIN"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def test_last_seen_is_written_at_most_once_a_minute(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    user = make_user(db_session, "owner@example.org")
    db_session.commit()
    login(client, "owner@example.org")
    (row,) = _logins(db_session, user)
    first_seen = row.last_seen_at
    with _counting_updates(db_session) as updates:
        for _ in range(5):  # the Live panel polls every 3 s
            assert client.get("/dashboard/api/experiments/x/live").status_code == 404
    assert updates == []
    assert _logins(db_session, user)[0].last_seen_at == first_seen

    row.last_seen_at = utc_now() - timedelta(seconds=30)
    db_session.commit()
    with _counting_updates(db_session) as updates:
        client.get(ACCOUNT)
    assert updates == []

    stale = utc_now() - timedelta(seconds=61)
    row.last_seen_at = stale
    db_session.commit()
    with _counting_updates(db_session) as updates:
        for _ in range(3):
            assert client.get(ACCOUNT).status_code == 200
    assert len(updates) == 1
    seen = _logins(db_session, user)[0].last_seen_at
    assert (seen.replace(tzinfo=None) - stale.replace(tzinfo=None)).total_seconds() >= 60


def test_login_form_records_the_login_and_prunes_expired_ones(
    client: TestClient, db_session: Session, demo_set: StimulusSet, settings: Settings
) -> None:
    user = make_user(db_session, "owner@example.org")
    old, _ = auth.start_login(
        db_session, user, user_agent="Old/1", address="10.0.0.1", max_age_s=60
    )
    old.created_at = utc_now() - timedelta(seconds=settings.session_max_age_s + 5)
    db_session.commit()
    client.cookies.clear()
    form = client.get("/dashboard/login")
    response = client.post(
        "/dashboard/login",
        data={"csrf_token": csrf_of(form.text), "email": "owner@example.org", "password": PASSWORD},
        headers={"user-agent": "Firefox/140"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    (row,) = _logins(db_session, user)  # the expired one is gone
    assert row.user_agent == "Firefox/140" and row.address == "testclient"
    assert row.revoked_at is None and len(row.token_sha256) == 64
    cookie = client.cookies.get(SESSION_COOKIE, path="/dashboard") or ""
    assert row.token_sha256 not in cookie  # the cookie holds the token, the table its hash
    entry = db_session.scalar(select(AuditLog).where(AuditLog.action == "user.login"))
    assert entry is not None and entry.user_id == user.id and entry.target == f"login {row.id}"
