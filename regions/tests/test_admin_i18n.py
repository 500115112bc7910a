"""The admin speaks Chinese too: app, model and field names come from the
translated verbose names, not from the Python identifiers."""

import pytest
from django.urls import reverse
from django.utils import translation

from regions.models import DockerHost
from registries.models import ObjectStore

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _restore_language():
    """Chinese requests leave the thread's language active; later tests
    (which make no request) expect the English they started with."""
    with translation.override(translation.get_language()):
        yield


def _chinese(client):
    client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    return client


def test_admin_index_names_apps_and_models_in_chinese(admin_role_client):
    english = admin_role_client.get(reverse("admin:index")).content.decode()
    # English keeps readable names (not "Api tokens" or "CONTROLPLANE").
    assert "Control plane" in english and "API tokens" in english
    assert "Docker hosts" in english and "Api tokens" not in english

    html = _chinese(admin_role_client).get(reverse("admin:index")).content.decode()
    for text in ("控制平面", "API 令牌", "区域", "Docker 主机", "镜像仓库", "构建集群"):
        assert text in html, text
    for text in ("Control plane", "Docker hosts", "Api tokens", "Build clusters"):
        assert text not in html, text


def test_host_change_page_labels_fields_in_chinese(admin_role_client, demo):
    host = DockerHost.objects.first()
    url = reverse("admin:regions_dockerhost_change", args=[host.pk])
    html = _chinese(admin_role_client).get(url).content.decode()
    # A plain field, a secret ("replace" input) and a read-only field.
    for text in ("Docker 地址", "TLS 客户端私钥", "引擎版本"):
        assert text in html, text
    for text in ("Docker url", "Docker URL", "Tls client key", "TLS client key"):
        assert f">{text}" not in html, text


def test_store_change_page_labels_fields_in_chinese(admin_role_client, demo):
    store = ObjectStore.objects.first()
    url = reverse("admin:registries_objectstore_change", args=[store.pk])
    html = _chinese(admin_role_client).get(url).content.decode()
    assert "HTTP 密钥" in html and "对象存储" in html
    assert ">Http secret" not in html and ">HTTP secret" not in html
