"""The disk tier: one file per entry, written atomically, bounded in size, kept across restarts.

A write goes to a temporary file in the entry's own folder, is flushed to the disk (``fsync``) and
then renamed over the final name, so a reader sees the old file or the new one, never half of one.
Every file carries its lengths and a checksum (see :func:`~ogshot.cache.encode_entry`), so even a
file damaged some other way (a crash on a file system that reorders writes, a full disk, a stray
edit) is detected on read, deleted and treated as a miss.

Several processes may share the folder. Each keeps a running estimate of its size and, when the
estimate passes the bound, rescans the folder and deletes the least recently used files (reads
touch a file's modification time) until it is back under 90% of the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

from . import Clock, CorruptEntry, Entry, decode_entry, encode_entry

log = logging.getLogger("ogshot.cache")

_SUFFIX = ".entry"
_TMP_PREFIX = ".tmp-"
#: A temporary file older than this belongs to a writer that died: remove it.
_ORPHAN_AGE = 300.0


class DiskCache:
    def __init__(self, root: str | os.PathLike[str], max_bytes: int, *, clock: Clock = time.time):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.clock = clock
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._used = self._scan()[0]

    def path_for(self, key: str) -> Path:
        # Keys are arbitrary strings: hash them into a safe, evenly spread file name.
        h = hashlib.sha256(key.encode()).hexdigest()
        return self.root / h[:2] / (h[2:] + _SUFFIX)

    async def get(self, key: str) -> Entry | None:
        return await asyncio.to_thread(self.get_sync, key)

    async def set(self, key: str, entry: Entry) -> None:
        await asyncio.to_thread(self.set_sync, key, entry)

    def get_sync(self, key: str) -> Entry | None:
        path = self.path_for(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            entry = decode_entry(blob, key)
        except CorruptEntry as exc:
            log.warning("dropping damaged cache file %s: %s", path.name, exc)
            self._forget(path, len(blob))
            return None
        if not entry.usable(self.clock()):
            self._forget(path, len(blob))
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: last to be evicted
        return entry

    def set_sync(self, key: str, entry: Entry) -> None:
        blob = encode_entry(key, entry)
        if len(blob) > self.max_bytes:
            return
        path = self.path_for(key)
        path.parent.mkdir(exist_ok=True)
        try:
            replaced = path.stat().st_size  # an overwrite adds only the difference
        except FileNotFoundError:
            replaced = 0
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            self._unlink(Path(tmp))
            raise
        _fsync_dir(path.parent)
        with self._lock:
            self._used = max(0, self._used + len(blob) - replaced)
            over = self._used > self.max_bytes
        if over:
            self.evict()

    def evict(self) -> None:
        """Delete least recently used files until the folder is under 90% of its bound."""
        with self._lock:
            used, files = self._scan()
            target = int(self.max_bytes * 0.9)
            files.sort()
            for _mtime, size, path in files:
                if used <= target:
                    break
                if self._unlink(path):
                    used -= size
            self._used = used

    def _scan(self) -> tuple[int, list[tuple[float, int, Path]]]:
        total = 0
        files: list[tuple[float, int, Path]] = []
        now = time.time()
        for sub in self.root.iterdir():
            if not sub.is_dir():
                continue
            for item in os.scandir(sub):
                try:
                    st = item.stat()
                except FileNotFoundError:
                    continue
                if item.name.startswith(_TMP_PREFIX):
                    if now - st.st_mtime > _ORPHAN_AGE:
                        self._unlink(Path(item.path))
                    continue
                if item.name.endswith(_SUFFIX):
                    total += st.st_size
                    files.append((st.st_mtime, st.st_size, Path(item.path)))
        return total, files

    @property
    def bytes_used(self) -> int:
        return self._used

    def _forget(self, path: Path, size: int) -> None:
        """Delete a file this process found useless, and take it off the size estimate."""
        if self._unlink(path):
            with self._lock:
                self._used = max(0, self._used - size)

    @staticmethod
    def _unlink(path: Path) -> bool:
        try:
            path.unlink()
            return True
        except FileNotFoundError:
            return False


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not every platform lets a folder be opened.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
