"""Opening files that a user or another job may have put in our way: regular files only.

A FIFO would block ``open`` for ever, ``/dev/zero`` never ends, and a JSON document of
200,000 ``[`` overflows the parser's recursion: each is refused with a ValueError saying why.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import IO, Any

MAX_JSON_BYTES = 1 << 20  # params.json and meta.json are a few hundred bytes


def open_regular(path: str | Path) -> IO[bytes]:
    """``path`` opened for binary reading; ValueError unless it is a regular file."""
    # O_NONBLOCK: opening a FIFO for reading must not wait for a writer; fstat then refuses it
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"{path} is not a regular file ({_kind(mode)})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"


def load_json(path: str | Path, limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON document in the regular file ``path`` of at most ``limit`` bytes.

    OSError when it cannot be opened; ValueError when it is not a regular file, too large,
    not UTF-8, not JSON, or nested too deeply to parse.
    """
    with open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path} is larger than {limit} bytes")
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply to parse") from None
