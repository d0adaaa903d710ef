"""Writing outputs so that a failure never leaves a half-written file behind."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from landslide_ssgan.errors import InputError


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
    except OSError as exc:  # name the output, not its temporary copy (a full disk names none)
        if exc.filename is None or str(exc.filename) == str(tmp):
            exc.filename = str(path)
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


class Staging:
    """Files written under temporary names, to be renamed onto their final names together."""

    def __init__(self) -> None:
        self.pending: dict[Path, Path] = {}

    def path(self, final: str | Path) -> Path:
        """The temporary name to write `final` to (the same one on every call). Staged
        files that a killed run left beside `final` are removed first."""
        final = Path(final)
        if final not in self.pending:
            final.parent.mkdir(parents=True, exist_ok=True)
            sweep_orphans(final.parent, f".{final.stem}.staged-*{final.suffix}")
            self.pending[final] = final.with_name(
                f".{final.stem}.staged-{os.getpid()}{final.suffix}")
        return self.pending[final]


def sweep_orphans(folder: Path, pattern: str) -> None:
    """Remove the files matching `pattern` (named `...-<pid>...`) whose process is gone:
    what a killed run left; a running writer's files are kept."""
    for path in folder.glob(pattern):
        digits = path.name.rsplit("-", 1)[-1].split(".", 1)[0]
        if digits.isdigit() and not process_alive(int(digits)):
            path.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process of this id runs on this machine (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
    except OSError as exc:  # name the output the user knows, not its temporary name
        finals = {str(tmp): str(final) for final, tmp in staging.pending.items()}
        exc.filename = finals.get(str(exc.filename), exc.filename)
        raise
    finally:
        for tmp in staging.pending.values():
            if tmp.exists():
                tmp.unlink()


@contextmanager
def sole_writer(output: Path, command: str) -> Iterator[None]:
    """Hold `output`'s lock (`.<name>.lock` beside it) while writing it, so that a second
    run of the same command refuses in one line instead of corrupting the first's output.
    The lock is the kernel's (flock): a killed holder releases it."""
    import fcntl

    output.parent.mkdir(parents=True, exist_ok=True)
    lock = output.with_name(f".{output.name}.lock")
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise InputError(f"{output}: `{command}` is already writing it (process "
                             f"{holder}); wait for it to end or stop it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
