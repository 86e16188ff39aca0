"""The job's own account (MNP_RUN_AS): the launcher starts as root, keeps what only it may hold
(the stack's secret), then becomes this account for good before it starts anything.

Why this keeps the secret from the job's programs (README, "Isolation between jobs"):
- `/proc/PID/environ` and `/proc/PID/mem` need ptrace read access (proc(5)): the same uid and
  a dumpable process, or CAP_SYS_PTRACE. docker-init (PID 1, the job definition's init
  process) stays root, so the account cannot read its environment.
- The launcher itself is made non-dumpable (prctl(2) PR_SET_DUMPABLE; the kernel also does it
  when the uid changes): its /proc files belong to root and its memory, where the secret
  stays, is closed to processes of the same uid.
- Root's capabilities go with the uid change (capabilities(7)); the bounding set is emptied
  and no_new_privs set, so no setuid program or file capability gives any back to a rank.
"""

from __future__ import annotations

import ctypes
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from launcher.contract import RUN_AS_ENV

# prctl(2) option numbers (linux/prctl.h)
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 4, 24, 38


class AccountError(Exception):
    """The launcher cannot become the account MNP_RUN_AS names."""


@dataclass(frozen=True)
class Account:
    """A numeric uid and gid (MNP_RUN_AS=UID:GID)."""

    uid: int
    gid: int

    def __str__(self) -> str:
        return f"{self.uid}:{self.gid}"


def parse(text: str) -> Account:
    """`UID:GID` of an account other than root; ValueError saying why not."""
    uid, sep, gid = text.partition(":")
    if not (sep and uid.isascii() and uid.isdigit() and gid.isascii() and gid.isdigit()):
        raise ValueError("not UID:GID")
    account = Account(int(uid), int(gid))
    if account.uid == 0 or account.gid == 0:
        raise ValueError("root: the job's programs would hold the stack's secret")
    if max(account.uid, account.gid) >= 2**32 - 1:
        raise ValueError("out of range")
    return account


def _prctl(option: int, arg: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise AccountError(f"prctl({option}, {arg}) failed: {os.strerror(err)}")


def _last_cap() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 40  # CAP_CHECKPOINT_RESTORE, the last one of Linux 5.9+


def become(account: Account) -> None:
    """Turn this (root) process into `account` for good: groups, gid, uid, no way back.

    Also sets HOME, USER and LOGNAME from the account's passwd entry (sshd admits it by name).
    """
    try:
        entry = pwd.getpwuid(account.uid)
    except KeyError:
        raise AccountError(f"{RUN_AS_ENV}={account}: uid {account.uid} has no account in "
                           "this image's /etc/passwd (sshd admits users by name)") from None
    for cap in range(_last_cap() + 1):
        try:
            _prctl(PR_CAPBSET_DROP, cap)
        except AccountError:
            # Without CAP_SETPCAP (a definition that drops it): the uid change and
            # no_new_privs below already leave nothing to gain, the bounding set is extra.
            break
    os.setgroups([])
    os.setresgid(account.gid, account.gid, account.gid)
    os.setresuid(account.uid, account.uid, account.uid)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_DUMPABLE, 0)
    os.environ.update(HOME=entry.pw_dir, USER=entry.pw_name, LOGNAME=entry.pw_name)


def is_root() -> bool:
    """Whether this process may still change its uid."""
    return os.geteuid() == 0
