"""Deterministic layer tarballs: the same files always give the same bytes, hence the same digest.

Entries are sorted, owners and timestamps fixed, and gzip written with mtime 0, no file name and a level chosen
from the contents, so a layer's digest depends only on paths, contents and (normalised) modes: not on where the
folder lives, when its files were touched, or who owns them.

The level is chosen from the contents too: a layer of 64 MiB or more whose large files deflate by less than a
tenth in samples (float weights: 400 MB of them shrink by 7%) is stored at level 0, still a gzip stream. Deflate
runs at about 30 MB/s of CPU at any level on such data, stored at about 700 MB/s: for a 400 MB model that is
13 s of CPU on every build of a changed model, against 7% more bytes pushed (bench/large_model.py).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import digests
from .digests import HashingWriter

MODEL_PREFIX = "opt/mlfn/model"
GZIP_LEVEL = 6
STORED_MIN_BYTES = 64 << 20  # smaller layers always get GZIP_LEVEL: compressing them costs little
SAMPLE_BYTES = 256 << 10  # read from up to 4 places of each file of 1 MiB or more
STORED_BELOW_SAVING = 0.10  # samples deflating by less than this: the layer is stored
# Never part of a model image: caches and tool folders whose contents change without the model changing.
EXCLUDED_NAMES = frozenset({"__pycache__", ".git", ".mlfn", ".DS_Store", ".ipynb_checkpoints"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")


class LayerError(Exception):
    """A folder that cannot become a layer as it is (for example a symlink leaving it)."""


@dataclass(frozen=True)
class Entry:
    """One tar member: `source` is read for regular files; `link` is a symlink target or hard link's first name."""

    name: str  # path inside the image, relative, POSIX
    kind: str  # "dir", "file", "symlink", "hardlink"
    mode: int
    source: Path | None = None
    link: str = ""
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Layer:
    """A written layer blob and the two digests an image needs: `digest` (gzip bytes) and `diff_id` (tar bytes)."""

    path: Path
    digest: str
    size: int
    diff_id: str
    uncompressed_size: int
    entries: int


def _walk_sorted(root: Path) -> Iterator[tuple[Path, PurePosixPath]]:
    """Every path under root (not root itself), parents before children, siblings in byte order, no symlink
    followed."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        rel_dir = PurePosixPath(Path(dirpath).relative_to(root).as_posix())
        for name in sorted(dirnames + filenames):
            yield Path(dirpath) / name, rel_dir / name if str(rel_dir) != "." else PurePosixPath(name)


def _parents(prefix: str) -> list[Entry]:
    parts = PurePosixPath(prefix).parts
    return [Entry("/".join(parts[: i + 1]), "dir", 0o755) for i in range(len(parts))]


def _excluded(rel: PurePosixPath) -> bool:
    return any(p in EXCLUDED_NAMES for p in rel.parts) or rel.name.endswith(EXCLUDED_SUFFIXES)


def model_entries(directory: Path, prefix: str = MODEL_PREFIX, extra: Mapping[str, Path] | None = None,
                  exclude: Iterable[str] = ()) -> list[Entry]:
    """The entries of a model folder placed at `prefix`, with modes normalised (0755 for folders and executables,
    0644 otherwise) and symlinks kept only when they stay inside the folder. `extra` adds generated files
    (name inside the folder -> file), replacing a file of the same name; `exclude` leaves out relative paths."""
    root = directory.resolve()
    extra = dict(extra or {})
    left_out = set(exclude) | set(extra)
    entries = _parents(prefix)
    for path, rel in _walk_sorted(root):
        if _excluded(rel) or str(rel) in left_out:
            continue
        st = path.lstat()
        name = f"{prefix}/{rel}"
        if stat.S_ISLNK(st.st_mode):
            target = path.resolve()
            if not target.is_relative_to(root):
                raise LayerError(f"{rel}: a symlink to {target}, outside the model directory")
            entries.append(Entry(name, "symlink", 0o777, link=os.path.relpath(target, path.parent.resolve())))
        elif stat.S_ISDIR(st.st_mode):
            entries.append(Entry(name, "dir", 0o755))
        elif stat.S_ISREG(st.st_mode):
            mode = 0o755 if st.st_mode & 0o111 else 0o644
            entries.append(Entry(name, "file", mode, source=path))
        else:
            raise LayerError(f"{rel}: not a regular file, folder or symlink")
    for rel_name in sorted(extra):
        entries.append(Entry(f"{prefix}/{rel_name}", "file", 0o644, source=extra[rel_name]))
    return sorted(entries, key=lambda e: PurePosixPath(e.name).parts)


def rootfs_entries(root: Path, skip: Iterable[str] = (), prefix: str = "") -> list[Entry]:
    """The entries of a whole root filesystem (or of a tree placed at `prefix`), keeping modes (setuid included),
    owners, symlinks and hard links. Device nodes, sockets and pipes are left out (a container runtime provides
    /dev); `skip` names top-level folders whose contents are left out but which are kept empty (proc, sys, dev)."""
    skipped = set(skip)
    entries: list[Entry] = _parents(prefix) if prefix else []
    first_name: dict[tuple[int, int], str] = {}
    for path, rel in _walk_sorted(root):
        if rel.parts[0] in skipped and len(rel.parts) > 1:
            continue
        st = path.lstat()
        name = f"{prefix}/{rel}" if prefix else str(rel)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            entries.append(Entry(name, "symlink", 0o777, link=os.readlink(path), uid=st.st_uid, gid=st.st_gid))
        elif stat.S_ISDIR(st.st_mode):
            entries.append(Entry(name, "dir", mode, uid=st.st_uid, gid=st.st_gid))
        elif stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in first_name:
                entries.append(Entry(name, "hardlink", mode, link=first_name[key], uid=st.st_uid, gid=st.st_gid))
            else:
                first_name.setdefault(key, name)
                entries.append(Entry(name, "file", mode, source=path, uid=st.st_uid, gid=st.st_gid))
    return entries


def split(entries: list[Entry], names: Iterable[str]) -> tuple[list[Entry], list[Entry]]:
    """Two entry lists: the named files (with the folders above them) and everything else (with all folders)."""
    chosen = set(names)
    picked = [e for e in entries if e.name in chosen]
    above = {str(parent) for e in picked for parent in PurePosixPath(e.name).parents}
    first = [e for e in entries if e.name in chosen or (e.kind == "dir" and e.name in above)]
    rest = [e for e in entries if e.name not in chosen]
    return first, rest


def gzip_level(entries: Iterable[Entry]) -> int:
    """GZIP_LEVEL, or 0 for a large layer whose big files hardly deflate (see the module docstring)."""
    files = [(e.source, e.source.stat().st_size) for e in entries if e.kind == "file" and e.source]
    if sum(size for _, size in files) < STORED_MIN_BYTES:
        return GZIP_LEVEL
    sample = bytearray()
    for path, size in files:
        if size >= 1 << 20:
            with path.open("rb") as f:
                for i in range(4):
                    f.seek(size * i // 4)
                    sample += f.read(SAMPLE_BYTES)
    if not sample:
        return GZIP_LEVEL
    saving = 1 - len(zlib.compress(bytes(sample), 1)) / len(sample)
    return 0 if saving < STORED_BELOW_SAVING else GZIP_LEVEL


def entries_key(entries: Iterable[Entry], level: int | None = None) -> str:
    """A digest of exactly what a layer of these entries would hold (names, kinds, modes, links, file contents):
    equal keys mean byte-identical layers, so a written layer can be reused without writing it again."""
    entries = list(entries)
    level = gzip_level(entries) if level is None else level
    h = hashlib.sha256(f"mlfn-layer-v1 gzip={level}\n".encode())
    for e in entries:
        content = digests.of_file(e.source) if e.kind == "file" and e.source else ""
        h.update(f"{e.name}\0{e.kind}\0{e.mode:o}\0{e.uid}\0{e.gid}\0{e.link}\0{content}\n".encode())
    return "sha256:" + h.hexdigest()


def _tarinfo(entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.name + ("/" if entry.kind == "dir" else ""))
    info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, 0
    info.uname = info.gname = ""
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, entry.link
    elif entry.kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, entry.link
    else:
        info.type = tarfile.REGTYPE
        assert entry.source is not None
        info.size = entry.source.stat().st_size
    return info


def write_layer(entries: Iterable[Entry], dest: Path, level: int | None = None) -> Layer:
    """Write entries as a gzip-compressed tar to `dest` in one pass, hashing both the tar and the gzip bytes; the
    level is `gzip_level`'s unless given."""
    entries = list(entries)
    level = gzip_level(entries) if level is None else level
    count = 0
    with dest.open("wb") as out:
        compressed = HashingWriter(out)  # type: ignore[arg-type]
        with gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=compressed, mtime=0) as gz:  # type: ignore[arg-type]
            plain = HashingWriter(gz)  # type: ignore[arg-type]
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                for entry in entries:
                    info = _tarinfo(entry)
                    if entry.kind == "file":
                        assert entry.source is not None
                        with entry.source.open("rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)
                    count += 1
    return Layer(dest, compressed.digest, compressed.size, plain.digest, plain.size, count)
