"""Writing outputs so that a failure never leaves a half-written file behind."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the suffix is kept: some formats (GeoPackage) check it
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class Staging:
    """Files written under temporary names, to be renamed onto their final names together."""

    def __init__(self) -> None:
        self.pending: dict[Path, Path] = {}

    def path(self, final: str | Path) -> Path:
        """The temporary name to write `final` to (the same one on every call)."""
        final = Path(final)
        if final not in self.pending:
            final.parent.mkdir(parents=True, exist_ok=True)
            self.pending[final] = final.with_name(
                f".{final.stem}.staged-{os.getpid()}{final.suffix}")
        return self.pending[final]


@contextmanager
def staged_together() -> Iterator[Staging]:
    """Outputs that belong together (a map, its polygons, its summary): each is written to
    its temporary name, and only when the block succeeds are all of them renamed into place.
    A failure leaves the previous set whole, never a new map beside an old summary."""
    staging = Staging()
    try:
        yield staging
        for final, tmp in staging.pending.items():
            os.replace(tmp, final)
    finally:
        for tmp in staging.pending.values():
            if tmp.exists():
                tmp.unlink()


def write_json(path: str | Path, payload: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def file_digest(path: str | Path) -> str:
    """The MD5 of a file: the same hash DVC records for it in dvc.lock."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
