"""Dashboard security: login, signed cookie, CSRF, throttling, and isolation between
experimenters (every dashboard and export route: no session -> 401/redirect, someone else's
experiment -> 404)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import AuditLog, LoginAttempt, StimulusSet, User
from app.routes.deps import SESSION_COOKIE
from tests.app.routes.dashboard_client import PASSWORD, csrf_of, login
from tests.factories import make_experiment, make_launch, make_user

# (method, path) of every experiment-scoped route; {slug} and {link} are filled in.
EXPERIMENT_ROUTES = [
    ("GET", "/dashboard/experiments/{slug}"),
    ("GET", "/dashboard/experiments/{slug}/preview"),
    ("GET", "/dashboard/experiments/{slug}/participants"),
    ("GET", "/dashboard/experiments/{slug}/participants/1"),
    ("GET", "/dashboard/experiments/{slug}/analysis"),
    ("GET", "/dashboard/api/experiments/{slug}/live"),
    ("GET", "/dashboard/experiments/{slug}/export/responses.csv"),
    ("GET", "/dashboard/experiments/{slug}/export/participants.csv"),
    ("GET", "/dashboard/experiments/{slug}/export/events.csv"),
    ("GET", "/dashboard/experiments/{slug}/export/ratings.csv"),
    ("GET", "/dashboard/experiments/{slug}/export/all.json"),
    ("POST", "/dashboard/experiments/{slug}/try"),
    ("POST", "/dashboard/experiments/{slug}/settings"),
    ("POST", "/dashboard/experiments/{slug}/shares"),
    ("POST", "/dashboard/experiments/{slug}/shares/1/delete"),
    ("POST", "/dashboard/experiments/{slug}/sessions"),
    ("POST", "/dashboard/experiments/{slug}/sessions/{link}/status"),
    ("POST", "/dashboard/experiments/{slug}/participants/1/delete"),
]
# Well-formed values for every form field, so requests get past validation to the access check.
VALID_FORM = {
    "platform_id_export": "raw",
    "email": "owner@example.org",
    "status": "paused",
    "platform": "lab",
    "confirm": "p00001",
}
OTHER_ROUTES = [
    ("GET", "/dashboard"),
    ("GET", "/dashboard/stimuli"),
    ("GET", "/dashboard/stimuli/test-demo"),
    ("GET", "/dashboard/experiments/new"),
    ("GET", "/dashboard/users"),
    ("GET", "/dashboard/audit"),
    ("GET", "/dashboard/account"),
    ("POST", "/dashboard/stimuli"),
    ("POST", "/dashboard/experiments"),
    ("POST", "/dashboard/users"),
    ("POST", "/dashboard/logout"),
    ("POST", "/dashboard/account/sign-out-others"),
]


def _setup(db_session: Session, demo_set: StimulusSet) -> tuple[str, str]:
    owner = make_user(db_session, "owner@example.org")
    make_user(db_session, "other@example.org")
    experiment = make_experiment(db_session, demo_set, owner_id=owner.id)
    launched = make_launch(db_session, experiment)
    db_session.commit()
    return experiment.slug, launched.link_code


def test_every_route_needs_a_login(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    slug, link = _setup(db_session, demo_set)
    for method, path in EXPERIMENT_ROUTES + OTHER_ROUTES:
        url = path.format(slug=slug, link=link)
        response = client.request(method, url, follow_redirects=False)
        if method == "GET" and "/api/" not in url and "/export/" not in url:
            assert response.status_code == 303, url
            assert response.headers["location"].startswith("/dashboard/login?next=")
        else:
            assert response.status_code == 401, (url, response.status_code)
    # A forged cookie is no login either.
    client.cookies.set(SESSION_COOKIE, "eyJ1aWQiOjF9.forged.sig", path="/dashboard")
    assert client.get("/dashboard/api/experiments/x/live").status_code == 401


def test_another_experimenters_experiment_is_404_everywhere(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    slug, link = _setup(db_session, demo_set)
    token = login(client, "other@example.org")
    for method, path in EXPERIMENT_ROUTES:
        url = path.format(slug=slug, link=link)
        data = {"csrf_token": token, **VALID_FORM} if method == "POST" else None
        response = client.request(method, url, data=data, follow_redirects=False)
        assert response.status_code == 404, (url, response.status_code)
    assert slug not in client.get("/dashboard").text
    # Participants' links never open the dashboard, and admin pages refuse experimenters.
    assert client.get("/dashboard/users").status_code == 403

    owner_token = login(client, "owner@example.org")
    assert client.get(f"/dashboard/experiments/{slug}").status_code == 200
    shared = client.post(
        f"/dashboard/experiments/{slug}/shares",
        data={"csrf_token": owner_token, "email": "other@example.org"},
        follow_redirects=False,
    )
    assert shared.status_code == 303
    login(client, "other@example.org")
    assert client.get(f"/dashboard/experiments/{slug}").status_code == 200
    assert client.get(f"/dashboard/api/experiments/{slug}/live").json()["experiment"] == slug


def test_owner_unshares_and_the_account_loses_access(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    slug, _ = _setup(db_session, demo_set)
    third = make_user(db_session, "third@example.org")
    other_id = db_session.scalar(select(User.id).where(User.email == "other@example.org"))
    make_user(db_session, "admin@example.org", role="admin")
    db_session.commit()
    owner_token = login(client, "owner@example.org")
    for email in ("other@example.org", "third@example.org"):
        shared = client.post(
            f"/dashboard/experiments/{slug}/shares",
            data={"csrf_token": owner_token, "email": email},
            follow_redirects=False,
        )
        assert shared.status_code == 303
    page = client.get(f"/dashboard/experiments/{slug}").text
    assert f'action="/dashboard/experiments/{slug}/shares/{other_id}/delete"' in page
    assert 'data-unshare="other@example.org"' in page

    # Someone it is shared with sees the list but may not take access away.
    third_token = login(client, "third@example.org")
    page = client.get(f"/dashboard/experiments/{slug}").text
    assert "other@example.org" in page and "data-unshare" not in page
    unshare_url = f"/dashboard/experiments/{slug}/shares/{other_id}/delete"
    refused = client.post(unshare_url, data={"csrf_token": third_token}, follow_redirects=False)
    assert refused.status_code == 404
    login(client, "other@example.org")
    assert client.get(f"/dashboard/experiments/{slug}").status_code == 200

    owner_token = login(client, "owner@example.org")
    assert client.post(unshare_url, data={}).status_code == 403  # CSRF-protected
    done = client.post(unshare_url, data={"csrf_token": owner_token}, follow_redirects=False)
    assert done.status_code == 303
    assert client.post(unshare_url, data={"csrf_token": owner_token}).status_code == 404
    page = client.get(f"/dashboard/experiments/{slug}").text
    assert 'data-share="other@example.org"' not in page
    assert 'data-share="third@example.org"' in page
    entry = db_session.scalar(select(AuditLog).where(AuditLog.action == "experiment.unshare"))
    assert entry is not None and entry.target == f"user {other_id}"
    assert entry.user_email == "owner@example.org" and entry.experiment_id is not None

    login(client, "other@example.org")
    for method, path in EXPERIMENT_ROUTES:
        if method == "GET" and "/participants/1" not in path:
            assert client.get(path.format(slug=slug)).status_code == 404, path
    assert slug not in client.get("/dashboard").text

    # An admin may take back a share of someone else's experiment.
    admin_token = login(client, "admin@example.org")
    by_admin = client.post(
        f"/dashboard/experiments/{slug}/shares/{third.id}/delete",
        data={"csrf_token": admin_token},
        follow_redirects=False,
    )
    assert by_admin.status_code == 303
    login(client, "third@example.org")
    assert client.get(f"/dashboard/experiments/{slug}").status_code == 404


def test_ownerless_experiments_are_for_admins_only(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    experiment = make_experiment(db_session, demo_set)
    make_user(db_session, "exp@example.org")
    make_user(db_session, "admin@example.org", role="admin")
    db_session.commit()
    login(client, "exp@example.org")
    assert client.get(f"/dashboard/experiments/{experiment.slug}").status_code == 404
    login(client, "admin@example.org")
    assert client.get(f"/dashboard/experiments/{experiment.slug}").status_code == 200
    assert client.get("/dashboard/users").status_code == 200


def test_post_without_or_with_wrong_csrf_token_is_refused(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    slug, link = _setup(db_session, demo_set)
    token = login(client, "owner@example.org")
    url = f"/dashboard/experiments/{slug}/sessions/{link}/status"
    assert client.post(url, data={"status": "paused"}).status_code == 403
    assert client.post(url, data={"status": "paused", "csrf_token": "x" * 43}).status_code == 403
    ok = client.post(url, data={"status": "paused", "csrf_token": token}, follow_redirects=False)
    assert ok.status_code == 303
    # The login form itself needs the token of the visitor's cookie.
    client.cookies.clear()
    bare = client.post(
        "/dashboard/login", data={"email": "owner@example.org", "password": PASSWORD}
    )
    assert bare.status_code == 403


def test_login_cookie_is_httponly_and_logout_ends_it(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    make_user(db_session, "owner@example.org")
    db_session.commit()
    client.cookies.clear()
    form = client.get("/dashboard/login")
    wrong = client.post(
        "/dashboard/login",
        data={"csrf_token": csrf_of(form.text), "email": "owner@example.org", "password": "nope"},
    )
    assert wrong.status_code == 401 and "Wrong email or password" in wrong.text
    ok = client.post(
        "/dashboard/login",
        data={
            "csrf_token": csrf_of(form.text),
            "email": "Owner@Example.org",
            "password": PASSWORD,
            "next": "https://evil.example/",
        },
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/dashboard" in cookie
    assert "Secure" not in cookie  # plain http in tests; https sets Secure
    token = csrf_of(client.get("/dashboard").text)
    assert token != csrf_of(form.text)  # a new token after login (no session fixation)
    out = client.post("/dashboard/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/dashboard", follow_redirects=False).status_code == 303


def test_repeated_failures_are_throttled_and_stored(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    make_user(db_session, "owner@example.org")
    db_session.commit()
    client.cookies.clear()
    token = csrf_of(client.get("/dashboard/login").text)
    statuses = []
    for _ in range(6):
        response = client.post(
            "/dashboard/login",
            data={"csrf_token": token, "email": "owner@example.org", "password": "bad guess!"},
        )
        statuses.append(response.status_code)
    assert statuses[:5] == [401] * 5
    assert statuses[5] == 429
    assert int(response.headers["Retry-After"]) >= 1
    # Even the right password waits now.
    right = client.post(
        "/dashboard/login",
        data={"csrf_token": token, "email": "owner@example.org", "password": PASSWORD},
    )
    assert right.status_code == 429
    failures = db_session.scalar(
        select(func.count()).select_from(LoginAttempt).where(LoginAttempt.succeeded.is_(False))
    )
    assert failures == 5


@pytest.mark.parametrize("env", ["prod"])
def test_production_refuses_placeholder_secret(env: str) -> None:
    from pydantic import ValidationError

    from app.config import Settings

    with pytest.raises(ValidationError, match="PSYCHVIS_SECRET_KEY"):
        Settings(env=env, secret_key="dev-secret-key")
    with pytest.raises(ValidationError):
        Settings(env=env, secret_key="short")
    assert Settings(env=env, secret_key="k" * 40).env == "prod"


def test_cookie_is_secure_over_https(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    make_user(db_session, "owner@example.org")
    db_session.commit()
    secure = TestClient(client.app, base_url="https://testserver")
    form = secure.get("/dashboard/login")
    assert "Secure" in form.headers["set-cookie"]
    ok = secure.post(
        "/dashboard/login",
        data={"csrf_token": csrf_of(form.text), "email": "owner@example.org", "password": PASSWORD},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and "Secure" in ok.headers["set-cookie"]
