"""The worker list (issue 14): :class:`WorkerRegistry` implements ``core/workers.py``'s ``WorkerDirectory``.

Owns:

* the workers file (``<ComfyUI user dir>/workflow_iterator/workers.json``): its format, its validation, writing it
  atomically (``core/atomic_files.py``) and re-reading it when someone else changed it;
* the rules for one worker entry: URL (http/https, a host, a valid port, no credentials, no query), name, auth
  header (``"Name: value"``; kept in the file, never answered back, dropped when the URL changes without a new
  one), weight (> 0), enabled; duplicate URLs;
* what is known of each worker's health (the probe and the dispatcher :meth:`report` it) and the one rule turning
  configuration + health into a :data:`~core.workers.WorkerState` (:func:`worker_state`);
* change notifications (a worker's state changed), delivered after the lock is released.

The file sits beside the batch journal, not in ``<user dir>/default/``: ComfyUI serves that folder to every
browser through ``/userdata/...``, which would hand the auth headers out.

With no file the registry lists only the local server, enabled, and nothing about a sweep changes. An unreadable
file is logged and the last good list kept; edits are then refused (writing would throw the user's file away).

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .atomic_files import write_text
from .errors import WIError
from .workers import LOCAL_WORKER_ID, WorkerConfig, WorkerHealth, WorkerState

__all__ = [
    "FILE_VERSION",
    "LOCAL_NAME",
    "UnknownWorkerError",
    "WorkerConfigError",
    "WorkerRegistry",
    "normalise_url",
    "parse_auth_header",
    "queue_depth_from_answer",
    "worker_state",
    "workers_file_path",
]

logger = logging.getLogger(__name__)

FILE_VERSION = 1
LOCAL_NAME = "This server"
MAX_NAME = 100
MAX_WEIGHT = 1000.0
MAX_AUTH_HEADER = 4096
_WORKER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# RFC 9110 token characters: what a header name may be made of.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_FIELDS = frozenset({"id", "name", "url", "auth_header", "weight", "enabled"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

#: ``listener(worker_id, state, detail)``: a worker's state changed (or it was added or removed: state None).
StateListener = Callable[[str, WorkerState | None, str | None], None]


class WorkerConfigError(WIError, ValueError):
    """A worker entry (or the workers file) is invalid; ``field`` names what was wrong. Routes answer 400."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.message))


class UnknownWorkerError(WIError, KeyError):
    """No worker has this id. Routes answer 404."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        super().__init__(worker_id)

    def __str__(self) -> str:
        return f'unknown worker "{self.worker_id}"'


def workers_file_path(user_dir: str) -> str:
    """Where the workers file lives inside ComfyUI's user directory (outside what ``/userdata`` serves)."""
    return os.path.join(user_dir, "workflow_iterator", "workers.json")


# ----------------------------------------------------------------------------------------------- entry rules
def normalise_url(raw: object) -> str:
    """The canonical form of a worker's base URL: lower-case scheme and host, no default port, no trailing slash.

    Raises:
        WorkerConfigError: (field ``url``) not http/https, no host, a bad port, credentials, a query or fragment.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise WorkerConfigError("url", "a worker needs a URL such as http://192.168.1.20:8188")
    text = raw.strip()
    if any(ord(ch) < 33 for ch in text):
        raise WorkerConfigError("url", f"{text!r} contains spaces or control characters")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise WorkerConfigError("url", f"{text!r} must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise WorkerConfigError("url", f"{_without_credentials(parts.netloc)!r}: put credentials in the auth header, "
                                       "not in the URL")
    host = parts.hostname
    if not host:
        raise WorkerConfigError("url", f"{text!r} has no host")
    try:
        port = parts.port
    except ValueError:
        raise WorkerConfigError("url", f"{text!r} has an invalid port (1-65535)") from None
    if port == 0:
        raise WorkerConfigError("url", f"{text!r} has an invalid port (1-65535)")
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise WorkerConfigError("url", f"{text!r}: a worker URL has no query or fragment")
    shown_host = f"[{host}]" if ":" in host else host
    netloc = shown_host if port is None or port == _DEFAULT_PORTS[scheme] else f"{shown_host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def _without_credentials(netloc: str) -> str:
    return netloc.rpartition("@")[2]


def parse_auth_header(raw: str) -> tuple[str, str]:
    """``"Authorization: Bearer x"`` -> ``("Authorization", "Bearer x")``.

    Raises:
        WorkerConfigError: (field ``auth_header``) no colon, a bad header name, an empty value, line breaks.
    """
    if len(raw) > MAX_AUTH_HEADER:
        raise WorkerConfigError("auth_header", f"longer than {MAX_AUTH_HEADER} characters")
    if "\r" in raw or "\n" in raw or "\0" in raw:
        raise WorkerConfigError("auth_header", "must be one line (no line breaks)")
    name, colon, value = raw.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not name:
        raise WorkerConfigError("auth_header", 'must read "Name: value", e.g. "Authorization: Bearer <token>"')
    if not _HEADER_NAME.match(name):
        raise WorkerConfigError("auth_header", f"{name[:40]!r} is not a valid header name")
    if not value:
        raise WorkerConfigError("auth_header", f'"{name}:" has no value')
    return name, value


def _auth_header(raw: object) -> str | None:
    """None or ``""`` clear it; else it must parse. Stored as ``"Name: value"``."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise WorkerConfigError("auth_header", f"must be a string, got {type(raw).__name__}")
    name, value = parse_auth_header(raw)
    return f"{name}: {value}"


def _weight(raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise WorkerConfigError("weight", f"must be a number, got {raw!r}")
    value = float(raw)
    if not math.isfinite(value) or not 0 < value <= MAX_WEIGHT:
        raise WorkerConfigError("weight", f"must be greater than 0 and at most {MAX_WEIGHT:g}, got {raw!r}")
    return value


def _enabled(raw: object) -> bool:
    if not isinstance(raw, bool):
        raise WorkerConfigError("enabled", f"must be true or false, got {raw!r}")
    return raw


def _name(raw: object, url: str | None) -> str:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return _default_name(url)
    if not isinstance(raw, str):
        raise WorkerConfigError("name", f"must be a string, got {type(raw).__name__}")
    text = " ".join(raw.split())
    if len(text) > MAX_NAME:
        raise WorkerConfigError("name", f"longer than {MAX_NAME} characters")
    return text


def _default_name(url: str | None) -> str:
    if url is None:
        return LOCAL_NAME
    parts = urlsplit(url)
    return parts.netloc + parts.path


def _worker_id(raw: object) -> str:
    if not isinstance(raw, str) or not _WORKER_ID.match(raw):
        raise WorkerConfigError("id", f"must be 1-64 letters, digits, '-' or '_', got {raw!r}")
    return raw


def _new_id() -> str:
    return f"w-{uuid.uuid4().hex[:10]}"


def _check_fields(spec: Mapping[str, Any]) -> None:
    unknown = sorted(set(spec) - _FIELDS)
    if unknown:
        raise WorkerConfigError(unknown[0], f"unknown field (allowed: {', '.join(sorted(_FIELDS))})")


def _build(spec: Mapping[str, Any], base: WorkerConfig | None) -> WorkerConfig:
    """A validated entry from ``spec`` over ``base`` (an edit keeps every field the spec leaves out)."""
    _check_fields(spec)
    worker_id = _worker_id(spec["id"]) if "id" in spec else (base.id if base else _new_id())
    if worker_id == LOCAL_WORKER_ID or (base is not None and base.local):
        if spec.get("url") is not None:
            raise WorkerConfigError("url", "the local server has no URL (it is this ComfyUI)")
        if spec.get("auth_header"):
            raise WorkerConfigError("auth_header", "the local server takes no auth header")
        url: str | None = None
    elif "url" in spec or base is None:
        url = normalise_url(spec.get("url"))
    else:
        url = base.url
    name = _name(spec["name"], url) if "name" in spec else (base.name if base else _default_name(url))
    if "auth_header" in spec:
        auth_header = _auth_header(spec["auth_header"])
    elif base is not None and base.url == url:
        auth_header = base.auth_header
    else:
        # A saved secret never follows a worker to a new address: whoever may edit the list cannot read the
        # header back, and must not be able to have it sent to a server of their choosing either.
        auth_header = None
    return WorkerConfig(
        id=worker_id,
        name=name,
        url=url,
        weight=_weight(spec["weight"]) if "weight" in spec else (base.weight if base else 1.0),
        enabled=_enabled(spec["enabled"]) if "enabled" in spec else (base.enabled if base else True),
        auth_header=auth_header,
    )


# ------------------------------------------------------------------------------------------- health rules
def worker_state(config: WorkerConfig, health: WorkerHealth) -> WorkerState:
    """The one rule: disabled, else unreachable, else busy (something queued or running), else idle."""
    if not config.enabled:
        return "disabled"
    if not health.reachable:
        return "unreachable"
    if health.queue_depth is not None and health.queue_depth > 0:
        return "busy"
    return "idle"


def queue_depth_from_answer(payload: object) -> int:
    """Running + pending prompts from a ComfyUI ``GET /queue`` answer.

    Raises:
        ValueError: the answer is not ComfyUI's queue shape (then the URL is not a ComfyUI).
    """
    if not isinstance(payload, Mapping):
        raise ValueError("GET /queue did not answer a JSON object: is this a ComfyUI server?")
    running, pending = payload.get("queue_running"), payload.get("queue_pending")
    if not isinstance(running, list) or not isinstance(pending, list):
        raise ValueError("GET /queue has no queue_running/queue_pending lists: is this a ComfyUI server?")
    return len(running) + len(pending)


def _state_detail(health: WorkerHealth) -> str | None:
    if health.error:
        return health.error
    if health.queue_depth:
        return f"{health.queue_depth} in queue"
    return None


# ------------------------------------------------------------------------------------------------ the file
@dataclass(frozen=True, slots=True)
class _Config:
    """One reading of the file: the remote workers in file order and the local worker's settings."""

    local: WorkerConfig
    remote: tuple[WorkerConfig, ...]

    def all(self) -> tuple[WorkerConfig, ...]:
        return (self.local, *self.remote)


_DEFAULT_LOCAL = WorkerConfig(id=LOCAL_WORKER_ID, name=LOCAL_NAME, url=None)
_EMPTY = _Config(local=_DEFAULT_LOCAL, remote=())
#: A remote worker nobody has asked yet (the probe asks a new one at once).
_NOT_CHECKED = WorkerHealth(reachable=False, error="not checked yet")


def _decode(text: str) -> _Config:
    """Parses the file; every problem is a WorkerConfigError naming the entry and the field."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise WorkerConfigError("file", f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WorkerConfigError("file", "must hold a JSON object")
    version = data.get("version", FILE_VERSION)
    if version != FILE_VERSION:
        raise WorkerConfigError("version", f"this pack reads version {FILE_VERSION}, the file says {version!r}")
    local = _DEFAULT_LOCAL
    try:
        if "local_enabled" in data:
            local = replace(local, enabled=_enabled(data["local_enabled"]))
        if "local_weight" in data:
            local = replace(local, weight=_weight(data["local_weight"]))
        if "local_name" in data:
            local = replace(local, name=_name(data["local_name"], None))
    except WorkerConfigError as exc:
        raise WorkerConfigError(f"local_{exc.field}", exc.message) from None
    entries = data.get("workers", [])
    if not isinstance(entries, list):
        raise WorkerConfigError("workers", "must be a list")
    remote: list[WorkerConfig] = []
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or "id" not in entry or "url" not in entry:
            raise WorkerConfigError(f"workers[{position}]", "each worker needs at least an id and a url")
        try:
            worker = _build(entry, None)
        except WorkerConfigError as exc:
            raise WorkerConfigError(f"workers[{position}].{exc.field}", exc.message) from None
        if worker.local:
            raise WorkerConfigError(f"workers[{position}].id", f'"{LOCAL_WORKER_ID}" is the local server\'s id')
        remote.append(worker)
    _check_unique(remote)
    return _Config(local=local, remote=tuple(remote))


def _check_unique(remote: Sequence[WorkerConfig]) -> None:
    ids: set[str] = set()
    urls: dict[str, str] = {}
    for worker in remote:
        if worker.id in ids:
            raise WorkerConfigError("id", f'two workers have the id "{worker.id}"')
        ids.add(worker.id)
        assert worker.url is not None  # remote entries always have one (checked by _build)
        if worker.url in urls:
            raise WorkerConfigError("url", f'{worker.url} is already the worker "{urls[worker.url]}"')
        urls[worker.url] = worker.name


def _encode(config: _Config) -> str:
    data: dict[str, Any] = {
        "version": FILE_VERSION,
        "local_enabled": config.local.enabled,
        "local_weight": config.local.weight,
        "local_name": config.local.name,
        "workers": [
            {"id": w.id, "name": w.name, "url": w.url, "auth_header": w.auth_header, "weight": w.weight,
             "enabled": w.enabled}
            for w in config.remote
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


_Signature = tuple[int, int, int] | None


def _signature(path: str) -> _Signature:
    """What tells a changed file from the one last read (a rename gives a new inode even within one mtime tick)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


# -------------------------------------------------------------------------------------------- the registry
class WorkerRegistry:
    """The configured workers and their health; thread-safe (one lock, no I/O or callbacks under it).

    Args:
        path: the workers file, or None (a registry in memory only: the local server, nothing to save).
        clock: epoch seconds, for ``last_seen``.
    """

    def __init__(self, path: str | None, *, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        # Serialises read-modify-write of the file (held across I/O; never while taking it inside _lock).
        self._write_lock = threading.Lock()
        self._config = _EMPTY
        self._signature: _Signature = None
        self._file_error: str | None = None
        self._health: dict[str, WorkerHealth] = {}
        self._states: dict[str, WorkerState] = {}
        self._listeners: list[StateListener] = []
        self._reload()

    # ---------------------------------------------------------------- WorkerDirectory
    def workers(self) -> Sequence[WorkerConfig]:
        """Every configured worker, the local one first unless turned off (``local_enabled``), disabled ones included."""
        config = self._current()
        return config.all() if config.local.enabled else config.remote

    def health(self, worker_id: str) -> WorkerHealth:
        config = self._current()
        with self._lock:
            return self._health_of(config, worker_id)

    def report(self, worker_id: str, *, reachable: bool, queue_depth: int | None = None,
               error: str | None = None) -> None:
        """Records what the probe or the dispatcher saw; unknown ids (a worker deleted meanwhile) are ignored."""
        config = self._current()
        if not any(w.id == worker_id for w in config.all()):
            return
        now = self._clock()
        with self._lock:
            previous = self._health.get(worker_id)
            self._health[worker_id] = WorkerHealth(
                reachable=reachable,
                queue_depth=queue_depth if reachable else None,
                last_seen=now if reachable else (previous.last_seen if previous else None),
                error=None if reachable else (error or "no answer"),
            )
            changes = self._collect_changes(config)
        self._notify(changes)

    # ---------------------------------------------------------------- beyond the protocol
    def entries(self) -> tuple[WorkerConfig, ...]:
        """Every worker for the settings UI: the local one always first (disabled when turned off)."""
        return self._current().all()

    def get(self, worker_id: str) -> WorkerConfig:
        for worker in self._current().all():
            if worker.id == worker_id:
                return worker
        raise UnknownWorkerError(worker_id)

    def state(self, worker_id: str) -> WorkerState:
        config = self.get(worker_id)
        return worker_state(config, self.health(worker_id))

    @property
    def file_error(self) -> str | None:
        """Why the file could not be read (the last good list is in use), or None."""
        self._current()
        with self._lock:
            return self._file_error

    def add_listener(self, listener: StateListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def save(self, spec: Mapping[str, Any]) -> WorkerConfig:
        """Adds a worker (``spec`` without ``id``) or changes one (with ``id``); writes the file atomically.

        Raises:
            WorkerConfigError: a field is invalid, the URL is another worker's, or the file is unreadable.
            UnknownWorkerError: ``id`` names no worker.
        """
        if not isinstance(spec, Mapping):
            raise WorkerConfigError("body", "must be a JSON object")
        with self._write_lock:
            config = self._writable()
            if "id" in spec:
                worker_id = _worker_id(spec["id"])
                base = next((w for w in config.all() if w.id == worker_id), None)
                if base is None:
                    raise UnknownWorkerError(worker_id)
                worker = _build(spec, base)
            else:
                worker = _build(spec, None)
            if worker.local:
                updated = replace(config, local=worker)
            else:
                remote = [worker if w.id == worker.id else w for w in config.remote]
                if worker.id not in {w.id for w in config.remote}:
                    remote.append(worker)
                _check_unique(remote)
                updated = replace(config, remote=tuple(remote))
            self._write(updated)
        return worker

    def remove(self, worker_id: str) -> None:
        """Deletes a remote worker from the file.

        Raises:
            UnknownWorkerError: no such worker.
            WorkerConfigError: the local server (turn it off with ``enabled: false`` instead), or an unreadable file.
        """
        with self._write_lock:
            config = self._writable()
            if worker_id == LOCAL_WORKER_ID:
                raise WorkerConfigError("id", "the local server cannot be deleted; set enabled to false instead")
            if worker_id not in {w.id for w in config.remote}:
                raise UnknownWorkerError(worker_id)
            self._write(replace(config, remote=tuple(w for w in config.remote if w.id != worker_id)))

    # ---------------------------------------------------------------- internals
    def _current(self) -> _Config:
        """The configuration, re-read first when the file changed on disk (one ``stat`` per call)."""
        if self._path is not None and _signature(self._path) != self._signature:
            self._reload()
        with self._lock:
            return self._config

    def _reload(self) -> None:
        if self._path is None:
            return
        signature = _signature(self._path)
        error: str | None = None
        config: _Config | None = None
        if signature is None:
            config = _EMPTY
        else:
            try:
                with open(self._path, encoding="utf-8") as handle:
                    text = handle.read()
                config = _decode(text)
            except (OSError, UnicodeDecodeError, WorkerConfigError) as exc:
                error = f"{self._path}: {exc}"
        if error is not None:
            logger.error("WI: the workers file cannot be used (keeping the previous list): %s", error)
        with self._lock:
            self._signature = signature
            self._file_error = error
            if config is not None:
                self._config = config
            changes = self._collect_changes(self._config)
        self._notify(changes)

    def _writable(self) -> _Config:
        config = self._current()
        if self._path is None:
            raise WorkerConfigError("file", "no user directory: workers cannot be saved")
        with self._lock:
            if self._file_error is not None:
                raise WorkerConfigError("file", f"fix or delete the workers file first ({self._file_error})")
        return config

    def _write(self, config: _Config) -> None:
        assert self._path is not None  # _writable checked it
        os.makedirs(os.path.dirname(self._path) or ".", exist_ok=True)
        write_text(self._path, _encode(config))
        # Also private to the user running ComfyUI: the file holds auth headers.
        try:
            os.chmod(self._path, 0o600)
        except OSError:
            logger.debug("WI: could not restrict %s", self._path, exc_info=True)
        signature = _signature(self._path)
        with self._lock:
            self._config = config
            self._signature = signature
            self._file_error = None
            changes = self._collect_changes(config)
        self._notify(changes)

    def _health_of(self, config: _Config, worker_id: str) -> WorkerHealth:
        if worker_id == LOCAL_WORKER_ID:
            # The local server answers by definition; its queue depth comes from reports (the probe asks ComfyUI).
            known = self._health.get(worker_id)
            return known if known is not None and known.reachable else WorkerHealth(reachable=True)
        return self._health.get(worker_id) or _NOT_CHECKED

    def _collect_changes(self, config: _Config) -> list[tuple[StateListener, str, WorkerState | None, str | None]]:
        """Under the lock: every worker whose state differs from the last one announced, paired with each listener."""
        changes: list[tuple[str, WorkerState | None, str | None]] = []
        present = {w.id for w in config.all()}
        for worker in config.all():
            health = self._health_of(config, worker.id)
            state = worker_state(worker, health)
            if self._states.get(worker.id) != state:
                self._states[worker.id] = state
                detail = _state_detail(health) if state in ("unreachable", "busy") else None
                changes.append((worker.id, state, detail))
        for gone in [worker_id for worker_id in self._states if worker_id not in present]:
            del self._states[gone]
            self._health.pop(gone, None)
            changes.append((gone, None, "removed"))
        return [(listener, *change) for change in changes for listener in self._listeners]

    @staticmethod
    def _notify(changes: Sequence[tuple[StateListener, str, WorkerState | None, str | None]]) -> None:
        for listener, worker_id, state, detail in changes:
            try:
                listener(worker_id, state, detail)
            except Exception:  # a broken listener must not stop the others or the caller
                logger.exception("WI: worker state listener failed")
