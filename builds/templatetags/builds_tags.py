"""Template filters of the build pages: durations and short digests."""

from django import template
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def seconds(value) -> str:
    """12.345 -> "12.3 s"; 125 -> "2 min 5 s"; None -> "—"."""
    if value is None or value == "":
        return "—"
    value = float(value)
    if value < 60:
        return _("%(s).1f s") % {"s": value}
    minutes, rest = divmod(round(value), 60)
    return _("%(m)d min %(s)d s") % {"m": minutes, "s": rest}


@register.filter
def short_digest(value: str) -> str:
    """sha256:0123456789abcdef... -> sha256:0123456789ab."""
    if not value:
        return ""
    algo, _sep, hexpart = value.partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else value[:19]
