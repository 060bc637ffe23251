"""Static checks of the deployment: docker-compose.yml, the Dockerfile and deploy/nginx.conf.

Docker cannot run on the CI machines: the YAML is parsed and checked here, `docker compose
config` runs only where the compose plugin is installed, `nginx -t` only where nginx is, and the
Dockerfile gets a few hadolint-style rules in Python.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
NGINX = REPO_ROOT / "deploy" / "nginx.conf"
PROXY = REPO_ROOT / "deploy" / "psychvis_proxy.conf"
SECRET_VARS = ("POSTGRES_PASSWORD", "PSYCHVIS_SECRET_KEY")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def test_compose_has_db_migrations_app_and_nginx(compose: dict[str, Any]) -> None:
    assert {"db", "migrate", "app", "nginx"} <= set(_services(compose))


def test_long_running_services_have_health_checks(compose: dict[str, Any]) -> None:
    for name in ("db", "app", "nginx"):
        check = _services(compose)[name].get("healthcheck")
        assert check and check.get("test"), name
        assert check.get("retries", 0) >= 3, name


def test_migrations_run_once_before_the_app_and_nginx_waits_for_a_healthy_app(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    assert services["migrate"]["command"] == ["psychvis", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["migrate"].get("restart") == "no"
    assert services["app"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["nginx"]["depends_on"]["app"]["condition"] == "service_healthy"


def test_app_runs_several_workers_and_can_scale_out(compose: dict[str, Any]) -> None:
    app = _services(compose)["app"]
    command = " ".join(app["command"])
    assert "psychvis serve" in command and "--workers" in command
    assert app["environment"]["PSYCHVIS_WORKERS"] == "${PSYCHVIS_WORKERS:-2}"
    # No published port: replicas (`--scale app=N`) would collide; nginx is the entry.
    assert "ports" not in app
    assert _services(compose)["nginx"]["ports"]


def test_secrets_come_from_the_environment_only(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for var in SECRET_VARS:
        assert re.search(rf"\$\{{{var}:\?[^}}]+\}}", text), f"{var} must be required from env"
    env = _services(compose)["app"]["environment"]
    assert env["PSYCHVIS_ENV"] == "prod"
    assert env["PSYCHVIS_SECRET_KEY"].startswith("${PSYCHVIS_SECRET_KEY")
    # No literal password or key anywhere outside the test database profile.
    for name, service in _services(compose).items():
        if "test" in service.get("profiles", []):
            continue
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("PASSWORD", "SECRET", "KEY")):
                assert "${" in str(value), (name, key)


def test_nginx_serves_static_files_and_stimuli_read_only(compose: dict[str, Any]) -> None:
    volumes = _services(compose)["nginx"]["volumes"]
    assert "stimuli:/var/lib/psychvis/stimuli:ro" in volumes
    assert any(v.startswith("./static:") and v.endswith(":ro") for v in volumes)
    assert any(v.startswith("./deploy/nginx.conf:") for v in volumes)
    assert "stimuli:/var/lib/psychvis/stimuli" in _services(compose)["app"]["volumes"]


def test_nginx_conf_caches_static_and_images_forever_and_proxies_the_rest() -> None:
    conf = NGINX.read_text(encoding="utf-8")
    for location in ("location /static/", 'location ~ "^/img/'):
        block = conf.split(location, 1)[1].split("location", 1)[0]
        assert "immutable" in block and "max-age=31536000" in block, location
    # The image URL maps onto the blob store layout <sha[:2]>/<sha>.<ext> (app/services/blobs.py).
    assert "/var/lib/psychvis/stimuli/blobs/$prefix/$prefix$rest.$ext" in conf
    assert "proxy_pass $app_upstream" in conf and "http://app:8000" in conf
    assert "X-Forwarded-For" in PROXY.read_text(encoding="utf-8")


def test_nginx_image_regex_matches_the_apps_image_names() -> None:
    from app.routes.images import NAME

    conf = NGINX.read_text(encoding="utf-8")
    pattern = re.search(r'location ~ "(\^/img/[^"]+)"', conf)
    assert pattern is not None
    nginx_re = re.compile(pattern.group(1).replace("?<", "?P<"))
    sha = "ab" + "0" * 62
    for name in (f"{sha}.webp", f"{sha}.png"):
        assert NAME.match(name) and nginx_re.match(f"/img/{name}")
    for bad in ("../x.png", f"{sha}.svg", f"{sha[:-1]}.png", f"{sha}.webp/.."):
        assert not nginx_re.match(f"/img/{bad}")


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed here")
def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    # nginx -t with the config's includes placed where the container has them.
    conf = NGINX.read_text(encoding="utf-8").replace("/etc/nginx/psychvis_proxy.conf", str(PROXY))
    (tmp_path / "nginx.conf").write_text(conf, encoding="utf-8")
    result = subprocess.run(
        ["nginx", "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    found = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return found.returncode == 0


@pytest.mark.skipif(
    not _compose_available(), reason="the docker compose plugin is not installed here"
)
def test_docker_compose_config_validates() -> None:
    env = {"POSTGRES_PASSWORD": "x", "PSYCHVIS_SECRET_KEY": "y" * 40, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- Dockerfile (hadolint-style rules) -----------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_pins_its_base_image() -> None:
    froms = [args for word, args in _instructions() if word == "FROM"]
    assert froms, "no FROM"
    for image in froms:
        name = image.split()[0]
        assert ":" in name and not name.endswith(":latest"), f"DL3006/DL3007: pin {name}"


def test_dockerfile_runs_as_an_unprivileged_user() -> None:
    users = [args for word, args in _instructions() if word == "USER"]
    assert users and users[-1] not in ("root", "0"), "DL3002: last USER must not be root"


def test_dockerfile_follows_hadolint_rules() -> None:
    instructions = _instructions()
    for word, args in instructions:
        if word == "RUN":
            assert not re.search(r"\bsudo\b", args), "DL3004: no sudo"
            assert not re.search(r"\bcd\s", args), "DL3003: use WORKDIR, not cd"
            if "pip install" in args:
                assert "--no-cache-dir" in args, "DL3042: pip install --no-cache-dir"
            if "apt-get install" in args:
                assert "--no-install-recommends" in args, "DL3015"
                assert "rm -rf /var/lib/apt/lists" in args, "DL3009"
        if word == "ADD":
            pytest.fail("DL3020: use COPY instead of ADD for files")
        if word == "WORKDIR":
            assert args.startswith("/"), "DL3000: absolute WORKDIR"
        if word == "CMD":
            assert args.startswith("["), "DL3025: CMD in JSON form"
    words = [w for w, _ in instructions]
    assert "HEALTHCHECK" in words
    assert all("torch" not in args for _, args in instructions), "the web image has no torch"


def test_dockerfile_copies_what_the_app_needs_at_run_time() -> None:
    copied = " ".join(args for word, args in _instructions() if word == "COPY")
    for needed in ("app", "migrations", "templates", "static", "alembic.ini", "pyproject.toml"):
        assert needed in copied, needed
