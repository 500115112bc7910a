"""The Simplified Chinese catalogue is complete and used by the pages.

`test_catalogue_covers_every_string` re-extracts every marked string
(templates and Python) into a scratch copy of the catalogue, exactly as
`makemessages` would, so a string added without a translation fails here.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
PO = ROOT / "locale/zh_Hans/LC_MESSAGES/django.po"
SOURCE_DIRS = (
    "adapters",
    "builds",
    "controlplane",
    "deployments",
    "regions",
    "registries",
    "templates",
)


def _join(parts: list[str]) -> str:
    return "".join(part[1:-1] for part in parts)


def untranslated(text: str) -> list[str]:
    """msgids that are empty or fuzzy in a catalogue (the header excluded)."""
    bad = []
    for block in text.split("\n\n"):
        lines = block.strip().splitlines()
        if not lines or all(line.startswith("#~") for line in lines):
            continue
        fuzzy = any(line.startswith("#,") and "fuzzy" in line for line in lines)
        msgid, msgstrs, current = [], [], None
        for line in lines:
            if line.startswith("msgid "):
                current = msgid
                msgid.append(line[6:])
            elif line.startswith("msgstr"):
                current = []
                msgstrs.append(current)
                current.append(line.partition(" ")[2])
            elif line.startswith("msgid_plural "):
                current = None
            elif line.startswith('"') and current is not None:
                current.append(line)
        msgid_text = _join(msgid)
        if not msgid_text:
            continue  # the header
        if fuzzy or not msgstrs or any(not _join(s) for s in msgstrs):
            bad.append(msgid_text)
    return bad


def test_catalogue_has_no_empty_or_fuzzy_entries():
    text = PO.read_text(encoding="utf-8")
    assert untranslated(text) == []
    stats = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", os.devnull, str(PO)],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    assert "untranslated" not in stats and "fuzzy" not in stats, stats


@pytest.mark.timeout(300)
def test_catalogue_covers_every_string():
    """Extract all marked strings into a scratch copy and look for gaps."""
    with tempfile.TemporaryDirectory(prefix="ferry-i18n-") as tmp:
        tmp = Path(tmp)
        for name in SOURCE_DIRS:
            (tmp / name).symlink_to(ROOT / name)
        scratch = tmp / "locale/zh_Hans/LC_MESSAGES"
        scratch.mkdir(parents=True)
        (scratch / "django.po").write_text(PO.read_text(encoding="utf-8"))
        (tmp / "i18n_scratch_settings.py").write_text(
            "from controlplane.settings.test import *  # noqa\n"
            f"LOCALE_PATHS = [{str(tmp / 'locale')!r}]\n"
        )
        env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="i18n_scratch_settings",
            PYTHONPATH=os.pathsep.join([str(tmp), str(ROOT)]),
        )
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "makemessages",
                "-l",
                "zh_Hans",
                "--symlinks",
                "--no-obsolete",
                "-v",
                "0",
            ],
            cwd=tmp,
            env=env,
            check=True,
        )
        missing = untranslated((scratch / "django.po").read_text(encoding="utf-8"))
    assert missing == [], (
        "Strings without a Chinese translation; run makemessages -l zh_Hans and "
        f"translate them in {PO.relative_to(ROOT)}: {missing}"
    )
