"""Folder walk: .gitignore, vendored folders, binaries, oversized files, symlink loops, unreadable entries."""

from __future__ import annotations

import os

import pytest

from agentlong.documents import LoadResult, Skipped, load_path
from agentlong.errors import InputError
from agentlong.settings import Settings


def reasons(result: LoadResult) -> dict[str, str]:
    return {os.path.basename(s.path): s.reason for s in result.skipped}


def loaded(result: LoadResult) -> list[str]:
    return sorted(d.metadata["relpath"] for d in result.documents)


def write(root, rel: str, content: str | bytes = "some text\n") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def test_single_file_and_missing_path(tmp_path):
    write(tmp_path, "a.md", "# A\n")
    result = load_path(tmp_path / "a.md")
    assert [d.kind for d in result.documents] == ["md"] and result.skipped == []
    with pytest.raises(InputError, match="no such file or folder"):
        load_path(tmp_path / "missing")
    write(tmp_path, "empty.txt", "")
    with pytest.raises(InputError, match="empty"):  # a single file that cannot be loaded raises
        load_path(tmp_path / "empty.txt")


def test_gitignore_root_nested_negation_and_parent_repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    write(repo, ".gitignore", "*.log\n!keep.log\nbuild-out/\n")
    write(repo, "src/.gitignore", "secret_*.py\n")
    for rel in ["src/app.py", "src/secret_key.py", "src/debug.log", "src/keep.log", "build-out/x.py", "docs/a.md"]:
        write(repo, rel)
    result = load_path(repo)
    assert loaded(result) == ["docs/a.md", "src/app.py", "src/keep.log"]
    why = reasons(result)
    assert why["secret_key.py"] == why["debug.log"] == why["build-out"] == "ignored by .gitignore"
    assert "hidden" in why[".git"] or "vendored" in why[".git"]
    sub = load_path(repo / "src")  # the enclosing repository's .gitignore still applies
    assert loaded(sub) == ["app.py", "keep.log"]


def test_vendored_generated_binary_and_hidden_entries_are_reported(tmp_path):
    write(tmp_path, "main.py", "print('hi')\n")
    write(tmp_path, "node_modules/lib/index.js", "x")
    write(tmp_path, "__pycache__/main.cpython-312.pyc", b"\x00\x01")
    write(tmp_path, "env/pyvenv.cfg", "home = /usr\n")
    write(tmp_path, "pkg.egg-info/PKG-INFO", "x")
    write(tmp_path, "app.min.js", "var a=1;")
    write(tmp_path, "package-lock.json", "{}")
    write(tmp_path, "logo.png", b"\x89PNG\r\n\x1a\n")
    write(tmp_path, "blob.dat", b"\x00\x01\x02\x03" * 100)
    write(tmp_path, ".env", "API_KEY=secret\n")
    result = load_path(tmp_path)
    assert loaded(result) == ["main.py"]
    why = reasons(result)
    for name in ["node_modules", "__pycache__", "env", "pkg.egg-info"]:
        assert "vendored or generated folder" in why[name]
    assert "generated file" in why["app.min.js"] and "generated file" in why["package-lock.json"]
    assert why["logo.png"] == "binary file (.png)"
    assert "binary" in why["blob.dat"]
    assert "hidden" in why[".env"]
    assert all(isinstance(s, Skipped) and s.reason for s in result.skipped)
    assert len(result.skipped) == 9  # one entry per folder, not per file inside it
    assert [s.path for s in result.skipped] == sorted(s.path for s in result.skipped)


def test_oversized_file_is_skipped_before_reading(tmp_path):
    write(tmp_path, "small.txt", "fine\n")
    with (tmp_path / "huge.txt").open("wb") as fh:
        fh.truncate(200 * 1024 * 1024)  # sparse 200 MB single "line"; reading it would be slow
    result = load_path(tmp_path, Settings(chunking={"max_file_mb": 5}))
    assert loaded(result) == ["small.txt"]
    assert reasons(result)["huge.txt"].startswith("too large: 200.0 MB > 5 MB")
    assert "max_file_mb" in reasons(result)["huge.txt"]


def test_symlink_loops_and_broken_links(tmp_path):
    write(tmp_path, "docs/a.txt")
    os.symlink(tmp_path, tmp_path / "docs" / "loop")  # folder link back to an ancestor
    os.symlink(tmp_path / "self", tmp_path / "self")  # link to itself
    os.symlink(tmp_path / "gone.txt", tmp_path / "dangling.txt")
    os.symlink(tmp_path / "docs" / "a.txt", tmp_path / "alias.txt")  # a fine file link is followed
    result = load_path(tmp_path)
    assert loaded(result) == ["docs/a.txt"]
    why = reasons(result)
    assert "symlink loop" in why["loop"] and "symlink loop" in why["self"]
    assert "broken symlink" in why["dangling.txt"]
    assert why["alias.txt"].startswith("same file as docs/a.txt")  # followed, but loaded once
    other = tmp_path / "other"
    write(other, "real.txt")
    os.symlink(tmp_path / "docs" / "a.txt", other / "link.txt")  # its target is outside this walk
    assert loaded(load_path(other)) == ["link.txt", "real.txt"]


def test_unreadable_files_and_folders_are_skipped(tmp_path, monkeypatch):
    write(tmp_path, "ok.txt", "readable\n")
    write(tmp_path, "locked.txt", "secret\n")
    write(tmp_path, "private/inner.txt", "secret\n")
    import builtins

    real_open, real_scandir = builtins.open, os.scandir

    def deny_open(file, *args, **kwargs):
        if str(file).endswith("locked.txt"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    def deny_scandir(path="."):
        if str(path).endswith("private"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(builtins, "open", deny_open)  # root ignores chmod 000, so simulate it
    monkeypatch.setattr(os, "scandir", deny_scandir)
    result = load_path(tmp_path)
    assert loaded(result) == ["ok.txt"]
    why = reasons(result)
    assert "permission denied" in why["locked.txt"] and "permission denied" in why["private"]


def test_chmod_000_file_is_skipped_or_readable_as_root(tmp_path):
    write(tmp_path, "locked.txt", "text\n")
    (tmp_path / "locked.txt").chmod(0)
    result = load_path(tmp_path)
    if os.geteuid() == 0:  # root reads it anyway: it must load, not vanish
        assert loaded(result) == ["locked.txt"]
    else:
        assert "permission denied" in reasons(result)["locked.txt"]


def test_files_that_fail_to_load_are_skipped_with_their_error(tmp_path):
    write(tmp_path, "good.md", "# Good\n")
    write(tmp_path, "empty.txt", "")
    write(tmp_path, "bad.epub", b"PK\x03\x04 not a zip" * 10)
    result = load_path(tmp_path)
    assert loaded(result) == ["good.md"]
    why = reasons(result)
    assert why["empty.txt"].startswith("empty file") and why["bad.epub"].startswith("broken EPUB")
    assert "\n" not in why["bad.epub"]


def test_explicit_folder_ignored_by_enclosing_repo_is_still_read(tmp_path):
    """Like a library inside ~/.pyenv (a git checkout whose .gitignore ignores versions/)."""
    from agentlong.documents import load_path

    (tmp_path / ".git").mkdir()
    (tmp_path / ".gitignore").write_text("/versions/\n*.pyc\n")
    lib = tmp_path / "versions" / "lib"
    lib.mkdir(parents=True)
    (lib / "mod.py").write_text("def parse(s):\n    return s\n")
    (lib / "mod.pyc").write_bytes(b"\x00\x01")
    result = load_path(lib)
    assert [d.source.endswith("mod.py") for d in result.documents] == [True]
