"""Every URL, every role, good and bad requests: never a 500.

The URL list is read from the resolver, so a new page or endpoint is crawled
without being added here. Each role GETs every page and endpoint of a small
topology, then POSTs (and for the API also PUTs, PATCHes and DELETEs) empty
and malformed bodies. What is asserted: no 5xx anywhere; viewers are refused
every write; nothing a viewer tried changed the database; a user without a
role is refused everything, reads included (403).

Docker hosts point at a socket that does not exist, and Celery tasks are
published on commit (which never happens inside a test transaction), so the
crawl touches no engine and no broker.
"""

import json
import re
import uuid

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from builds.models import Build, BuildAgent, BuildCluster, BuildStatus, Project
from controlplane.models import AuditEvent
from controlplane.testing.users import user_with_role
from controlplane.tokens import token_create
from deployments.models import Rollout, Service
from regions.models import DockerHost, Region
from registries.models import ObjectStore, Registry, RegistryUser

pytestmark = pytest.mark.django_db

# Bodies no form or serializer should accept, and none should crash on.
GARBAGE = {
    "name": "",
    "slug": "Not A Slug!",
    "region": "no-such-region",
    "host": 10**12,
    "store": "x",
    "cluster": -1,
    "docker_url": "nope://here",
    "kind": "bogus",
    "port": "eighty",
    "image": "::bad::ref::",
    "ref": "a" * 5000,
    "upstream_url": "not a url",
    "git_url": "javascript:alert(1)",
    "concurrency": 0,
    "replicas": -3,
    "tls_certificate": "-----BEGIN CERTIFICATE-----\nnope\n",
}
SKIPPED = {"logout", "set_language", "login", "api-schema", "api-docs"}


def url_names():
    """(name, kwarg names) of every named non-admin URL, once per name."""

    def walk(resolver, namespace=""):
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                inner = entry.namespace or ""
                prefix = f"{namespace}{inner}:" if inner else namespace
                if inner != "admin":
                    yield from walk(entry, prefix)
            elif isinstance(entry, URLPattern) and entry.name:
                if "format" in entry.pattern.regex.groupindex:
                    continue
                yield namespace + entry.name, tuple(entry.pattern.regex.groupindex)

    seen = {}
    for name, kwargs in walk(get_resolver()):
        seen.setdefault(name, kwargs)
    return sorted(
        (name, kwargs)
        for name, kwargs in seen.items()
        if name.rsplit(":", 1)[-1] not in SKIPPED
    )


@pytest.fixture
def topology():
    call_command("seed_demo", verbosity=0)
    region = Region.objects.get(slug="cn-hongkong")
    host = DockerHost.objects.filter(region=region).first()
    host.docker_url = "unix:///nonexistent/ferry-crawl.sock"
    host.save()
    store = ObjectStore.objects.filter(region=region).first()
    registry = Registry.objects.create(
        region=region, host=host, name="hk-mirror", kind="mirror", store=store,
        upstream_url="https://127.0.0.1:5999", port=15000, https_port=15443,
    )  # fmt: skip
    RegistryUser.objects.create(registry=registry, username="puller")
    cluster = BuildCluster.objects.create(region=region, host=host, name="builders")
    agent = BuildAgent.objects.create(
        cluster=cluster, kind="java", image="maven:3", cache_paths=["/root/.m2"]
    )
    project = Project.objects.create(
        cluster=cluster, name="shop", git_url="file:///srv/shop.git",
        image_repository="team/shop",
    )  # fmt: skip
    build = Build.objects.create(
        id=uuid.uuid4(), project=project, agent=agent, number=1, ref="main",
        status=BuildStatus.RUNNING, log="step 1\n",
    )  # fmt: skip
    service = Service.objects.create(name="shop", project=project, image="team/shop")
    rollout = Rollout.objects.create(service=service, image="team/shop:1")
    owner = user_with_role("crawl-owner", "admin")
    token, _plaintext = token_create(owner, "crawl")
    event = AuditEvent.objects.order_by("-pk").first()
    return {
        "region": region, "host": host, "store": store, "registry": registry,
        "cluster": cluster, "agent": agent, "project": project, "build": build,
        "service": service, "rollout": rollout, "token": token, "event": event,
    }  # fmt: skip


# The URLs behind them (pages and API); an operator may still check a host,
# apply or prewarm a registry and provision a cluster.
ADMIN_ONLY_URLS = (
    "region-list", "region-detail", "host-list", "host-detail",
    "object-store-list", "object-store-detail", "registry-list", "registry-detail",
    "registry-rotate-password", "build-cluster-list", "build-cluster-detail",
    "build-agent-list", "build-agent-detail", "regions:host_create",
    "regions:host_edit", "regions:host_delete", "regions:region_create",
    "regions:region_edit", "regions:region_delete", "registries:registry_create",
    "registries:registry_edit", "registries:registry_delete",
    "registries:registry_rotate_password", "registries:store_create",
    "registries:store_edit", "registries:store_delete", "builds:cluster_create",
    "builds:cluster_edit", "builds:agent_create", "builds:agent_edit",
    "builds:agent_delete",
)  # fmt: skip


def admin_only(path: str, objects: dict) -> bool:
    return any(
        path_of(name, kwargs, objects) == path
        for name, kwargs in url_names()
        if name in ADMIN_ONLY_URLS
    )


# Which object a URL's kwargs name, by the URL's name (pages) or basename (API).
OBJECT_OF = (
    (r"^region-|:region_", "region"),
    (r"host", "host"),
    (r"store|object-store", "store"),
    (r"registr|notifications", "registry"),
    (r"cluster", "cluster"),
    (r"agent", "agent"),
    (r"project", "project"),
    (r"build", "build"),
    (r"service", "service"),
    (r"rollout", "rollout"),
    (r"token", "token"),
    (r"audit", "event"),
)


def path_of(name: str, kwargs: tuple, objects: dict) -> str:
    if not kwargs:
        return reverse(name)
    key = next(key for pattern, key in OBJECT_OF if re.search(pattern, name))
    target = objects[key]
    values = {}
    for kwarg in kwargs:
        values[kwarg] = target.slug if kwarg == "slug" else target.pk
    if key == "region" and "pk" in kwargs:
        values["pk"] = _region_lookup(target)
    return reverse(name, kwargs=values)


def _region_lookup(region):
    from regions.api import RegionViewSet

    return getattr(region, getattr(RegionViewSet, "lookup_field", "pk"))


def crawl(client: Client, objects: dict, writes: bool, watch=False) -> list[tuple]:
    """(method, path, status, audited) of every request; deletes and revokes
    go last. `audited` is None when the request changed nothing in the
    database (or `watch` is off: it is slow), else whether it added an
    AuditEvent."""
    seen = []
    urls = [(name, kw, path_of(name, kw, objects)) for name, kw in url_names()]
    urls.sort(key=lambda url: ("delete" in url[0] or "revoke" in url[0], url[2]))
    for _name, _kwargs, path in urls:
        seen.append(("GET", path, client.get(path).status_code, None))
        if writes:
            seen.extend(bad_writes(client, path, watch))
    if writes:
        for _name, kwargs, path in urls:
            if path.startswith("/api/") and kwargs:
                seen.append(
                    send("DELETE", path, lambda p=path: client.delete(p), watch)
                )
    return seen


def send(label: str, path: str, request, watch: bool) -> tuple:
    """Make one write request; see crawl() for the row it returns."""
    if not watch:
        return (label, path, request().status_code, None)
    rows, events = database_state(), AuditEvent.objects.count()
    status = request().status_code
    changed = database_state() != rows
    return (
        label,
        path,
        status,
        AuditEvent.objects.count() > events if changed else None,
    )


def bad_writes(client: Client, path: str, watch: bool) -> list[tuple]:
    seen = [
        send("POST", path, lambda: client.post(path, GARBAGE), watch),
        send("POST", path, lambda: client.post(path, {}), watch),
    ]
    if not path.startswith("/api/"):
        return seen
    for method in ("post", "put", "patch"):
        request = getattr(client, method)
        for label, body in (("garbage", json.dumps(GARBAGE)), ("bad json", "{x")):
            seen.append(
                send(
                    f"{method.upper()} {label}",
                    path,
                    lambda r=request, b=body: r(
                        path, b, content_type="application/json"
                    ),
                    watch,
                )
            )
    return seen


def server_errors(seen: list[tuple]) -> list[tuple]:
    return [row for row in seen if row[2] >= 500]


FERRY_APPS = {"regions", "registries", "builds", "deployments"}


def database_rows(labels=None) -> dict:
    from django.apps import apps

    return {
        model._meta.label: model.objects.count()
        for model in apps.get_models()
        if model._meta.app_label in FERRY_APPS
        and (labels is None or model._meta.label in labels)
    }


def database_state() -> dict:
    """Every value of every Ferry row (audit events aside), to see any write."""
    from django.apps import apps

    return {
        model._meta.label: list(model.objects.order_by("pk").values_list())
        for model in apps.get_models()
        if model._meta.app_label in FERRY_APPS | {"controlplane"}
        and model is not AuditEvent
    }


# What only admins manage (hosts, storage and its secrets, registries and
# their users, clusters and agents): an operator's writes must not touch them.
ADMIN_ONLY = {
    "regions.Region", "regions.DockerHost", "registries.ObjectStore",
    "registries.Registry", "registries.RegistryUser", "builds.BuildCluster",
    "builds.BuildAgent",
}  # fmt: skip


def test_the_crawl_reaches_every_kind_of_url(topology):
    names = {name for name, _kwargs in url_names()}
    assert {"regions:host_detail", "registries:registry_detail"} <= names
    assert {"builds:build_detail", "registry-stats", "rollout-detail"} <= names
    assert len(names) > 60


@pytest.mark.parametrize("role", ["viewer", "operator", "admin", None])
def test_no_page_or_endpoint_answers_500_to_any_role(topology, role):
    client = Client(raise_request_exception=False)
    client.force_login(user_with_role(f"crawl-{role}", role))
    before = database_rows()

    seen = crawl(client, topology, writes=True, watch=role in ("operator", "admin"))

    assert server_errors(seen) == []
    unaudited = [row for row in seen if row[3] is False]
    assert unaudited == [], "writes without an audit event:\n" + "\n".join(
        map(str, unaudited)
    )
    if role == "operator":
        assert database_rows(ADMIN_ONLY) == {k: before[k] for k in ADMIN_ONLY}
        let_through = [
            row for row in seen if row[0] != "GET" and admin_only(row[1], topology)
            and row[2] != 403
        ]  # fmt: skip
        assert let_through == [], "\n".join(map(str, let_through))
    if role in ("viewer", None):
        writes = [row for row in seen if row[0] != "GET"]
        # Viewers manage their own API tokens (the form answers 200 with errors).
        accepted = [row for row in writes if row[2] < 400 and row[1] != "/tokens/"]
        assert accepted == [], "\n".join(map(str, accepted))
        assert database_rows() == before
    if role is None:
        # No role, no reads either: pages, fragments and the API alike, and no
        # tokens. The registries' notification endpoint answers machines only.
        let_through = [
            row
            for row in seen
            if row[2] != 403 and not row[1].startswith("/registries/notify/")
        ]
        assert let_through == [], "\n".join(map(str, let_through))


def test_anonymous_requests_are_sent_to_login_or_refused(topology):
    client = Client(raise_request_exception=False)
    seen = crawl(client, topology, writes=False)
    assert server_errors(seen) == []
    for _method, path, status, _audited in seen:
        if path.startswith("/api/"):
            assert status in (401, 403), path
        elif path.startswith("/registries/notify/"):
            assert status == 405, path  # POST only, with the registry's token
        else:
            assert status == 302, path


ASSET = re.compile(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=[\"']([^\"']+)", re.I)


def test_no_page_loads_anything_from_another_site(topology):
    # Pages work on a closed network: htmx, Chart.js and the API docs' assets
    # are served by Ferry itself.
    client = Client(raise_request_exception=False)
    client.force_login(user_with_role("crawl-assets", "admin"))
    foreign = []
    for name, kwargs in url_names() + [("api-docs", ())]:
        response = client.get(path_of(name, kwargs, topology))
        if "html" not in response.get("Content-Type", ""):
            continue
        for url in ASSET.findall(response.content.decode()):
            if re.match(r"^(?:[a-z][a-z0-9+.-]*:|//)", url, re.I):
                foreign.append((name, url))
    assert foreign == []
