"""The quick start, the demo seed, the admin account, key rotation and the
production configuration (check --deploy, migrations, compose file).
"""

import os
import re
import secrets
import shlex
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet, InvalidToken
from django.contrib.auth import get_user_model
from django.core.management import call_command

from controlplane import crypto
from controlplane.models import AuditEvent
from controlplane.testing.secrets import raw_field
from controlplane.testing.tree import copy_working_tree
from regions.models import DockerHost, Region
from registries.models import ObjectStore

ROOT = Path(__file__).resolve().parents[2]
DEMO_SLUGS = {"cn-hangzhou", "cn-hongkong", "us-west-1"}


def run_manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


# -- seed_demo ---------------------------------------------------------------
@pytest.mark.django_db
def test_seed_demo_creates_three_regions_with_host_and_store_once():
    call_command("seed_demo", stdout=StringIO())
    call_command("seed_demo", stdout=StringIO())

    regions = {r.slug: r for r in Region.objects.all()}
    assert set(regions) == DEMO_SLUGS
    assert regions["cn-hangzhou"].role == Region.Role.HOME
    assert regions["cn-hangzhou"].name == "Hangzhou"
    assert regions["cn-hongkong"].role == Region.Role.EDGE
    assert regions["cn-hongkong"].name == "Hong Kong"
    assert regions["us-west-1"].role == Region.Role.EDGE
    for region in regions.values():
        assert DockerHost.objects.filter(region=region).count() == 1
        store = ObjectStore.objects.get(region=region)
        assert store.kind == ObjectStore.Kind.OSS
        assert store.internal_endpoint
        assert store.endpoint == f"oss-{region.slug}-internal.aliyuncs.com"
        assert store.secret_access_key == ""  # nothing seeded needs a secret
    events = AuditEvent.objects.filter(action="create")
    assert events.count() == 9  # 3 regions, 3 hosts, 3 stores; not twice
    assert set(events.values_list("actor_name", "via")) == {("system", "system")}


@pytest.mark.django_db
def test_seed_demo_leaves_a_database_with_regions_alone():
    Region.objects.create(slug="eu-central-1", name="Frankfurt")
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert list(Region.objects.values_list("slug", flat=True)) == ["eu-central-1"]
    assert "not seeded" in out.getvalue()


# -- ensure_admin --------------------------------------------------------------
@pytest.mark.django_db
def test_ensure_admin_takes_credentials_from_the_environment(monkeypatch):
    monkeypatch.setenv("FERRY_ADMIN_USER", "ops")
    monkeypatch.setenv("FERRY_ADMIN_PASSWORD", "first-Passw0rd")
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    user = get_user_model().objects.get(username="ops")
    assert user.is_superuser and user.is_staff
    assert user.check_password("first-Passw0rd")
    assert "first-Passw0rd" not in out.getvalue()

    monkeypatch.setenv("FERRY_ADMIN_PASSWORD", "second-Passw0rd")
    call_command("ensure_admin", stdout=StringIO())
    user.refresh_from_db()
    assert user.check_password("second-Passw0rd")
    assert get_user_model().objects.count() == 1
    changes = AuditEvent.objects.filter(object_type="auth.user", action="update")
    assert changes.get().changes == {"password": "(changed)"}


@pytest.mark.django_db
def test_ensure_admin_generates_a_password_and_prints_it_once(monkeypatch):
    monkeypatch.delenv("FERRY_ADMIN_USER", raising=False)
    monkeypatch.delenv("FERRY_ADMIN_PASSWORD", raising=False)
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    password = re.search(r"password: (\S+)", out.getvalue()).group(1)
    user = get_user_model().objects.get(username="admin")
    assert user.is_superuser and user.check_password(password)

    again = StringIO()
    call_command("ensure_admin", stdout=again)
    assert password not in again.getvalue()
    assert "exists" in again.getvalue()
    user.refresh_from_db()
    assert user.check_password(password)


# -- rotate_encryption_key -------------------------------------------------------
def _use_keys(settings, *keys: bytes) -> None:
    settings.FERRY_ENCRYPTION_KEYS = [key.decode() for key in keys]
    crypto._fernet.cache_clear()


@pytest.fixture
def restore_encryption_keys():
    yield
    crypto._fernet.cache_clear()


@pytest.mark.django_db
def test_rotate_encryption_key_reencrypts_every_secret_with_the_new_key(
    settings, restore_encryption_keys
):
    old, new = Fernet.generate_key(), Fernet.generate_key()
    _use_keys(settings, old)
    region = Region.objects.create(slug="cn-hongkong", name="Hong Kong")
    store = ObjectStore.objects.create(
        region=region, name="oss", secret_access_key="store-secret-1"
    )
    host = DockerHost.objects.create(
        region=region, name="h1", docker_url="tcp://h1:2376", tls_client_key="key-2"
    )
    rows = [(ObjectStore, "secret_access_key", store.pk, "store-secret-1"),
            (DockerHost, "tls_client_key", host.pk, "key-2")]  # fmt: skip
    before = {model: raw_field(model, field, pk) for model, field, pk, _ in rows}

    _use_keys(settings, new, old)
    out = StringIO()
    call_command("rotate_encryption_key", stdout=out)
    assert "registries.ObjectStore: 1 row(s)" in out.getvalue()

    for model, field, pk, plaintext in rows:
        raw = raw_field(model, field, pk)
        assert raw != before[model] and plaintext not in raw
        token = raw.removeprefix(crypto.PREFIX).encode()
        assert Fernet(new).decrypt(token).decode() == plaintext
        with pytest.raises(InvalidToken):
            Fernet(old).decrypt(token)
    _use_keys(settings, new)  # the old key is gone; everything still reads
    assert ObjectStore.objects.get(pk=store.pk).secret_access_key == "store-secret-1"
    assert DockerHost.objects.get(pk=host.pk).tls_client_key == "key-2"


# -- production configuration ----------------------------------------------------
def _production_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env.update(
        DJANGO_SETTINGS_MODULE="controlplane.settings.production",
        FERRY_SECRET_KEY=secrets.token_urlsafe(64),
        FERRY_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        FERRY_VAR_DIR=str(tmp_path),
    )
    return env


def test_check_deploy_under_production_settings_is_clean(tmp_path):
    result = run_manage("check", "--deploy", "--fail-level", "WARNING",
                        env=_production_env(tmp_path))  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output and "ERRORS" not in output


def test_production_settings_refuse_to_start_without_a_secret_key(tmp_path):
    env = _production_env(tmp_path)
    del env["FERRY_SECRET_KEY"]
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "FERRY_SECRET_KEY" in result.stderr


@pytest.mark.parametrize("keys", [None, "", " , "])
def test_production_settings_refuse_to_start_without_encryption_keys(tmp_path, keys):
    env = _production_env(tmp_path)
    del env["FERRY_ENCRYPTION_KEYS"]
    if keys is not None:
        env["FERRY_ENCRYPTION_KEYS"] = keys  # .env.example ships it empty
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "Set the environment variable FERRY_ENCRYPTION_KEYS" in result.stderr


def test_an_invalid_encryption_key_fails_the_check_naming_the_setting(tmp_path):
    env = _production_env(tmp_path)
    good = env["FERRY_ENCRYPTION_KEYS"]
    env["FERRY_ENCRYPTION_KEYS"] = f"{good},not-a-fernet-key"
    result = run_manage("check", "--deploy", env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "ferry.E002" in output
    assert "FERRY_ENCRYPTION_KEYS: key 2 of 2 is not a valid Fernet key" in output
    assert "not-a-fernet-key" not in output and good not in output


def test_the_encryption_key_check_accepts_fernet_keys_only(settings):
    from controlplane.checks import encryption_keys_check

    settings.FERRY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()] * 2
    assert encryption_keys_check(None) == []
    settings.FERRY_ENCRYPTION_KEYS = []
    assert [e.id for e in encryption_keys_check(None)] == ["ferry.E001"]
    settings.FERRY_ENCRYPTION_KEYS = ["x" * 44, secrets.token_urlsafe(32)]
    assert [e.id for e in encryption_keys_check(None)] == ["ferry.E002"] * 2


def test_models_and_migrations_agree():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "controlplane.settings.test"}
    result = run_manage("makemigrations", "--check", "--dry-run", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_the_control_plane_with_production_settings():
    # `docker compose config` needs the compose plugin and an engine, which this
    # machine lacks; the file is checked as YAML against what it must declare.
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "redis", "postgres"} <= set(services)
    assert "gunicorn controlplane.wsgi" in services["web"]["command"]
    assert "celery -A controlplane.celery worker" in services["worker"]["command"]
    assert "celery -A controlplane.celery beat" in services["beat"]["command"]
    for name in ("web", "worker", "beat"):
        service = services[name]
        assert service["env_file"] == ".env"
        settings_module = service["environment"]["DJANGO_SETTINGS_MODULE"]
        assert settings_module == "controlplane.settings.production"
        assert set(service["depends_on"]) == {"postgres", "redis"}
    example = (ROOT / ".env.example").read_text()
    for name in ("FERRY_SECRET_KEY", "FERRY_ENCRYPTION_KEYS", "DATABASE_URL",
                 "REDIS_URL", "FERRY_ALLOWED_HOSTS"):  # fmt: skip
        assert re.search(rf"^{name}=", example, re.MULTILINE), name
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "-r requirements.txt -c constraints.txt" in dockerfile
    assert "collectstatic" in dockerfile and "static/vendor" in dockerfile


def test_the_image_has_git_and_ssh_for_the_worker():
    # The worker fetches project sources with git (ssh:// URLs through ssh);
    # python:3.11-slim has neither.
    dockerfile = (ROOT / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1].replace("\\\n", " ")
    installed = set()
    for line in final_stage.splitlines():
        for command in line.split("&&"):
            words = command.split()
            if words[:1] == ["RUN"]:
                words = words[1:]
            if words[:2] == ["apt-get", "install"]:
                installed |= {w for w in words[2:] if not w.startswith("-")}
    assert {"git", "openssh-client"} <= installed, installed


def test_the_image_build_step_runs_with_only_the_environment_it_declares(tmp_path):
    # The image's compilemessages/collectstatic step loads production settings
    # with nothing but the Dockerfile's own ENV and the RUN line's variables;
    # a setting that becomes required must be given a build-only value there.
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    step = next(line for line in dockerfile.splitlines() if "collectstatic" in line)
    words = shlex.split(step.removeprefix("RUN "))
    assignments = {}
    while "=" in words[0] and not words[0].startswith("-"):
        name, _, value = words.pop(0).partition("=")
        assignments[name] = value
    assert words[:2] == ["sh", "-c"], words
    tree = tmp_path / "app"
    copy_working_tree(tree)
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", **assignments}
    env["DJANGO_SETTINGS_MODULE"] = re.search(
        r"DJANGO_SETTINGS_MODULE=(\S+)", dockerfile
    ).group(1)
    built = subprocess.run(
        words, cwd=tree, env=env, capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert (tree / "staticfiles" / "css" / "ferry.css").is_file()
    assert list((tree / "locale").glob("*/LC_MESSAGES/django.mo"))


def test_readme_begins_with_the_two_commands_and_ci_runs_the_second():
    lines = [line for line in (ROOT / "README.md").read_text().splitlines() if line]
    assert lines[0] == "# Ferry"
    assert lines[1].startswith("```")
    assert lines[2:5] == ["./scripts/setup.sh", "./scripts/test.sh", "```"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.startswith("#!/usr/bin/env bash")
    assert "exec ./scripts/test.sh" in ci
