"""A measurement in a fresh process, as the benchmarks take them: a process's peak memory
and TensorFlow's state are its own, so each figure starts from the same place. The child
prints its figures as JSON on its last line of stdout; a child that fails is named by its
exit code and the last line it wrote to stderr (where the `landslide` errors go)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any


class ChildFailed(RuntimeError):
    """A child that exited non-zero: `line` is the last line of its stderr ('' if none)."""

    def __init__(self, code: int, line: str) -> None:
        super().__init__(f"exit {code}: {line}" if line else f"exit {code}")
        self.code, self.line = code, line


def child_json(command: Sequence[str], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run `command` and return the JSON object on the last line of its stdout."""
    done = subprocess.run(list(command), capture_output=True, text=True,
                          env=dict(env) if env is not None else None)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise ChildFailed(done.returncode, lines[-1] if lines else "")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))
