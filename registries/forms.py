"""Forms of the registry pages: registries, object stores, prewarm, passwords.

Secrets are "replace" inputs (blank keeps the stored value, pages only say
set / not set). Writes go through the registries services when they exist,
else through the generic audited object_save.
"""

from typing import ClassVar

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from adapters.object_storage import check_store
from controlplane.forms import AuditedModelForm

from . import services
from .models import ObjectStore, Registry
from .prewarm import known_hosts, parse_reference


class RegistryForm(AuditedModelForm):
    class Meta:
        model = Registry
        fields = (
            "region",
            "host",
            "name",
            "kind",
            "store",
            "image",
            "upstream_url",
            "upstream_username",
            "upstream_password",
            "listen_address",
            "port",
            "https_port",
            "debug_port",
            "public_hostname",
            "tls_certificate",
            "tls_private_key",
            "require_auth",
            "gateway_enabled",
            "gateway_port",
            "gateway_cache_max_mb",
        )
        labels: ClassVar[dict] = {
            "region": _("Region"),
            "host": _("Docker host"),
            "name": _("Name"),
            "kind": _("Kind"),
            "store": _("Object store"),
            "image": _("Registry image"),
            "upstream_url": _("Upstream URL"),
            "upstream_username": _("Upstream username"),
            "upstream_password": _("Upstream password"),
            "listen_address": _("Listen address"),
            "port": _("Registry port"),
            "https_port": _("HTTPS port (nginx)"),
            "debug_port": _("Debug port"),
            "public_hostname": _("Public host name"),
            "tls_certificate": _("TLS certificate (PEM)"),
            "tls_private_key": _("TLS private key (PEM)"),
            "require_auth": _("Require authentication"),
            "gateway_enabled": _("Cache in the upstream gateway"),
            "gateway_port": _("Gateway port"),
            "gateway_cache_max_mb": _("Gateway cache size (MB)"),
        }
        help_texts: ClassVar[dict] = {
            "image": _("Empty: the default image from the settings."),
            "upstream_url": _("Mirrors only: the registry this one proxies."),
            "tls_certificate": _("Empty: Ferry generates a self-signed pair."),
            "https_port": _("Empty: a free port is chosen on apply."),
        }
        widgets: ClassVar[dict] = {"tls_certificate": forms.Textarea(attrs={"rows": 4})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Blank: the service picks a port no other registry on the host uses.
        self.fields["port"].required = False
        self.fields["port"].help_text = _("Empty: a free port is chosen.")

    def clean_port(self) -> int:
        return self.cleaned_data.get("port") or 0

    def write(self, actor, target, data, via):
        return services.registry_save(actor, target, data, via=via)


class ObjectStoreForm(AuditedModelForm):
    check_storage = forms.BooleanField(
        label=_("Check the credentials and the bucket before saving"),
        required=False,
        initial=True,
    )

    class Meta:
        model = ObjectStore
        fields = (
            "region",
            "name",
            "kind",
            "endpoint",
            "internal_endpoint",
            "bucket",
            "s3_region",
            "root_directory",
            "access_key_id",
            "secret_access_key",
        )
        labels: ClassVar[dict] = {
            "region": _("Region"),
            "name": _("Name"),
            "kind": _("Kind"),
            "endpoint": _("Endpoint"),
            "internal_endpoint": _("Internal (VPC) endpoint"),
            "bucket": _("Bucket"),
            "s3_region": _("S3 region"),
            "root_directory": _("Root directory"),
            "access_key_id": _("Access key ID"),
            "secret_access_key": _("Secret access key"),
        }
        help_texts: ClassVar[dict] = {
            "endpoint": _("e.g. oss-cn-hongkong.aliyuncs.com or http://s3.local:9000"),
            "root_directory": _(
                "Key prefix in the bucket; for a filesystem store, an absolute "
                "path on the Docker host."
            ),
        }

    def clean(self) -> dict:
        """With "check" ticked, try the store as it would be saved; say which
        field is wrong (endpoint, credentials, bucket) and why."""
        cleaned = super().clean()
        if self.errors or not cleaned.get("check_storage"):
            return cleaned
        candidate = ObjectStore(**self.audited_data())
        if not candidate.secret_access_key and self.instance.pk:
            stored = ObjectStore.objects.get(pk=self.instance.pk)
            candidate.secret_access_key = stored.secret_access_key
        result = check_store(candidate)
        if not result.ok:
            field = result.field if result.field in self.fields else None
            self.add_error(field, _("Storage check failed: %s") % result.reason)
        return cleaned


class PrewarmForm(forms.Form):
    image = forms.CharField(
        label=_("Image"),
        max_length=300,
        help_text=_("repository[:tag][@digest] as the upstream names it"),
    )

    def __init__(self, *args, registry: Registry, **kwargs):
        super().__init__(*args, **kwargs)
        self.registry = registry

    def clean_image(self) -> str:
        try:
            parse_reference(self.cleaned_data["image"], known_hosts(self.registry))
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["image"]) from exc
        return self.cleaned_data["image"].strip()


class RotatePasswordForm(forms.Form):
    username = forms.ChoiceField(label=_("User"))

    def __init__(self, *args, registry: Registry, **kwargs):
        super().__init__(*args, **kwargs)
        names = registry.users.values_list("username", flat=True)
        self.fields["username"].choices = [(n, n) for n in names]
