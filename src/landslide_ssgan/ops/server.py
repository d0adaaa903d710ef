"""`landslide serve` and `landslide ui` as bounded, stoppable servers.

serve: MLflow's scoring app (same /invocations, /ping and JSON formats as `mlflow models
serve`) run by uvicorn in this process, behind `RequestLimits`: a request over the window or
byte limit is answered 413 before any of it is computed (a 20,000-window request used to take
a worker to 9 GB and time out while it kept computing), and error bodies are one short line,
not the echoed input and stack trace. In one process, SIGTERM, SIGINT and SIGHUP stop
everything.

ui: `mlflow ui` starts its own server processes; they run in their own process group, which
SIGTERM, SIGINT or SIGHUP to this command stops as a whole (they used to be orphaned, still
listening).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import socket
import subprocess
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from landslide_ssgan.errors import InputError, first_line

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
MAX_ERROR_CHARS = 300
DATA = re.compile(r"[\[\]{}()\d\s.,:eE+\-'\"]{24,}")  # a run of numbers and brackets


class RequestLimits:
    """ASGI middleware over /invocations: 413 past `max_windows` or `max_bytes`, short error
    bodies everywhere."""

    def __init__(self, app: ASGIApp, max_windows: int, max_bytes: int,
                 window_values: int = 0) -> None:
        self.app, self.max_windows, self.max_bytes = app, max_windows, max_bytes
        self.window_values = window_values  # numbers in one window (0: not known)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/invocations":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and int(declared) > self.max_bytes:
            await _reply(send, 413, self._too_many_bytes(int(declared)))
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await _reply(send, 413, self._too_many_bytes(len(body)))
                return
            if not message.get("more_body", False):
                break
        windows = values_in(body) // self.window_values if self.window_values else 0
        if windows <= self.max_windows:  # the numbers fit: the JSON may now be decoded
            windows = window_count(body)
        if windows > self.max_windows:
            await _reply(send, 413, f"request holds {windows} windows; the limit is "
                                    f"{self.max_windows} (serve.max_windows): split it")
            return
        await self.app(scope, _replay(body, receive), _short_errors(send))

    def _too_many_bytes(self, size: int) -> str:
        return (f"request of {size / 1e6:.1f} MB is over the limit of "
                f"{self.max_bytes / 1e6:.1f} MB (serve.max_request_mb): split it")


def values_in(body: bytes) -> int:
    """An upper bound of the numbers in a JSON body, counted on its bytes without decoding
    it (a 125 MB request decoded into Python lists takes gigabytes): every number but the
    last of an array is followed by a comma."""
    return body.count(b",") + 1


def window_count(body: bytes) -> int:
    """Windows in a JSON request ({"inputs"|"instances": [...]} or a dataframe's rows); 0 when
    the body is not JSON of that shape (MLflow then answers 400)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return 0
    if not isinstance(payload, dict):
        return 0
    rows = payload.get("inputs", payload.get("instances"))
    for key in ("dataframe_split", "dataframe_records"):
        if rows is None and key in payload:
            frame = payload[key]
            rows = frame.get("data") if isinstance(frame, dict) else frame
    return len(rows) if isinstance(rows, list) else 0


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


def _short_errors(send: Send) -> Send:
    """Error responses rewritten to {"error_code", "message"} with the message's first line
    (MLflow's include the request's data and a stack trace)."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def shortened(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start" and message["status"] >= 400:
            start = message
            return
        if start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            await _reply(send, start["status"], *_error_of(b"".join(chunks)))

    return shortened


def _error_of(body: bytes) -> tuple[str, str]:
    try:
        payload = json.loads(body)
        message, code = str(payload.get("message", "")), str(payload.get("error_code", ""))
    except (ValueError, AttributeError):
        message, code = body.decode("utf-8", "replace"), ""
    if "Error: " in message:  # "Failed to ... data '<the whole input>' ... Error: why"
        message = message.rsplit("Error: ", 1)[1]
    first = message.strip().splitlines()[0] if message.strip() else "request failed"
    first = DATA.sub("[...]", first)  # never the request's numbers back
    return first[:MAX_ERROR_CHARS], code or "BAD_REQUEST"


async def _reply(send: Send, status: int, message: str, code: str | None = None) -> None:
    payload = json.dumps({"error_code": code or ("REQUEST_TOO_LARGE" if status == 413
                                                 else "BAD_REQUEST"),
                          "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def scoring_app(model_uri: str, max_windows: int, max_mb: float) -> ASGIApp:
    """MLflow's scoring app for the model, bounded; a model that cannot be loaded is one line."""
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except (MlflowException, OSError) as exc:
        raise InputError(f"model {model_uri}: cannot be loaded ({first_line(exc)[:200]}); run "
                         "`landslide register` first or give --model-uri") from None
    return RequestLimits(scoring_server.init(model), max_windows, int(max_mb * 1e6),
                         _window_values(model))


def _window_values(model: Any) -> int:
    """Numbers in one window or patch of the model's input signature (0 if it has none)."""
    schema = model.metadata.get_input_schema()
    inputs = schema.inputs if schema is not None else []
    shape = getattr(inputs[0], "shape", None) if len(inputs) == 1 else None
    if not shape or any(d is None or d < 0 for d in shape[1:]):
        return 0
    count = 1
    for d in shape[1:]:
        count *= int(d)
    return count


def require_free_port(port: int, host: str = "127.0.0.1") -> None:
    """One line before anything is printed or started, rather than a server that says it
    serves and then exits."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = ("is already in use (another `landslide serve` or `ui`?); stop it or "
                      "choose another port") if exc.errno == errno.EADDRINUSE else (
                f"cannot be listened on ({exc.strerror}); give --host an address of this "
                "machine, 127.0.0.1 or 0.0.0.0")
            raise InputError(f"--port {port}: {host}:{port} {reason}") from None


def serve(app: ASGIApp, port: int, host: str = "127.0.0.1") -> None:
    """uvicorn in this process: SIGTERM and SIGINT shut it down (uvicorn handles both), and
    SIGHUP (a closed terminal) is turned into SIGTERM."""
    import uvicorn

    signal.signal(signal.SIGHUP, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
    uvicorn.run(app, host=host, port=port, log_level="warning", workers=1)


def run_group(command: list[str], env: dict[str, str]) -> int:
    """Run `command` in its own process group and forward SIGTERM / SIGINT to the whole group,
    so no grandchild outlives this process; returns the command's exit code."""
    child = subprocess.Popen(command, env=env, start_new_session=True)
    stopped = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopped
        stopped = True
        _kill_group(child.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT,
                                                    signal.SIGHUP)}
    try:
        code = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _kill_group(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _kill_group(child.pid, signal.SIGKILL)
    return 0 if stopped else code


def _kill_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)
