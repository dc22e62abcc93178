"""Run a command as nobody (uid/gid 65534) where no user namespace can be made: a user namespace of its own (made by
root, mapping uids 0-65535 to themselves) whose max_user_namespaces is 0.

    python no_userns.py PROGRAM [ARG...]      # as root
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWUSER = 0x10000000


def main(argv: list[str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    child_ready, parent_done = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:
        if libc.unshare(CLONE_NEWUSER) != 0:
            os._exit(125)
        os.write(child_ready[1], b"x")
        os.read(parent_done[0], 1)  # the parent has written the uid and gid maps
        with open("/proc/sys/user/max_user_namespaces", "w") as fh:
            fh.write("0")
        os.execvp("setpriv", ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv])
    os.read(child_ready[0], 1)
    for name in ("uid_map", "gid_map"):  # only a process outside the namespace may map more than its own id
        with open(f"/proc/{pid}/{name}", "w") as fh:
            fh.write("0 0 65536")
    os.write(parent_done[1], b"x")
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
