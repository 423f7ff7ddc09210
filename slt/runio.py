"""Run-directory IO that cannot corrupt a run: atomic writes that keep the user's umask, a writer lock,
safe checkpoint loading and memory checks before large allocations.

* :func:`atomic_write` writes to a temporary file in the target's directory, flushes and fsyncs it, gives
  it the mode a plain ``open(path, "w")`` would (0666 & ~umask; ``mkstemp`` alone makes 0600), then
  ``os.replace``-s it onto the target: a crash, SIGKILL or full disk leaves either the old file or the
  new one, never a torn one. Write errors (ENOSPC, EACCES, EROFS) are re-raised as :class:`OSError`
  naming the file.
* :class:`RunLock` holds ``fcntl.flock`` on ``DIR/.lock`` (which holds the writer's pid) while a process
  writes a run directory; a second writer gets :class:`RunDirBusyError` naming the holder's pid. The
  kernel drops the lock when its holder dies (even by SIGKILL), so a stale lock file never blocks.
* :func:`safe_torch_load` reads a file with ``torch.load(weights_only=True)`` (no code execution) and
  turns any failure (truncated, empty, random bytes, a pickle needing arbitrary classes) into
  :class:`CorruptFileError` naming the file.
"""
from __future__ import annotations

import errno
import fcntl
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

LOCK_FILE = ".lock"


class RunDirBusyError(ValueError):
    """Another live process holds the run directory's writer lock."""


class CorruptFileError(ValueError):
    """A checkpoint / state / JSON file that cannot be read back (truncated, empty, not ours)."""


class RunMismatchError(ValueError):
    """A readable file that belongs to a different run (another config) than the one requested."""


# ---------------------------------------------------------------------------------------------- atomic writes

def current_umask() -> int:
    """The process umask (read from /proc on Linux, so no other thread sees a transient umask of 0)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _reraise_named(err: OSError, path: Path) -> OSError:
    return OSError(err.errno, f"cannot write {path}: {err.strerror or err}")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + os.replace), with mode 0666 & ~umask."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _reraise_named(err, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError):
            raise _reraise_named(err, path) from None
        raise


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then move tmp_path onto ``path`` (kept for callers that write by name)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as err:
        raise _reraise_named(err, path) from None
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise _reraise_named(err, path) from None
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def json_safe(x: Any) -> Any:
    """Replace NaN / +-inf floats (anywhere in nested dicts, lists, tuples) by None: JSON has no NaN."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def atomic_write_json(path: str | Path, obj: Any, **dumps_kwargs: Any) -> None:
    """Strict JSON (non-finite floats written as null, never the invalid token NaN), atomically."""
    atomic_write_text(path, json.dumps(json_safe(obj), allow_nan=False, indent=1, **dumps_kwargs) + "\n")


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    """``torch.save`` to memory first, so a full disk surfaces as an OSError from the file write (torch's
    own writer reports it as an opaque RuntimeError), then :func:`atomic_write_bytes`."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def safe_torch_load(path: str | Path, what: str = "file") -> Any:
    """``torch.load(path, weights_only=True)``; any failure -> :class:`CorruptFileError` naming ``path``."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise CorruptFileError(f"{what} {path} is empty (0 bytes; an interrupted copy?)")
        return torch.load(path, map_location="cpu", weights_only=True)
    except CorruptFileError:
        raise
    except FileNotFoundError:
        raise CorruptFileError(f"{what} {path} does not exist") from None
    except Exception as err:  # truncated zip, random bytes, pickles that need code execution, ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights_only" in first or "Weights only load failed" in first:
            first = "it holds objects other than tensors and plain containers (refused: loading it could run code)"
        raise CorruptFileError(f"{what} {path} is corrupt or not an slt file: {first}") from None


# ---------------------------------------------------------------------------------------------- directories

def prepare_dir(path: str | Path, name: str = "out") -> Path:
    """Create ``path`` (and parents) as a writable directory, or raise a one-line ValueError naming it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} {str(path)!r} exists and is not a directory; choose a directory path")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{name} {str(path)!r}: {str(parent)!r} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{name} {str(path)!r} cannot be created: {err.strerror or err}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {str(path)!r} is not writable by this user; choose another directory")
    return path


class RunLock:
    """Exclusive writer lock on a directory: ``with RunLock(dir): ...``.

    ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``dir/.lock``; the file holds the holder's pid so a refused
    writer can name it. Re-entrant within one process only in the sense that the holder must not lock
    twice (a second ``RunLock`` on the same dir in the same process is refused like any other writer).
    """

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.path = self.dir / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
        except OSError as err:
            raise ValueError(f"cannot create the lock file {self.path}: {err.strerror or err}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = ""
            try:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            except OSError:
                pass
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunDirBusyError(
                    f"run directory {str(self.dir)!r} is being written by another process "
                    f"(pid {holder or 'unknown'}, lock {self.path}); wait for it to finish or choose another out_dir"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


# ---------------------------------------------------------------------------------------------- memory

def available_memory_bytes(device: str | torch.device = "cpu") -> int | None:
    """Free memory on ``device``: MemAvailable from /proc/meminfo (CPU) or ``torch.cuda.mem_get_info``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(dev)[0])
        except Exception:
            return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(need_bytes: float, what: str, device: str | torch.device = "cpu") -> None:
    """Raise ValueError when ``need_bytes`` exceeds the memory available on ``device`` (unknown: allowed)."""
    have = available_memory_bytes(device)
    if have is not None and need_bytes > have:
        raise ValueError(f"{what} needs about {need_bytes / 2**30:.3g} GiB but only {have / 2**30:.3g} GiB "
                         f"is available on {device}")
