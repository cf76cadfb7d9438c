from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from orchestrator.errors import NotFoundError, ValidationError
from orchestrator.objects import pack_dir, safe_extract


def test_pack_and_extract_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    (src / "weights.bin").write_bytes(os.urandom(1000))
    (src / "sub" / "config.json").write_text("{}")
    os.symlink("weights.bin", src / "latest")
    pack_dir(src, tmp_path / "model.tar.gz")
    with tarfile.open(tmp_path / "model.tar.gz") as tar:
        names = tar.getnames()
    assert names == ["latest", "sub", "sub/config.json", "weights.bin"]
    out = safe_extract(tmp_path / "model.tar.gz", tmp_path / "out")
    assert out == sorted(tmp_path / "out" / n for n in names)
    assert (tmp_path / "out" / "weights.bin").read_bytes() == (src / "weights.bin").read_bytes()
    assert os.readlink(tmp_path / "out" / "latest") == "weights.bin"
    # Deterministic: the same tree packs to the same bytes.
    pack_dir(src, tmp_path / "again.tar.gz")
    assert (tmp_path / "again.tar.gz").read_bytes() == (tmp_path / "model.tar.gz").read_bytes()


def test_pack_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a directory"):
        pack_dir(tmp_path / "absent", tmp_path / "x.tar.gz")


def _archive(tmp_path: Path, *members: tarfile.TarInfo) -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(b"x" * m.size) if m.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (_member("/etc/passwd"), "absolute"),
        (_member("C:/evil"), "absolute"),
        (_member("\\evil"), "absolute"),
        (_member("../escape"), r"'\.\.'"),
        (_member("a/../../escape"), r"'\.\.'"),
        (_member("link", tarfile.SYMTYPE, "/etc/passwd"), "symlink"),
        (_member("a/link", tarfile.SYMTYPE, "../../outside"), "symlink"),
        (_member("hard", tarfile.LNKTYPE, "/etc/passwd"), "hard link"),
        (_member("hard", tarfile.LNKTYPE, "../outside"), "hard link"),
        (_member("dev", tarfile.CHRTYPE), "device"),
        (_member("blk", tarfile.BLKTYPE), "device"),
        (_member("fifo", tarfile.FIFOTYPE), "FIFO"),
    ],
)
def test_refusals(tmp_path: Path, member: tarfile.TarInfo, why: str) -> None:
    archive = _archive(tmp_path, _member("ok.txt"), member)
    target = tmp_path / "target"
    with pytest.raises(ValidationError, match=why) as err:
        safe_extract(archive, target)
    assert repr(member.name) in err.value.message
    assert list(target.iterdir()) == []  # checked before anything is written


def test_links_inside_are_fine(tmp_path: Path) -> None:
    archive = _archive(
        tmp_path,
        _member("a/file"),
        _member("a/up", tarfile.SYMTYPE, "../a/file"),
        _member("hard", tarfile.LNKTYPE, "a/file"),
    )
    safe_extract(archive, tmp_path / "t")
    assert (tmp_path / "t" / "a" / "up").read_bytes() == b"x"
    assert (tmp_path / "t" / "hard").read_bytes() == b"x"


def test_unreadable_and_missing(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar")
    with pytest.raises(ValidationError, match="unreadable"):
        safe_extract(junk, tmp_path / "t")
    with pytest.raises(NotFoundError):
        safe_extract(tmp_path / "absent.tar.gz", tmp_path / "t")


@pytest.mark.parametrize(
    ("members", "culprit", "why"),
    [
        # Each link alone stays inside; followed through the other, it leaves the target.
        ([("a", tarfile.SYMTYPE, "."), ("a/b", tarfile.SYMTYPE, "..")], "a/b", "outside"),
        # In either order: ``x`` is checked against ``y`` although ``y`` comes after it.
        ([("x", tarfile.SYMTYPE, "y/.."), ("y", tarfile.SYMTYPE, ".")], "x", "outside"),
        ([("s", tarfile.SYMTYPE, "."), ("h", tarfile.LNKTYPE, "s/../etc/passwd")], "h", "outside"),
        # A file written through a link chain that ends outside.
        ([("d", tarfile.SYMTYPE, "e/.."), ("e", tarfile.SYMTYPE, "."), ("d/f", tarfile.REGTYPE, "")],
         "d", "outside"),
        ([("p", tarfile.SYMTYPE, "q"), ("q", tarfile.SYMTYPE, "p")], "p", "loops"),
    ],
)  # fmt: skip
def test_links_are_followed_through_each_other(
    tmp_path: Path, members: list[tuple[str, bytes, str]], culprit: str, why: str
) -> None:
    archive = _archive(tmp_path, _member("ok.txt"), *(_member(*m) for m in members))
    target = tmp_path / "target"
    with pytest.raises(ValidationError, match=why) as err:
        safe_extract(archive, target)
    assert repr(culprit) in err.value.message
    assert list(target.iterdir()) == []  # refused before anything is written


def test_a_file_through_a_link_inside_is_fine(tmp_path: Path) -> None:
    archive = _archive(
        tmp_path,
        _member("sub", tarfile.DIRTYPE),
        _member("s", tarfile.SYMTYPE, "sub"),
        _member("s/f"),
    )
    safe_extract(archive, tmp_path / "t")
    assert (tmp_path / "t" / "sub" / "f").read_bytes() == b"x"
