"""Resumable results: each finished point of a sweep is one JSON file, written atomically.

A point is identified by a name and the hash of its full configuration, so changing any setting makes a
new point while an interrupted run picks up every finished one without recomputing it.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from slt.runio import current_umask


def config_hash(config: Any) -> str:
    """Short stable hash of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write to a temp file in the same folder, then os.replace: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; keep the user's umask like open()
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, allow_nan=True) + "\n")


class PointCache:
    """A folder of finished points: ``get_or_compute(name, config, fn)``.

    ``computed`` and ``reused`` count, for this process, how many points were run and how many loaded.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.computed = 0
        self.reused = 0

    def path(self, name: str, config: Any) -> Path:
        return self.root / f"{name}-{config_hash(config)}.json"

    def lookup(self, name: str, config: Any) -> tuple[bool, Any]:
        """(True, result) if the point is stored for exactly this config, else (False, None); counts nothing."""
        path = self.path(name, config)
        if path.exists():
            try:
                stored = json.loads(path.read_text())
                if stored.get("config") == json.loads(json.dumps(config, default=str)):
                    return True, stored["result"]
            except (json.JSONDecodeError, KeyError, OSError):
                pass  # a corrupt file is recomputed, never trusted
        return False, None

    def get_or_compute(self, name: str, config: Any, fn: Callable[[], Any]) -> Any:
        found, result = self.lookup(name, config)
        if found:
            self.reused += 1
            return result
        result = fn()
        atomic_write_json(self.path(name, config), {"name": name, "config": config, "result": result})
        self.computed += 1
        return json.loads(json.dumps(result, default=str))  # the same types a reuse would return
