"""Page tests: login, overview cards, host pages, roles, audit, tokens, Chinese."""

import pytest
from django.urls import reverse
from django.utils import timezone

from controlplane.models import ApiToken, AuditEvent, hash_token
from regions.models import DockerHost, HostStatus, Region

pytestmark = pytest.mark.django_db


def test_every_page_needs_login(client):
    for name in ("regions:overview", "regions:host_list", "audit_log", "token_list"):
        response = client.get(reverse(name))
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("login")), name


def test_login_lands_on_the_overview_with_the_demo_regions(client, demo, viewer):
    response = client.post(
        reverse("login"), {"username": "vera", "password": "pw-vera"}, follow=True
    )
    assert response.request["PATH_INFO"] == "/"
    html = response.content.decode()
    for slug, name in (
        ("cn-hangzhou", "Hangzhou"),
        ("cn-hongkong", "Hong Kong"),
        ("us-west-1", "Silicon Valley"),
    ):
        assert f'id="region-{slug}"' in html
        assert name in html


def test_overview_card_counts_hosts_up_and_down(viewer_client, demo):
    region = Region.objects.get(slug="cn-hongkong")
    DockerHost.objects.filter(region=region).update(status=HostStatus.UP)
    DockerHost.objects.create(
        region=region, name="hk-2", docker_url="tcp://h:2376", status="unreachable"
    )
    response = viewer_client.get(reverse("regions:overview"))
    card = response.context["cards"]
    hk = next(c for c in card if c["region"].slug == "cn-hongkong")
    assert (hk["hosts_up"], hk["hosts_down"], hk["hosts_total"]) == (1, 1, 2)
    assert hk["hit_rate"] is None and hk["last_build"] is None
    html = response.content.decode()
    section = html[html.index('id="region-cn-hongkong"') :]
    section = section[: section.index("</section>")]
    assert 'data-testid="hosts-down">1<' in section
    assert 'data-testid="last-deploy">—<' in section.replace("\n", "")


def test_host_page_shows_status_engine_and_the_reason_it_is_down(viewer_client, demo):
    host = DockerHost.objects.get(name="hk-demo-1")
    host.status = HostStatus.UNREACHABLE
    host.last_error = "Cannot connect: [Errno 111] Connection refused"
    host.engine_version = "26.1.5"
    host.last_checked = timezone.now()
    host.save()
    html = viewer_client.get(reverse("regions:host_detail", args=[host.pk])).content
    html = html.decode()
    assert "Unreachable" in html
    assert "Connection refused" in html
    assert "26.1.5" in html
    assert (
        'hx-trigger="every 5s [document.visibilityState === &#x27;visible&#x27;]"'
        in html
    )

    rows = viewer_client.get(reverse("regions:host_list")).content.decode()
    assert "Connection refused" in rows and "hk-demo-1" in rows


def test_host_fragments_render_alone_for_htmx(viewer_client, demo):
    host = DockerHost.objects.get(name="hk-demo-1")
    headers = {"HX-Request": "true", "HX-Target": "host-rows"}
    rows = viewer_client.get(reverse("regions:host_list"), headers=headers)
    body = rows.content.decode()
    assert body.lstrip().startswith("<tbody") or 'id="host-rows"' in body[:300]
    assert "<html" not in body and "hk-demo-1" in body

    headers = {"HX-Request": "true", "HX-Target": "host-status"}
    status = viewer_client.get(
        reverse("regions:host_detail", args=[host.pk]), headers=headers
    )
    body = status.content.decode()
    assert 'id="host-status"' in body and "<html" not in body


def test_host_secret_is_shown_only_as_set(admin_role_client, demo):
    host = DockerHost.objects.get(name="hk-demo-1")
    host.tls_client_key = "-----BEGIN PRIVATE KEY-----SECRETVALUE"
    host.save()
    html = admin_role_client.get(reverse("regions:host_detail", args=[host.pk])).content
    assert b"SECRETVALUE" not in html
    assert b'data-testid="secret-tls_client_key"><span class="secret-set">' in html
    edit = admin_role_client.get(reverse("regions:host_edit", args=[host.pk])).content
    assert b"SECRETVALUE" not in edit


def test_viewer_sees_no_write_buttons_and_gets_403(viewer_client, demo):
    host = DockerHost.objects.get(name="hk-demo-1")
    pages = [
        reverse("regions:overview"),
        reverse("regions:host_list"),
        reverse("regions:host_detail", args=[host.pk]),
    ]
    for url in pages:
        html = viewer_client.get(url).content.decode()
        for marker in ("Add host", "Add region", "Check now", "/edit/"):
            assert marker not in html, (url, marker)
    posts = [
        (reverse("regions:host_create"), {"name": "x"}),
        (reverse("regions:host_edit", args=[host.pk]), {"name": "x"}),
        (reverse("regions:host_check", args=[host.pk]), {}),
        (reverse("regions:host_delete", args=[host.pk]), {}),
        (reverse("regions:region_create"), {"slug": "x"}),
        (reverse("regions:region_edit", args=["cn-hongkong"]), {"slug": "x"}),
        (reverse("regions:region_delete", args=["cn-hongkong"]), {}),
    ]
    for url, data in posts:
        assert viewer_client.post(url, data).status_code == 403, url
    assert viewer_client.get(reverse("regions:host_create")).status_code == 403
    assert DockerHost.objects.filter(pk=host.pk, name="hk-demo-1").exists()


def test_operator_sees_check_now_but_cannot_edit(operator_client, demo):
    host = DockerHost.objects.get(name="hk-demo-1")
    html = operator_client.get(reverse("regions:host_detail", args=[host.pk])).content
    assert b"Check now" in html and b"/edit/" not in html
    url = reverse("regions:host_edit", args=[host.pk])
    assert operator_client.post(url, {"name": "x"}).status_code == 403


def test_admin_creates_a_host_and_the_write_is_audited(admin_role_client, demo):
    region = Region.objects.get(slug="cn-hongkong")
    response = admin_role_client.post(
        reverse("regions:host_create"),
        {
            "region": region.pk,
            "name": "hk-2",
            "docker_url": "tcp://127.0.0.9:2376",
            "roles": ["app"],
            "tls_client_key": "",
        },
    )
    host = DockerHost.objects.get(name="hk-2")
    assert response.status_code == 302
    assert response["Location"] == reverse("regions:host_detail", args=[host.pk])
    assert host.roles == ["app"]
    event = AuditEvent.objects.get(
        object_type="regions.dockerhost", object_id=str(host.pk)
    )
    assert event.actor_name == "ada" and event.action == "create" and event.via == "ui"
    audit = admin_role_client.get(reverse("audit_log")).content.decode()
    assert "hk-2" in audit and "docker_url" in audit


def test_bad_docker_url_shows_on_the_field_and_saves_nothing(admin_role_client, demo):
    host = DockerHost.objects.get(name="hk-demo-1")
    response = admin_role_client.post(
        reverse("regions:host_edit", args=[host.pk]),
        {"region": host.region_id, "name": host.name, "docker_url": "http://nope"},
    )
    assert response.status_code == 200
    assert "docker_url" in response.context["form"].errors
    html = response.content.decode()
    field = html[html.index('id="field-docker_url"') :]
    field = field[: field.index('id="field-', 10)]
    assert "unix://, tcp:// or ssh://" in field and "errorlist" in field
    host.refresh_from_db()
    assert host.docker_url == "unix:///var/run/docker.sock"


def client_cert_and_key() -> tuple[str, str]:
    """A self-signed client certificate and its key, as PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")])
    now = timezone.now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timezone.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode().strip()
    return cert_pem, key_pem.decode()


def test_blank_secret_keeps_the_stored_key_on_edit(admin_role_client, demo):
    cert, key = client_cert_and_key()
    host = DockerHost.objects.get(name="hk-demo-1")
    host.docker_url, host.tls_client_cert, host.tls_client_key = (
        "tcp://h:2376",
        cert,
        key,
    )
    host.save()
    form = {
        "region": host.region_id,
        "name": "renamed",
        "docker_url": host.docker_url,
        "tls_client_cert": cert,
        "tls_client_key": "",
        "roles": ["registry", "app"],
    }
    response = admin_role_client.post(
        reverse("regions:host_edit", args=[host.pk]), form
    )
    assert response.status_code == 302
    host.refresh_from_db()
    assert host.name == "renamed" and host.tls_client_key == key
    event = AuditEvent.objects.filter(object_id=str(host.pk), action="update").get()
    assert event.changes == {"name": ["hk-demo-1", "renamed"]}


def test_a_key_that_does_not_match_the_certificate_is_a_field_error(
    admin_role_client, demo
):
    cert, _key = client_cert_and_key()
    _cert, other_key = client_cert_and_key()
    host = DockerHost.objects.get(name="hk-demo-1")
    form = {
        "region": host.region_id,
        "name": host.name,
        "docker_url": "tcp://h:2376",
        "tls_client_cert": cert,
        "tls_client_key": other_key,
    }
    response = admin_role_client.post(
        reverse("regions:host_edit", args=[host.pk]), form
    )
    assert "tls_client_key" in response.context["form"].errors
    assert other_key not in response.content.decode()
    host.refresh_from_db()
    assert host.tls_client_key == "" and host.docker_url.startswith("unix://")


def test_duplicate_region_slug_is_a_field_error(admin_role_client, demo):
    response = admin_role_client.post(
        reverse("regions:region_create"),
        {"slug": "cn-hongkong", "name": "again", "provider": "aliyun", "role": "edge"},
    )
    assert response.status_code == 200
    assert "slug" in response.context["form"].errors


def test_region_in_use_is_not_deleted(admin_role_client, demo):
    response = admin_role_client.post(
        reverse("regions:region_delete", args=["cn-hongkong"]), follow=True
    )
    assert Region.objects.filter(slug="cn-hongkong").exists()
    assert b"still in use" in response.content


def test_audit_page_filters_by_object_type(viewer_client, demo):
    response = viewer_client.get(
        reverse("audit_log"), {"object_type": "regions.region"}
    )
    types = {e.object_type for e in response.context["page"]}
    assert types == {"regions.region"}


def test_token_is_shown_once_and_stored_hashed(viewer_client, viewer):
    response = viewer_client.post(reverse("token_list"), {"name": "ci"})
    raw = response.context["raw"]
    assert raw and raw in response.content.decode()
    token = ApiToken.objects.get(user=viewer)
    assert token.token_hash == hash_token(raw)
    again = viewer_client.get(reverse("token_list")).content.decode()
    assert raw not in again and token.prefix in again
    viewer_client.post(reverse("token_revoke", args=[token.pk]))
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_token_without_a_name_is_refused(viewer_client, viewer):
    response = viewer_client.post(reverse("token_list"), {"name": "  "})
    assert response.context["error"]
    assert not ApiToken.objects.filter(user=viewer).exists()


def test_user_cannot_revoke_someone_elses_token(viewer_client, operator):
    from controlplane.tokens import token_create

    token, _ = token_create(operator, "theirs")
    response = viewer_client.post(reverse("token_revoke", args=[token.pk]))
    assert response.status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None


def test_chinese_pages_render_translated_strings(viewer_client, demo):
    viewer_client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    html = viewer_client.get(reverse("regions:overview")).content.decode()
    assert 'lang="zh-hans"' in html
    assert "概览" in html and "主机" in html
    assert "Overview" not in html.replace('lang="en"', "")
    host = DockerHost.objects.first()
    html = viewer_client.get(reverse("regions:host_detail", args=[host.pk])).content
    assert "引擎版本".encode() in html


def test_check_now_records_the_reason_a_host_is_unreachable(operator_client, demo):
    """A real check through the docker adapter against a socket that is not there."""
    host = DockerHost.objects.get(name="hk-demo-1")
    DockerHost.objects.filter(pk=host.pk).update(
        docker_url="unix:///nonexistent/ferry-test/docker.sock"
    )
    url = reverse("regions:host_check", args=[host.pk])
    response = operator_client.post(url, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert 'id="host-status"' in body and "<html" not in body
    assert "Unreachable" in body
    host.refresh_from_db()
    assert host.status == HostStatus.UNREACHABLE and host.last_error
    assert host.last_error[:40] in body
    event = AuditEvent.objects.get(action="check", object_id=str(host.pk))
    assert event.actor_name == "otto"


def test_region_card_fills_hit_rate_last_build_and_last_deploy(viewer_client, demo):
    """The slots come from the other apps' rows: samples, builds, rollouts."""
    import uuid

    from builds.models import Build, BuildCluster, Project
    from deployments.models import Rollout, Service
    from registries.models import Registry, RegistrySample

    region = Region.objects.get(slug="cn-hongkong")
    host = region.hosts.get()
    mirror = Registry.objects.create(
        region=region,
        host=host,
        name="hk-mirror",
        kind="mirror",
        store=region.stores.get(),
    )
    RegistrySample.objects.create(
        registry=mirror, sampled_at=timezone.now(), requests=8, misses=2, hits=6
    )
    cluster = BuildCluster.objects.create(region=region, host=host, name="hk-build")
    project = Project.objects.create(
        cluster=cluster, name="api", git_url="/srv/api.git", image_repository="team/api"
    )
    Build.objects.create(
        id=uuid.uuid4(), project=project, number=7, ref="main", status="succeeded"
    )
    service = Service.objects.create(name="web", project=project)
    service.regions.add(region)
    Rollout.objects.create(service=service, image="team/api:7", status="running")

    html = viewer_client.get(reverse("regions:overview")).content.decode()
    card = html[html.index('id="region-cn-hongkong"') :]
    card = " ".join(card[: card.index("</section>")].split())
    assert 'data-testid="hit-rate">75.0%<' in card
    assert "api#7" in card and "Succeeded" in card
    assert ">web<" in card or "web" in card.split('data-testid="last-deploy"')[1]
    other = html[html.index('id="region-cn-hangzhou"') :]
    other = " ".join(other[: other.index("</section>")].split())
    assert 'data-testid="hit-rate">—<' in other
