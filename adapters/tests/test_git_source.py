"""adapters.git_source with the real git binary: what a build's source
phase reports when git is missing on the worker, and that a URL's
credentials never reach the build log."""

import pytest

from adapters.git_source import SourceError, redact_urls, source_fetch
from controlplane.testing.ports import free_port


def test_a_worker_without_git_fails_with_a_clear_reason(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no git anywhere on it
    output = []

    with pytest.raises(SourceError) as failed:
        source_fetch(
            "https://git.example.invalid/team/app.git",
            "main",
            tmp_path / "src",
            output.append,
        )

    assert "git is not installed" in failed.value.reason
    assert output == ["$ git init -q\n"]


def test_credentials_in_a_url_never_reach_the_log_or_the_reason(tmp_path):
    # A URL saved before credentials were refused: git really runs and fails
    # (nothing listens on the port), and neither its command line nor its
    # error shows the password.
    url = f"https://deploy:s3cret-token@127.0.0.1:{free_port()}/team/app.git"
    output = []

    with pytest.raises(SourceError) as failed:
        source_fetch(url, "main", tmp_path / "src", output.append, timeout=30)

    log = "".join(output)
    assert "s3cret-token" not in log + failed.value.reason
    assert "$ git remote add origin https://deploy:***@127.0.0.1:" in log


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://u:p@ss@h/x.git", "https://u:***@h/x.git"),
        ("fetch http://ghp_token@h/x.git", "fetch http://***@h/x.git"),
        ("ssh://git@h/x.git", "ssh://git@h/x.git"),
        ("ssh://git:pw@h/x.git", "ssh://git:***@h/x.git"),
        (
            "git@h:team/x.git and mail@example.com",
            "git@h:team/x.git and mail@example.com",
        ),
    ],
)
def test_redact_urls_hides_passwords_and_http_users(text, shown):
    assert redact_urls(text) == shown
