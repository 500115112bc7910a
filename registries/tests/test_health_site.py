"""Health on a site Ferry applied: each red case shows its reason on the page.

One mirror (gateway + registry + nginx, TLS from the test CA, htpasswd, S3
on moto), mutated in turn: a certificate about to expire, a rotated
password, nginx stopped, the bucket deleted.
"""

import re
from datetime import timedelta

import boto3
import pytest
import requests
from django.test import Client
from django.utils import timezone

from controlplane.testing import tls as test_tls
from controlplane.testing.wait import wait_for
from controlplane.tests.apiclient import token_client
from registries import tls
from registries.metrics import container_name

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def page_of(registry, user) -> str:
    browser = Client()
    browser.force_login(user)
    return browser.get(f"/registries/{registry.pk}/").content.decode()


def page_checks(registry, user) -> dict[str, str]:
    """{check name: reason} of the failed checks the detail page shows."""
    html = page_of(registry, user)
    failed = re.findall(
        r"<dt>(\w+)</dt><dd><span class=\"badge badge-bad\">[^<]*</span>\s*"
        r'<span class="error-text small" data-testid="check-reason">([^<]*)</span>',
        html,
    )
    return dict(failed)


def v2_status(registry, user: str, password: str, ca_file: str) -> int:
    url = f"https://127.0.0.1:{registry.https_port}/v2/"
    return requests.get(
        url, auth=(user, password), verify=ca_file, timeout=10
    ).status_code


def check(client, registry) -> None:
    response = client.post(f"/api/v1/registries/{registry.pk}/check/")
    assert response.status_code == 200, response.json()


def empty_and_delete(store) -> None:
    s3 = boto3.client(
        "s3", endpoint_url=store.endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=store.bucket):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=store.bucket, Key=item["Key"])
    s3.delete_bucket(Bucket=store.bucket)


def test_red_health_cases_show_their_reason_on_the_page(
    site, dockerd, test_ca, cert_dir, viewer, monkeypatch
):
    mirror, ca_file = site.mirror, f"{cert_dir}/ca.crt"
    operator = token_client("operator")
    # A certificate from the test CA that lives 5 days.
    monkeypatch.setattr(test_tls, "VALIDITY", timedelta(days=5))
    cert, key = test_ca.issue(("127.0.0.1", "localhost"))
    admin = token_client("admin")
    uploaded = admin.patch(
        f"/api/v1/registries/{mirror.pk}/",
        {"tls_certificate": cert.decode(), "tls_private_key": key.decode()},
        format="json",
    )
    assert uploaded.status_code == 200, uploaded.json()
    applied = operator.post(f"/api/v1/registries/{mirror.pk}/apply/?wait=1")
    assert applied.status_code == 200, applied.json()
    days = tls.days_left(cert.decode(), timezone.now())
    assert days < 14
    assert page_checks(mirror, viewer) == {"certificate": f"expires in {days} days"}
    days_shown = f'<span class="error-text" data-testid="tls-days">{days} days left'
    html = page_of(mirror, viewer)
    assert days_shown in html
    assert applied.json()["status"] == "degraded"
    assert f"certificate: expires in {days} days" in applied.json()["last_error"]

    # A rotated password: after the apply, the old one is refused.
    rotated = admin.post(
        f"/api/v1/registries/{mirror.pk}/rotate-password/", {"username": "ops"}
    )
    assert rotated.status_code == 200, rotated.json()
    new = rotated.json()["password"]
    again = operator.post(f"/api/v1/registries/{mirror.pk}/apply/?wait=1")
    assert again.status_code == 200, again.json()
    assert v2_status(mirror, "ops", site.password, ca_file) == 401
    assert v2_status(mirror, "ops", new, ca_file) == 200

    nginx = dockerd.client.containers.get(container_name(mirror.pk, "nginx"))
    nginx.stop(timeout=2)
    check(operator, mirror)
    red = page_checks(mirror, viewer)
    assert set(red) == {"containers", "endpoint", "certificate"}, red
    assert red["containers"] == f"not running: {nginx.name}"
    assert f"127.0.0.1:{mirror.https_port}" in red["endpoint"]
    nginx.start()
    wait_for(lambda: v2_status(mirror, "ops", new, ca_file) == 200, timeout=30)

    empty_and_delete(site.store)
    check(operator, mirror)
    red = page_checks(mirror, viewer)
    assert set(red) == {"storage", "certificate"}, red
    assert red["storage"].startswith("bucket: bucket missing"), red
