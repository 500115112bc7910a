"""Shared steps of the pages (regions, registries, builds).

Each app's view keeps its own template, redirect and wording; these are the
steps that are the same everywhere: a page or the htmx fragment it refreshes,
a fresh row for the form, an audited save with its "Saved" message, an
audited delete refused while rows still use it.
"""

from django.contrib import messages
from django.db import models
from django.db.models import ProtectedError
from django.http import HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from .services import object_delete


def render_or_fragment(
    request, template: str, context: dict, fragment: str
) -> HttpResponse:
    """The page, or only its `fragment` partial when htmx refreshes that element
    (a partial is named after its DOM id)."""
    if request.htmx and request.htmx.target == fragment:
        template += f"#{fragment}"
    return render(request, template, context)


def fresh_copy(instance: models.Model) -> models.Model:
    """A copy of the stored row for the form to edit (a new row is itself).

    A rejected edit must not leak into the page's links (e.g. a changed slug
    in the delete URL), so validation works on the copy, never on ours.
    """
    if instance.pk:
        return type(instance).objects.get(pk=instance.pk)
    return instance


def form_save(request, form) -> models.Model | None:
    """On a valid POST, save through the form's audited service and say so.

    The saved row, or None (GET, invalid form, or errors the service put on
    the form's fields).
    """
    if request.method != "POST" or not form.is_valid():
        return None
    saved = form.save_audited(request.user, via="ui")
    if saved is not None:
        messages.success(request, _("Saved %(object)s.") % {"object": saved})
    return saved


def delete_or_refuse(request, instance: models.Model, in_use: str) -> bool:
    """Delete through object_delete and say so; `in_use` when rows still use it.

    True when the row is gone.
    """
    try:
        object_delete(request.user, instance, via="ui")
    except ProtectedError:
        messages.error(request, in_use)
        return False
    messages.success(request, _("Deleted %(object)s.") % {"object": instance})
    return True
