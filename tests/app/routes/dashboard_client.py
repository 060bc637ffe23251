"""Helpers for dashboard route tests: log in through the form, read CSRF tokens."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def login(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns the logged-in session's CSRF token."""
    client.cookies.clear()
    form = client.get("/dashboard/login")
    assert form.status_code == 200
    response = client.post(
        "/dashboard/login",
        data={"csrf_token": csrf_of(form.text), "email": email, "password": password},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    home = client.get("/dashboard")
    assert home.status_code == 200
    return csrf_of(home.text)
