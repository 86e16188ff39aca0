"""`python -m staging in`: a prefix's objects into a new directory, atomically, exit 2 for
missing or denied data with the key named and nothing left behind (docs/CONTRACTS.md)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from staging.__main__ import run
from staging.manifest import INPUT_MANIFEST, Manifest

# Nested keys, a 0-byte object, spaces and non-ASCII in a key, a console "folder" marker.
TREE = {
    "params.json": b'{"nx": 65}',
    "mesh/level 1/grid.bin": bytes(range(256)) * 40,
    "mesh/empty.dat": b"",
    "données/été 2026/π.txt": "température\n".encode(),
}


def _seed(s3: Any, prefix: str = "in/run1/", tree: dict[str, bytes] = TREE) -> None:
    for relative, body in tree.items():
        s3.put_object(Bucket="data", Key=prefix + relative, Body=body)
    s3.put_object(Bucket="data", Key=prefix + "mesh/", Body=b"")  # a folder marker
    s3.put_object(Bucket="data", Key="in/run10/not-mine.txt", Body=b"x")  # a sibling prefix


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file()}


def test_the_tree_lands_whole_with_its_manifest_written_last(s3: Any, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    _seed(s3)
    dest = tmp_path / "input" / "staged" / "job-1"
    assert run(["in", "s3://data/in/run1", str(dest)]) == 0
    files = _files(dest)
    marker = json.loads(files.pop(INPUT_MANIFEST))
    assert files == TREE  # run10/ is another prefix, not part of run1/
    assert not dest.with_name("job-1.partial").exists()
    # The manifest's sizes and checksums are those of the bytes S3 holds.
    assert marker["source"] == "s3://data/in/run1/"
    assert {f["path"]: (f["size"], f["sha256"]) for f in marker["files"]} == {
        k: (len(v), hashlib.sha256(v).hexdigest()) for k, v in TREE.items()}
    assert marker["bytes"] == sum(map(len, TREE.values()))
    assert "4 files" in capsys.readouterr().err


def test_a_complete_destination_is_left_as_it_is(s3: Any, tmp_path: Path, calls: list) -> None:
    _seed(s3)
    dest = tmp_path / "dest"
    assert run(["in", "s3://data/in/run1/", str(dest)]) == 0
    before = {p: p.stat().st_mtime_ns for p in dest.rglob("*")}
    calls.clear()
    assert run(["in", "s3://data/in/run1/", str(dest)]) == 0  # a retried staging job
    assert calls == []  # not even a listing
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*")} == before


def test_a_destination_that_is_not_a_complete_copy_is_refused(s3: Any, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture
                                                              ) -> None:
    _seed(s3)
    dest = tmp_path / "dest"
    assert run(["in", "s3://data/in/run1/", str(dest)]) == 0
    (dest / "params.json").write_text("changed")
    assert run(["in", "s3://data/in/run1/", str(dest)]) == 2
    assert "params.json: 7 bytes, expected 10" in capsys.readouterr().err
    assert run(["in", "s3://data/in/run10/", str(dest)]) == 2
    assert "holds a copy of s3://data/in/run1/, not s3://data/in/run10/" in (
        capsys.readouterr().err)


def test_a_partial_copy_of_an_earlier_attempt_is_replaced(s3: Any, tmp_path: Path) -> None:
    _seed(s3)
    dest = tmp_path / "dest"
    (tmp_path / "dest.partial").mkdir()
    (tmp_path / "dest.partial" / "half.bin").write_bytes(b"cut short by SIGKILL")
    assert run(["in", "s3://data/in/run1/", str(dest)]) == 0
    assert "half.bin" not in _files(dest) and not (tmp_path / "dest.partial").exists()


@pytest.mark.parametrize(("source", "named"), [
    ("s3://data/in/nothing-here", "s3://data/in/nothing-here/: no objects below this prefix"),
    ("s3://no-such-bucket/in", "s3://no-such-bucket/in/: not found (NoSuchBucket)"),
    ("s3://data/in/run1/mesh/empty.dat", "no objects below this prefix"),
])
def test_missing_data_exits_2_naming_it_and_leaves_nothing(
        s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture, source: str, named: str) -> None:
    _seed(s3)
    dest = tmp_path / "dest"
    assert run(["in", source, str(dest)]) == 2
    assert named in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_object_gone_mid_copy_exits_2_naming_its_key_and_leaves_nothing(
        s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    _seed(s3)
    from staging import stagein

    listed = stagein.plan

    def then_deleted(listing: list, where: Any) -> dict:
        s3.delete_object(Bucket="data", Key="in/run1/mesh/level 1/grid.bin")
        return listed(listing, where)

    monkeypatch.setattr(stagein, "plan", then_deleted)
    assert run(["in", "s3://data/in/run1/", str(tmp_path / "dest")]) == 2
    assert "s3://data/in/run1/mesh/level 1/grid.bin: not found (404)" in (
        capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_a_denied_object_exits_2_naming_its_key(s3: Any, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    """A user who may read the bucket except one object (moto enforces IAM with auth on)."""
    import boto3
    from moto.core import set_initial_no_auth_action_count

    _seed(s3)
    iam = boto3.client("iam")
    iam.create_user(UserName="stager")
    iam.put_user_policy(UserName="stager", PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::data/in/run1/params.json"}]}))
    key = iam.create_access_key(UserName="stager")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])

    @set_initial_no_auth_action_count(0)
    def staged() -> int:
        return run(["in", "s3://data/in/run1/", str(tmp_path / "dest")])

    assert staged() == 2
    assert "s3://data/in/run1/params.json: access denied (" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key", ["in/run1/a/../../escape.txt", "in/run1/a//b.txt",
                                 "in/run1/./c.txt"])
def test_a_key_that_is_not_a_relative_path_is_refused(s3: Any, tmp_path: Path, key: str,
                                                      capsys: pytest.CaptureFixture) -> None:
    s3.put_object(Bucket="data", Key=key, Body=b"x")
    assert run(["in", "s3://data/in/run1/", str(tmp_path / "dest")]) == 2
    assert f"s3://data/{key}: the key is not a relative path" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_object_that_is_also_a_folder_is_refused(s3: Any, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    _seed(s3, tree={"a": b"file", "a/b": b"below it"})
    assert run(["in", "s3://data/in/run1/", str(tmp_path / "dest")]) == 2
    assert "s3://data/in/run1/a is an object and also a folder of s3://data/in/run1/a/b" in (
        capsys.readouterr().err)


@pytest.mark.parametrize(("argv", "message"), [
    (["in", "/local/dir", "/dest"], "is not an S3 location"),
    (["in", "s3://Data/x", "/dest"], "is not a bucket name"),
    (["in", "s3://data/x", "relative/dest"], "is not an absolute path"),
])
def test_bad_arguments_exit_2(argv: list[str], message: str,
                              capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stop:
        run(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_the_manifest_reads_back(s3: Any, tmp_path: Path) -> None:
    _seed(s3)
    assert run(["in", "s3://data/in/run1/", str(tmp_path / "d")]) == 0
    copy = Manifest.from_json((tmp_path / "d" / INPUT_MANIFEST).read_bytes())
    assert [f.path for f in copy.files] == sorted(TREE)


def test_sigterm_mid_copy_exits_143_and_leaves_nothing(s3: Any, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch stopping the staging job: SIGTERM, then SIGKILL 30 s later (ECS's default)."""
    import os
    import signal

    from staging import stagein

    def cut_short(client: Any, source: Any, paths: dict, into: Path) -> None:
        (into / "half.bin").write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGTERM)

    _seed(s3)
    monkeypatch.setattr(stagein, "_download", cut_short)
    assert run(["in", "s3://data/in/run1/", str(tmp_path / "dest")]) == 143
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
