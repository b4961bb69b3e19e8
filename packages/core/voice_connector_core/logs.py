"""Log setup: console lines locally, Cloud Logging JSON in the cloud, secrets always scrubbed.

Every line logged while a call runs carries that call's correlation id, flavor and transport:
`call_context()` puts them in loguru's context (a contextvar), which asyncio tasks created inside
it inherit, so Pipecat's and the provider clients' lines carry them too. Standard-library logging
(uvicorn, httpx, the Ollama client) is routed into the same sink for the same reason.

Redaction happens in the sink, on the final text, so a secret is removed whichever library
logged it and however it was formatted: known secret values (config and environment) and
credential-shaped text (Authorization headers, `api_key=...`). Every pattern is linear in the
line's length, a line's message is capped at `MAX_MESSAGE_CHARS`, and values a peer chose (a call
SID, a URL path) go through `clip()` before they reach a message. The sink that writes to the
process's stderr formats and writes from a background thread (`LineWriter`): the event loop only
queues the record, and a slow or blocked stderr cannot stall calls.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import queue
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from voice_connector_core.config import Settings

REDACTED = "********"
SEVERITY = {
    "TRACE": "DEBUG",
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "SUCCESS": "INFO",
    "WARNING": "WARNING",
    "ERROR": "ERROR",
    "CRITICAL": "CRITICAL",
}
LABEL_KEYS = ("call_id", "flavor", "transport")
"""Context keys that become Cloud Logging labels (indexed, filterable: `labels.call_id="CA…"`)."""
TRACE_KEYS = ("trace", "span_id", "trace_sampled")
SECRET_NAME = re.compile(
    r"(^|_)(token|secret|password|passwd|passphrase|credentials?|key|api_?key)($|_)", re.I
)
"""Names of config keys and environment variables whose values are secrets."""
CREDENTIAL_PATTERNS = (
    # Authorization / Proxy-Authorization header values, in HTTP dumps, dict reprs and JSON.
    re.compile(
        r"(?i)((?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)"
        r"((?:bearer|basic|digest|token)\s+)?[^\s'\",}]+"
    ),
    # `name=value` and quoted `"name": "value"` pairs whose name is a secret's (query strings,
    # reprs, JSON); a bare `token: 350` in prose is left alone. The match starts at the secret
    # word, not at the start of the name (`[\w-]*token` retried a long run of letters from every
    # position: quadratic, 1.6 s for a 4 kB line); the name's prefix stays in the text either way.
    re.compile(
        r"(?i)((?:token|secret|password|api[_-]?key|signing[_-]?key)"
        r"(?:\s*=\s*|['\"]\s*:\s*)['\"]?)()[^\s'\"&,}]+"
    ),
)
MIN_SECRET_LEN = 4
MAX_MESSAGE_CHARS = 8192
"""A log message longer than this (before any traceback) is cut: no peer sizes our log lines."""
CLIP_CHARS = 64
"""Default length of a peer-chosen value quoted in a log message (`clip`)."""
MAX_PENDING_LINES = 10000
"""Lines the background writer may hold; beyond, new lines are dropped and counted."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PHONE = re.compile(r"(?:(?<![\w+])\+|(?<=sip:)|(?<=sips:)|(?<=tel:))(\d{7,15})(?!\d)")
"""E.164 numbers (`+15551234567`) and digit users of SIP/tel URIs (`sip:15551234567@...`)."""
_masking = {"phone_numbers": True}


def set_phone_masking(enabled: bool) -> None:
    """`[general] mask_phone_numbers`: mask numbers in lines at INFO and above (or not)."""
    _masking["phone_numbers"] = enabled


def mask_phone_numbers(text: str) -> str:
    """`+15551234567` → `+155******67`: enough to tell calls apart, not to dial."""
    return _PHONE.sub(_mask_digits, text)


def _mask_digits(match: re.Match[str]) -> str:
    digits = match.group(1)
    prefix = match.group(0)[: -len(digits)]
    return f"{prefix}{digits[:3]}{'*' * (len(digits) - 5)}{digits[-2:]}"


def _private(text: str, level_no: int) -> str:
    """Phone numbers masked in a rendered line when masking is on and the level is INFO+."""
    if _masking["phone_numbers"] and level_no >= logging.INFO:
        return mask_phone_numbers(text)
    return text


def clip(value: object, limit: int = CLIP_CHARS) -> str:
    """A peer-chosen value made safe to quote in a log line: short, on one line.

    Control characters (a forged newline would fake a second log line) become `?`; beyond
    `limit` characters the value is cut and the number of characters left out is said.
    """
    text = value if isinstance(value, str) else repr(value)
    extra = len(text) - limit
    if extra > 0:
        text = f"{text[:limit]}…(+{extra})"
    return _CONTROL.sub("?", text)


def cap_message(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` cut to `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…(+{len(text) - limit} characters)"


class Redactor:
    """Replaces every known secret value, and credential-shaped text, in a string."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in CREDENTIAL_PATTERNS:
            text = pattern.sub(_keep_name, text)
        return text

    def scrub(self, value: Any) -> Any:
        """`value` with every string inside it redacted (for structured log fields)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {str(k): self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set):
            return [self.scrub(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self(str(value))


def _keep_name(match: re.Match[str]) -> str:
    """Keep `Authorization: Bearer ` / `api_key=`, replace only the credential."""
    return f"{match.group(1)}{match.group(2) or ''}{REDACTED}"


def config_secrets(settings: Settings) -> list[str]:
    """Secret values of a configuration: SecretStr fields plus any key named like a secret."""
    values = list(settings.secrets())
    for name in type(settings).model_fields:
        section = getattr(settings, name)
        if not hasattr(type(section), "model_fields"):
            continue
        for key in type(section).model_fields:
            value = getattr(section, key)
            if SECRET_NAME.search(key) and isinstance(value, str) and value:
                values.append(value)
    for flavor in settings.flavors.values():
        values += [v for k, v in flavor.overrides.items() if SECRET_NAME.search(k) and v]
    return values


def env_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables named like secrets (Secret Manager injects them so)."""
    environ = os.environ if environ is None else environ
    return [value for name, value in environ.items() if SECRET_NAME.search(name) and value]


# --------------------------------------------------------------------------- trace context


def cloud_trace(headers: Mapping[str, str], project: str | None = None) -> dict[str, Any]:
    """Cloud Logging trace fields from `traceparent` or `X-Cloud-Trace-Context` headers.

    Empty without a project (GOOGLE_CLOUD_PROJECT): the field must be `projects/P/traces/T`.
    """
    project = project if project is not None else os.environ.get("GOOGLE_CLOUD_PROJECT", "")
    lowered = {k.lower(): v for k, v in headers.items()}
    trace_id = span_id = ""
    sampled = False
    parent = re.fullmatch(
        r"\s*[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\s*",
        lowered.get("traceparent", ""),
    )
    cloud = re.fullmatch(
        r"\s*([0-9a-fA-F]{32})(?:/(\d+))?(?:;o=(\d))?\s*", lowered.get("x-cloud-trace-context", "")
    )
    if parent:
        trace_id, span_id, sampled = parent[1], parent[2], bool(int(parent[3], 16) & 1)
    elif cloud:
        trace_id = cloud[1].lower()
        span_id = f"{int(cloud[2]):016x}" if cloud[2] else ""
        sampled = cloud[3] == "1"
    if not project or not trace_id or set(trace_id) == {"0"}:
        return {}
    fields: dict[str, Any] = {"trace": f"projects/{project}/traces/{trace_id}"}
    if span_id:
        fields["span_id"] = span_id
        fields["trace_sampled"] = sampled
    return fields


class TraceContextMiddleware:
    """ASGI middleware: lines logged while serving a request carry its Cloud Trace context.

    A Twilio call runs inside its WebSocket's ASGI call, so its lines get the trace of the
    stream's upgrade request (Cloud Run and the Google load balancer add the headers).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        fields = cloud_trace(headers)
        if not fields:
            await self.app(scope, receive, send)
            return
        with logger.contextualize(**fields):
            await self.app(scope, receive, send)


@contextmanager
def call_context(call_id: str, flavor: str, transport: str) -> Iterator[None]:
    """Every line logged inside (and in tasks started inside) names this call."""
    with logger.contextualize(call_id=call_id, flavor=flavor, transport=transport):
        yield


# --------------------------------------------------------------------------- sinks


def _exception_text(record: Mapping[str, Any]) -> str:
    exc = record["exception"]
    if exc is None:
        return ""
    return "".join(traceback.format_exception(exc.type, exc.value, exc.traceback))


def json_line(record: Mapping[str, Any], redact: Redactor) -> str:
    """One Cloud Logging structured entry (jsonPayload with the special fields) as a line."""
    extra = record["extra"]
    labels = {k: str(extra[k]) for k in LABEL_KEYS if extra.get(k) not in (None, "", "-")}
    message = record["message"]
    exception = _exception_text(record)
    if exception:
        message = f"{message}\n{exception}"
    entry: dict[str, Any] = {
        "severity": SEVERITY.get(record["level"].name, "DEFAULT"),
        "message": message,
        "time": record["time"].astimezone(UTC).isoformat(),
        "logger": record["name"],
        "logging.googleapis.com/sourceLocation": {
            "file": record["file"].path,
            "line": str(record["line"]),
            "function": record["function"],
        },
    }
    if labels:
        entry["logging.googleapis.com/labels"] = labels
    if extra.get("trace"):
        entry["logging.googleapis.com/trace"] = extra["trace"]
    if extra.get("span_id"):
        entry["logging.googleapis.com/spanId"] = extra["span_id"]
        entry["logging.googleapis.com/trace_sampled"] = bool(extra.get("trace_sampled"))
    others = {k: v for k, v in extra.items() if k not in (*LABEL_KEYS, *TRACE_KEYS)}
    if others:
        entry["context"] = others
    return json.dumps(redact.scrub(entry), ensure_ascii=False, default=str)


class InterceptHandler(logging.Handler):
    """Standard-library records → loguru, so they get the same format, context and redaction."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = logging.currentframe(), 2
        while frame is not None and frame.f_code.co_filename == logging.__file__:
            frame, depth = frame.f_back, depth + 1
        named = logger.patch(lambda entry: entry.update(name=record.name))
        named.opt(depth=depth, exception=record.exc_info).log(level, _bounded_message(record))


STDLIB_ARG_CHARS = 256
"""Longest `%s` argument of a standard-library record (uvicorn's access log quotes the path)."""


def _bounded_message(record: logging.LogRecord) -> str:
    """The record's message with each long argument clipped (a 10 kB URL path, as text or URL)."""
    if isinstance(record.args, tuple) and record.args:
        record.args = tuple(_bounded_arg(arg) for arg in record.args)
    return record.getMessage()


def _bounded_arg(arg: object) -> object:
    if arg is None or isinstance(arg, bool | int | float):
        return arg  # keeps %d and %f working
    text = arg if isinstance(arg, str) else str(arg)
    return clip(text, STDLIB_ARG_CHARS) if len(text) > STDLIB_ARG_CHARS else arg


def route_stdlib_logging(level: str) -> None:
    """Send the root logger's records to loguru (once; replaces an earlier intercept)."""
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, InterceptHandler)]
    root.addHandler(InterceptHandler())
    root.setLevel(logging.getLevelName(level if level != "TRACE" else "DEBUG"))


class LineWriter:
    """A loguru sink that renders and writes lines from one background thread.

    Redaction, JSON encoding and the write itself happen in the thread; the logging call only
    queues the message. The queue is bounded: when a flood outruns the writer, lines are dropped
    and counted (the count is written when the writer catches up), so neither memory nor the
    event loop pays for it. `await logger.complete()` waits until every queued line is written.
    """

    def __init__(
        self, stream: Any, render: Callable[[Any], str], max_pending: int = MAX_PENDING_LINES
    ) -> None:
        self._stream = stream
        self._render = render
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._dropped = 0
        self._dropped_lock = threading.Lock()  # callers count, the writer takes the count
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def write(self, message: Any) -> None:
        """loguru's sink entry point (any thread): queue the message, never wait."""
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            with self._dropped_lock:
                self._dropped += 1

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                with self._dropped_lock:
                    dropped, self._dropped = self._dropped, 0
                if dropped:
                    self._stream.write(f"log writer: {dropped} lines dropped (queue full)\n")
                self._stream.write(self._render(item))
                self._stream.flush()
            except Exception:  # a broken stream or a bad record must not kill the writer
                continue

    def wait_written(self, timeout: float = 5.0) -> bool:
        """Block until every line queued so far is written; False after `timeout`."""
        if not self._thread.is_alive():
            return True
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    async def complete(self) -> None:
        """`await logger.complete()`: the lines queued so far are written."""
        await asyncio.to_thread(self.wait_written)

    def stop(self) -> None:
        """Write what is queued and end the thread (loguru calls it when the sink is removed)."""
        if self._thread.is_alive():
            self.wait_written()
            self._queue.put(None)
            self._thread.join(timeout=5.0)


def setup_logging(
    level: str = "INFO",
    fmt: str = "console",
    secrets: Iterable[str] = (),
    stream: Any = None,
    background: bool | None = None,
) -> Redactor:
    """Replace loguru's sinks (Pipecat logs through loguru too) with one scrubbing sink.

    Secrets: the given values plus every environment variable named like a secret.
    `stream` defaults to stderr (tests pass a buffer). `background` (default: when writing to
    stderr) renders and writes lines in a `LineWriter` thread instead of the logging caller.
    """
    redact = Redactor([*secrets, *env_secrets()])
    out = stream or sys.stderr
    background = stream is None if background is None else background
    logger.remove()
    if fmt == "json":

        def render(message: Any) -> str:
            record = message.record
            return _private(json_line(record, redact), record["level"].no) + "\n"

        line_format = "{message}"
    else:

        def render(message: Any) -> str:
            return _private(redact(str(message)), message.record["level"].no)

        line_format = (
            "{time:HH:mm:ss.SSS} | {level: <7} | {extra[call_id]: <12} | {name} | {message}"
        )
    if background:
        logger.add(LineWriter(out, render), level=level, format=line_format)
    else:

        def sink(message: Any) -> None:
            out.write(render(message))
            out.flush()

        logger.add(sink, level=level, format=line_format)
    logger.configure(extra={"call_id": "-"}, patcher=_cap_record)
    route_stdlib_logging(level)
    return redact


def _cap_record(record: Any) -> None:
    """loguru patcher: every message is capped before any sink formats it."""
    record["message"] = cap_message(record["message"])


def now_iso() -> str:
    return datetime.now(UTC).isoformat()
