"""Forms for creating and editing regions and Docker hosts in the UI."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from controlplane.forms import AuditedModelForm

from .models import DockerHost, Region
from .validators import validate_host_connection


class RegionForm(AuditedModelForm):
    class Meta:
        model = Region
        fields = ("slug", "name", "provider", "role")
        labels = {
            "slug": _("Slug"),
            "name": _("Name"),
            "provider": _("Provider"),
            "role": _("Role"),
        }


class HostForm(AuditedModelForm):
    roles = forms.MultipleChoiceField(
        label=_("Roles"),
        choices=DockerHost.HostRole.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = DockerHost
        fields = (
            "region",
            "name",
            "docker_url",
            "roles",
            "tls_ca_cert",
            "tls_client_cert",
            "tls_client_key",
            "ssh_private_key",
            "ssh_known_host_key",
        )
        labels = {
            "region": _("Region"),
            "name": _("Name"),
            "docker_url": _("Docker URL"),
            "tls_ca_cert": _("TLS CA certificate"),
            "tls_client_cert": _("TLS client certificate"),
            "tls_client_key": _("TLS client key"),
            "ssh_private_key": _("SSH private key"),
            "ssh_known_host_key": _("SSH host key"),
        }
        widgets = {
            "tls_ca_cert": forms.Textarea(attrs={"rows": 3}),
            "tls_client_cert": forms.Textarea(attrs={"rows": 3}),
            "ssh_known_host_key": forms.Textarea(attrs={"rows": 2}),
        }

    def clean(self) -> dict:
        """Check URL, TLS files and SSH keys together, as the API does.

        A blank secret means "keep the stored one", so the stored TLS key
        takes part in the certificate/key match and a stored SSH key in the
        "only for ssh://" check.
        """
        data = super().clean()
        if "docker_url" not in data:
            return data
        stored = self.instance if self.instance.pk else DockerHost()
        try:
            validate_host_connection(
                data["docker_url"],
                data.get("tls_ca_cert", ""),
                data.get("tls_client_cert", ""),
                data.get("tls_client_key") or stored.tls_client_key,
                data.get("ssh_private_key") or stored.ssh_private_key,
                data.get("ssh_known_host_key", ""),
            )
        except ValidationError as exc:
            self._add_model_errors(exc)
        return data

    def write(self, actor, target, data: dict, via: str):
        # host_save also resets the observed status when the connection changes.
        from .services import host_save

        return host_save(actor, target, data, via)
