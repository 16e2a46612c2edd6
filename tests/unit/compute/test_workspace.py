"""A job's directory as its members see it (compute/workspace.py): paths of plain names only, no symbolic
link followed (one swapped in after the check included), only the job account's own files, bounded
listings, and the names its input files get."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jaif.compute import workspace
from jaif.errors import InvalidRequest, NotFound

ME = os.geteuid()


@pytest.fixture
def job(tmp_path: Path) -> Path:
    """A job's directory with an output folder, a secret beside it (another job's, the server's) and the
    links a job could make to it."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("the server's secret")
    root = tmp_path / "job"
    (root / "out" / "deep").mkdir(parents=True)
    (root / "job.sh").write_text("echo hi\n")
    (root / "out" / "result.txt").write_text("42\n")
    (root / "out" / "deep" / "x.bin").write_bytes(b"\x00\x01")
    (root / "to-secret").symlink_to(secret)  # a folder link
    (root / "key-link").symlink_to(secret / "key")  # a file link
    (root / "up").symlink_to("..")
    os.mkfifo(root / "pipe")
    return root


@pytest.mark.parametrize("path", ["..", "../secret/key", "out/../../secret/key", "/etc/passwd", "out//result.txt",
                                  "./out", "out/./result.txt", "out\\..\\..", "out/\x00", "a" * 5000])
def test_a_path_with_anything_but_plain_names_is_refused(job, path):
    with pytest.raises(InvalidRequest) as refused:
        workspace.open_file(job, path, owner=ME)
    assert refused.value.param == "path"
    with pytest.raises(InvalidRequest):
        workspace.list_dir(job, path, owner=ME, limit=100)


def test_a_folder_is_listed_folders_first_links_shown_not_followed(job):
    listing = workspace.list_dir(job, "", owner=ME, limit=100)
    kinds = {e.name: e.kind for e in listing.entries}
    assert kinds == {"out": "dir", "job.sh": "file", "to-secret": "link", "key-link": "link", "up": "link",
                     "pipe": "other"}
    assert listing.entries[0].name == "out" and not listing.truncated
    inner = workspace.list_dir(job, "out/", owner=ME, limit=100)
    assert [(e.name, e.path, e.size) for e in inner.entries] == [("deep", "out/deep", inner.entries[0].size),
                                                                  ("result.txt", "out/result.txt", 3)]


@pytest.mark.parametrize("path", ["to-secret", "up", "up/secret", "to-secret/key", "job.sh", "nothing"])
def test_a_link_is_never_entered_as_a_folder(job, path):
    with pytest.raises(NotFound):
        workspace.list_dir(job, path, owner=ME, limit=100)


@pytest.mark.parametrize("path", ["key-link", "to-secret/key", "up/secret/key", "out", "pipe", "missing.txt"])
def test_only_regular_files_reached_without_a_link_are_opened(job, path):
    with pytest.raises(NotFound):
        workspace.open_file(job, path, owner=ME)


def test_a_file_is_opened_and_read(job):
    file, size, name = workspace.open_file(job, "out/deep/x.bin", owner=ME)
    with file:
        assert (file.read(), size, name) == (b"\x00\x01", 2, "x.bin")


def test_a_folder_swapped_for_a_link_after_the_check_is_not_followed(job, tmp_path):
    """The path is checked by name, then each part opened without following: a link put in place of a folder
    in between is refused when it is opened, not followed."""
    os.rename(job / "out", tmp_path / "out-moved")
    (job / "out").symlink_to(tmp_path / "secret")
    with pytest.raises(NotFound):
        workspace.open_file(job, "out/key", owner=ME)
    with pytest.raises(NotFound):
        workspace.list_dir(job, "out", owner=ME, limit=10)


def test_only_the_job_accounts_own_files_are_shown(job):
    """A hard link (or anything) of another account's is refused: the owner must be the job's account."""
    with pytest.raises(NotFound):
        workspace.open_file(job, "out/result.txt", owner=ME + 1)
    with pytest.raises(NotFound):
        workspace.list_dir(job, "", owner=ME + 1, limit=10)
    if ME != 0:
        pytest.skip("changing a file's owner needs root")
    os.chown(job / "out" / "result.txt", 65534, 65534)
    with pytest.raises(NotFound):
        workspace.open_file(job, "out/result.txt", owner=ME)
    os.chown(job / "out" / "deep", 65534, 65534)
    with pytest.raises(NotFound):
        workspace.list_dir(job, "out/deep", owner=ME, limit=10)


def test_a_listing_is_bounded(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(30):
        (root / f"f{i:02d}").write_text("x")
    listing = workspace.list_dir(root, "", owner=ME, limit=10)
    assert len(listing.entries) == 10 and listing.truncated
    assert not workspace.list_dir(root, "", owner=ME, limit=30).truncated


def test_a_missing_directory_is_said_so(tmp_path):
    assert workspace.list_dir(tmp_path / "gone", "", owner=ME, limit=10).missing


@pytest.mark.parametrize(("filename", "taken", "expected"), [
    ("data.jsonl", set(), "data.jsonl"),
    ("../../etc/passwd", set(), "passwd"),
    ("C:\\Users\\me\\in.txt", set(), "in.txt"),
    (".bashrc", set(), "bashrc"),
    ("job.sh", set(), "file-1"),
    ("stdout.log", set(), "file-1"),
    ("...", set(), "file-1"),
    ("data.jsonl", {"data.jsonl"}, "file-1-data.jsonl"),
    ("a\x00b\nc", set(), "abc"),
])
def test_the_name_an_input_gets(filename, taken, expected):
    assert workspace.input_name(filename, "file-1", taken) == expected


def test_an_input_is_copied_new_and_private(tmp_path):
    source = tmp_path / "stored"
    source.write_bytes(b"payload")
    workspace.copy_input(source, tmp_path / "in.bin", uid=None, gid=None)
    assert (tmp_path / "in.bin").read_bytes() == b"payload"
    assert (tmp_path / "in.bin").stat().st_mode & 0o777 == 0o600
    (tmp_path / "planted").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):  # never written through a name that is already there
        workspace.copy_input(source, tmp_path / "planted", uid=None, gid=None)
    assert not (tmp_path / "elsewhere").exists()
