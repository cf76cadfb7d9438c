"""``model.tar.gz`` packing and a safe extractor for archives we did not write ourselves.

``safe_extract`` checks every member before anything is written (absolute names, ``..``,
links that leave the target, device and FIFO members) and then extracts with tarfile's
``data`` filter as a second line of defence. Links are followed as the filesystem will once
they are written, through the archive's own symlinks and in whatever order they come
(``x -> y/..`` before ``y -> .`` leaves the target), so that no member's path and no link's
target leaves it, and a loop of links is refused.
"""

from __future__ import annotations

import gzip
import os
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from orchestrator.errors import NotFoundError, ValidationError


def _reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Owner names and ids of the packing machine mean nothing where the archive lands.
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack_dir(src: Path, dest: Path) -> None:
    """Write ``dest`` as a tar.gz of ``src``'s contents: relative names, sorted order."""
    src = Path(src)
    if not src.is_dir():
        raise ValidationError(f"cannot pack {src}: not a directory", field="path")
    entries: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        base = Path(dirpath)
        entries.extend(base / name for name in sorted([*dirnames, *filenames]))
    entries.sort(key=lambda p: p.relative_to(src).as_posix())
    # gzip's header carries a timestamp and a file name; blank both for byte-identical output.
    with (
        open(dest, "wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in entries:
            tar.add(path, arcname=path.relative_to(src).as_posix(), recursive=False, filter=_reset)


def _refuse(archive: Path, member: tarfile.TarInfo, why: str) -> ValidationError:
    return ValidationError(
        f"archive {archive} member {member.name!r} {why}; refusing to extract", field="archive"
    )


def _inside(rel: PurePosixPath) -> bool:
    """True if a relative path, resolved lexically, stays inside the root."""
    depth = 0
    for part in rel.parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        elif part not in ("", "."):
            depth += 1
    return True


_MAX_HOPS = 40  # as the kernel's limit on symlinks followed in one path


def _escapes(parts: Sequence[str], links: Mapping[str, str], hops: int = 0) -> bool:
    """True when ``parts`` (relative to the root), resolved as the filesystem would with the
    archive's symlinks (``links``: name -> target) in place, leaves the root, or loops."""
    out: list[str] = []
    for i, part in enumerate(parts):
        if part in ("", "."):
            continue
        if part == "..":
            if not out:
                return True
            out.pop()
            continue
        out.append(part)
        target = links.get("/".join(out))
        if target is None:
            continue
        if hops >= _MAX_HOPS or target.startswith("/"):
            return True
        out.pop()
        return _escapes([*out, *target.split("/"), *parts[i + 1 :]], links, hops + 1)
    return False


def _through_links(archive: Path, member: tarfile.TarInfo, links: Mapping[str, str]) -> None:
    name = PurePosixPath(member.name)
    if _escapes(name.parts, links):
        raise _refuse(archive, member, "leads outside through the archive's symlinks (or loops)")
    if member.issym():
        target = PurePosixPath(member.linkname)
        if _escapes([*name.parent.parts, *target.parts], links):
            raise _refuse(archive, member, f"is a symlink to {member.linkname!r} outside")
    if member.islnk() and _escapes(PurePosixPath(member.linkname).parts, links):
        raise _refuse(archive, member, f"is a hard link to {member.linkname!r} outside")


def _check(archive: Path, member: tarfile.TarInfo) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith(("/", "\\")) or ":" in name.parts[0]:
        raise _refuse(archive, member, "has an absolute path")
    if ".." in name.parts:
        raise _refuse(archive, member, "escapes the target with '..'")
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise _refuse(archive, member, "is a device or FIFO")
    if member.issym():
        link = PurePosixPath(member.linkname)
        if link.is_absolute() or not _inside(name.parent / link):
            raise _refuse(archive, member, f"is a symlink to {member.linkname!r} outside")
    if member.islnk():
        link = PurePosixPath(member.linkname)
        if link.is_absolute() or not _inside(link):
            raise _refuse(archive, member, f"is a hard link to {member.linkname!r} outside")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise _refuse(archive, member, "has an unsupported type")


def safe_extract(archive: Path, target: Path) -> list[Path]:
    """Extract ``archive`` (tar, tar.gz) into ``target``; returns the extracted paths, sorted."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check(Path(archive), member)
            links = {PurePosixPath(m.name).as_posix(): m.linkname for m in members if m.issym()}
            for member in members:
                _through_links(Path(archive), member, links)
            tar.extractall(target, members=members, filter="data")
    except FileNotFoundError as e:
        raise NotFoundError(f"archive {archive} does not exist", field="archive") from e
    except tarfile.FilterError as e:
        raise ValidationError(f"archive {archive} was refused: {e}", field="archive") from e
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ValidationError(f"archive {archive} is unreadable: {e}", field="archive") from e
    return sorted(target / m.name for m in members)
