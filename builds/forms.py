"""Forms of the build pages."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from .services import validate_ref


class BuildTriggerForm(forms.Form):
    """The build button's ref field; empty means the project's default ref."""

    ref = forms.CharField(
        label=_("Ref"),
        required=False,
        max_length=200,
        help_text=_("Branch, tag or commit. Empty: the project's default ref."),
    )

    def clean_ref(self) -> str:
        ref = self.cleaned_data["ref"].strip()
        if not ref:
            return ""
        try:
            return validate_ref(ref)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["ref"]) from exc
