"""adapters.git_source with the real git binary: what a build's source
phase reports when git is missing on the worker."""

import pytest

from adapters.git_source import SourceError, source_fetch


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
