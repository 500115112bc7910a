"""Generate and remember local secret and encryption keys for dev and tests.

Only the dev and test settings call this; production has no fallback.
"""

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet


def ensure_local_keys() -> None:
    base = Path(__file__).resolve().parent.parent.parent
    var = Path(os.environ.get("FERRY_VAR_DIR", base / "var"))
    var.mkdir(parents=True, exist_ok=True)
    for name, make in (
        ("FERRY_SECRET_KEY", lambda: secrets.token_urlsafe(50)),
        ("FERRY_ENCRYPTION_KEYS", lambda: Fernet.generate_key().decode()),
    ):
        if os.environ.get(name):
            continue
        path = var / name.lower()
        if not path.exists():
            path.write_text(make())
            path.chmod(0o600)
        os.environ[name] = path.read_text().strip()
