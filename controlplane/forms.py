"""Form pieces shared by pages: secret "replace" inputs and audited saves.

A page form validates input; the write itself goes through
`controlplane.services.object_save`, so the UI, the API and the admin leave the
same AuditEvent and a secret left blank keeps its stored value.
"""

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from .fields import secret_field_names
from .services import object_save


class SecretField(forms.CharField):
    """A password-style input that never shows the stored secret.

    Blank means "keep what is stored"; any value replaces it.
    """

    widget = forms.PasswordInput(
        render_value=False, attrs={"autocomplete": "new-password"}
    )

    def __init__(self, *args, is_set: bool | None = False, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("strip", False)
        super().__init__(*args, **kwargs)
        self.is_set = is_set
        if is_set is None:  # unknown here (e.g. admin inline rows)
            self.help_text = _("Leave blank to keep the stored value.")
        elif is_set:
            self.help_text = _("Set. Leave blank to keep it, or type a new one.")
        else:
            self.help_text = _("Not set.")


class AuditedModelForm(forms.ModelForm):
    """ModelForm whose secret fields are "replace" inputs and whose save is audited.

    `save_audited(actor)` writes through object_save on a fresh copy of the
    row, so the audit diff compares against what is really stored.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        model = self._meta.model
        for name in secret_field_names(model):
            if name in self.fields:
                old = self.fields[name]
                is_set = bool(getattr(self.instance, name, "")) and self.instance.pk
                self.fields[name] = SecretField(label=old.label, is_set=bool(is_set))

    def audited_data(self) -> dict:
        """Cleaned values of the model's own fields (what object_save writes)."""
        names = {f.name for f in self._meta.model._meta.concrete_fields}
        return {k: v for k, v in self.cleaned_data.items() if k in names}

    def save_audited(self, actor, via: str = "ui") -> models.Model | None:
        """Write via object_save; on a model ValidationError, put it on the fields."""
        model = self._meta.model
        if self.instance.pk:
            target = model.objects.get(pk=self.instance.pk)
        else:
            target = model()
        try:
            return self.write(actor, target, self.audited_data(), via)
        except ValidationError as exc:
            self._add_model_errors(exc)
            return None

    def write(self, actor, target: models.Model, data: dict, via: str):
        """The service that stores the row; forms with their own override this."""
        return object_save(actor, target, data, via=via)

    def _add_model_errors(self, exc: ValidationError) -> None:
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc)
            return
        for field, errors in exc.error_dict.items():
            self.add_error(field if field in self.fields else None, errors)
