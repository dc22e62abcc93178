"""Start a program inside an unpacked image, as Lambda and SageMaker run a container: its own root filesystem,
read-only except a fresh /tmp (Lambda) or writable (containers), with /proc and /dev, sharing the host's network
(so 127.0.0.1 reaches the emulator).

    python -I -S chroot_exec.py [--writable SCRATCH] ROOTFS WORKDIR TMP_MB -- PROGRAM [ARG...]
    python -I -S chroot_exec.py --check ROOTFS [SCRATCH]             # set up, then exit 0 without exec

The process enters a new mount namespace (so its mounts vanish when it exits and the host never sees them; without
root, inside a new user namespace where the caller is root, with the host's /proc bound instead of a new one), binds
the root filesystem read-only (Lambda) or, with `--writable`, lays a tmpfs-backed overlay on it (a container's root:
writable, its changes gone when it ends, the shared unpacked image untouched), mounts proc, a tmpfs of TMP_MB on
/tmp and the host's /dev, chroots and `exec`s the program with the environment it was given: the same process id
all along, so the memory cgroup and the process group of the caller still apply.
Standard library only, run by path: nothing of mlfn is imported before the exec.
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
EXIT_SETUP = 126

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _c(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(_c(source), _c(target), _c(fstype), ctypes.c_ulong(flags), _c(data)), f"mount {target}")


# mount flags a bind mount inherits and may not drop (statvfs f_flag bits are the MS_* bits): nosuid, nodev, noexec,
# noatime, nodiratime, relatime
KEPT_FLAGS = 2 | 4 | 8 | 1024 | 2048 | 4096


def _own_namespaces() -> bool:
    """A new mount namespace; without root, inside a new user namespace where this user is root (rootless).
    Returns whether it is rootless."""
    if os.geteuid() == 0:
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        return False
    uid, gid = os.geteuid(), os.getegid()
    _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(CLONE_NEWUSER|CLONE_NEWNS) (user namespaces)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(text)
    return True


def enter(rootfs: str, tmp_mb: int, scratch: str = "") -> None:
    """Set up the mounts and chroot into `rootfs` (this process only). The root is read-only, or with `scratch`
    (an empty folder) writable through an overlay whose changes live in a tmpfs and vanish with the process."""
    rootless = _own_namespaces()
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    if scratch:
        if any(c in rootfs + scratch for c in ",:"):
            raise OSError(f"{rootfs}: an overlay cannot take a path with ',' or ':'")
        _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_mb}m,mode=0700")
        for sub in ("upper", "work"):
            os.mkdir(os.path.join(scratch, sub))
        _mount("overlay", rootfs, "overlay", 0,
               f"lowerdir={rootfs},upperdir={scratch}/upper,workdir={scratch}/work")
    else:
        _mount(rootfs, rootfs, None, MS_BIND | MS_REC)
        kept = os.statvfs(rootfs).f_flag & KEPT_FLAGS
        _mount(None, rootfs, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | kept)
    for sub in ("proc", "tmp", "dev"):
        if not os.path.isdir(os.path.join(rootfs, sub)):
            raise OSError(f"the image has no /{sub} directory to mount on")
    if rootless:  # a new proc needs a pid namespace of our own: bind the host's
        _mount("/proc", os.path.join(rootfs, "proc"), None, MS_BIND | MS_REC)
    else:
        _mount("proc", os.path.join(rootfs, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount("tmpfs", os.path.join(rootfs, "tmp"), "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_mb}m,mode=1777")
    _mount("/dev", os.path.join(rootfs, "dev"), None, MS_BIND | MS_REC)
    os.chroot(rootfs)


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["--check"]:
            enter(argv[1], 1, *argv[2:3])
            return 0
        scratch = ""
        if argv[:1] == ["--writable"]:
            scratch, argv = argv[1], argv[2:]
        rootfs, workdir, tmp_mb, dashdash, *program = argv
        if dashdash != "--" or not program:
            raise OSError("usage: chroot_exec.py [--writable SCRATCH] ROOTFS WORKDIR TMP_MB -- PROGRAM [ARG...]")
        enter(rootfs, int(tmp_mb), scratch)
        os.chdir(workdir or "/")
        os.execvpe(program[0], program, dict(os.environ))
    except (OSError, ValueError) as exc:
        print(f"mlfn-local: cannot start the image: {exc}", file=sys.stderr, flush=True)
        return EXIT_SETUP
    return 0  # pragma: no cover - exec does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
