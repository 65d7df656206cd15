"""A Python client of the Workflow Iterator's HTTP API (standard library only).

    from workflow_iterator import Client

    client = Client("http://127.0.0.1:8188")
    batch = client.sweep("workflow_api.json", ["KSampler.cfg=4-8 (+2)", "KSampler.sampler_name=euler, dpmpp_2m"])
    status = batch.wait()              # follows the batch's server-sent events until it ends
    paths = batch.download("results")  # grid pages, batch.json, batch.csv, viewer.html and every cell image

Axis text is ``TARGET=VALUES`` or ``TARGET:TYPE=VALUES``; TARGET is ``Class.input``, ``id.input`` or
``Title.input`` and VALUES the value syntax (docs/value-syntax.md). The server infers the type from the
target input when it is not given.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["AXIS_TYPES", "ApiError", "Batch", "Client", "RemoteFile", "parse_axis", "is_settled"]

AXIS_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "SEED")
DEFAULT_SERVER = "http://127.0.0.1:8188"
#: Longer than the server's keep-alive interval (15 s): a silent stream this long is a lost connection.
STREAM_TIMEOUT_S = 60.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ApiError(Exception):
    """The server answered with an error (``status`` is the HTTP code, 0 when it could not be reached)."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status, self.body = status, body


def parse_axis(text: str) -> dict[str, str]:
    """``"KSampler.cfg:FLOAT=4-8 (+2)"`` -> ``{"target": "KSampler.cfg", "type": "FLOAT", "values": "4-8 (+2)"}``.

    Raises:
        ValueError: no ``=``, or nothing on one side of it.
    """
    target, sep, values = text.partition("=")
    target = target.strip()
    if not sep or not target or not values.strip():
        raise ValueError(f"axis {text!r} must look like TARGET=VALUES, e.g. \"KSampler.cfg=4-8 (+2)\"")
    axis: dict[str, str] = {"target": target, "values": values.strip()}
    head, colon, kind = target.rpartition(":")
    if colon and kind.strip().upper() in AXIS_TYPES and head.strip():
        axis["target"], axis["type"] = head.strip(), kind.strip().upper()
    return axis


def is_settled(status: Mapping[str, Any]) -> bool:
    """The batch will not change any more: complete, expired, or cancelled with its (partial) grid stored."""
    state = status.get("state")
    return state in ("complete", "expired") or (state == "cancelled" and status.get("grid") is not None)


@dataclass(frozen=True)
class RemoteFile:
    """One file of a batch on the server: ``kind`` is grid, manifest, viewer or cell; ``local`` its path
    relative to a download folder."""

    kind: str
    url: str
    local: str


def _safe(part: str) -> str:
    return _UNSAFE.sub("_", part).strip("._") or "_"


class Client:
    """The API of one ComfyUI server with the pack installed."""

    def __init__(self, url: str = DEFAULT_SERVER, *, timeout: float = 30.0, headers: Mapping[str, str] | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = dict(headers or {})

    # ------------------------------------------------------------------ transport
    def _open(self, method: str, path: str, body: Any = None, *, timeout: float | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", **self.headers}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout if timeout is None else timeout)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode("utf-8", "replace")
            message = parsed.get("detail") or parsed.get("error") if isinstance(parsed, dict) else str(parsed)
            raise ApiError(exc.code, f"{method} {path}: HTTP {exc.code}: {message}", parsed) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(0, f"cannot reach {self.url}: {reason}") from None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON request; returns the parsed answer.

        Raises:
            ApiError: an error answer (its ``body`` is the server's JSON) or an unreachable server.
        """
        with self._open(method, path, body) as response:
            return json.loads(response.read() or b"null")

    def request_status(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        with self._open(method, path, body) as response:
            return response.status, json.loads(response.read() or b"null")

    def read_bytes(self, url_or_path: str) -> bytes:
        path = url_or_path[len(self.url):] if url_or_path.startswith(self.url) else url_or_path
        with self._open("GET", path) as response:
            data: bytes = response.read()
            return data

    # ------------------------------------------------------------------ sweeps
    def _sweep_body(self, prompt: Any, axes: Sequence[str | Mapping[str, Any]], *, mode: str = "matrix",
                    grid: Mapping[str, Any] | None = None, batch_name: str | None = None,
                    client_id: str | None = None, idempotency_key: str | None = None, dry_run: bool = False,
                    **extra: Any) -> dict[str, Any]:
        if isinstance(prompt, (str, os.PathLike)):
            with open(prompt, encoding="utf-8") as handle:
                prompt = json.load(handle)
        body: dict[str, Any] = {"prompt": prompt, "axes": [parse_axis(a) if isinstance(a, str) else dict(a) for a in axes],
                                "mode": mode, "dry_run": dry_run, **extra}
        for key, value in (("grid", grid), ("batch_name", batch_name), ("client_id", client_id),
                           ("idempotency_key", idempotency_key)):
            if value is not None:
                body[key] = value
        return body

    def plan(self, prompt: Any, axes: Sequence[str | Mapping[str, Any]], **options: Any) -> dict[str, Any]:
        """What :meth:`sweep` would queue (``dry_run``): the count, every axis's values and labels, the grid."""
        answer: dict[str, Any] = self.request("POST", "/wi/batches", self._sweep_body(prompt, axes, dry_run=True, **options))
        return answer

    def sweep(self, prompt: Any, axes: Sequence[str | Mapping[str, Any]], **options: Any) -> Batch:
        """Queue a sweep of ``prompt`` (an API-format workflow, or the path of its JSON file) over ``axes``.

        Options: ``mode`` ("matrix" | "linear"), ``grid`` (grid options; None: no grid), ``batch_name``,
        ``client_id``, ``idempotency_key`` (the same key again returns the first batch).
        """
        answer = self.request("POST", "/wi/batches", self._sweep_body(prompt, axes, **options))
        return Batch(self, str(answer["batch_id"]), count=int(answer["count"]), grid=answer.get("grid"))

    def batch(self, batch_id: str) -> Batch:
        return Batch(self, batch_id)

    def status(self, batch_id: str, *, offset: int = 0, limit: int = 200) -> dict[str, Any]:
        answer: dict[str, Any] = self.request("GET", f"/wi/status/{urllib.parse.quote(batch_id)}?offset={offset}&limit={limit}")
        return answer

    def batches(self) -> list[dict[str, Any]]:
        """Summaries of the batches the server holds in memory, newest first."""
        return list(self.request("GET", "/wi/status")["batches"])

    def history(self, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        answer: dict[str, Any] = self.request("GET", f"/wi/batches?limit={limit}&offset={offset}")
        return answer

    def cancel(self, batch_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.request("POST", f"/wi/cancel_batch/{urllib.parse.quote(batch_id)}")
        return answer

    def resume(self, batch_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.request("POST", f"/wi/resume/{urllib.parse.quote(batch_id)}")
        return answer

    def events(self, batch_id: str, *, timeout: float = STREAM_TIMEOUT_S) -> Iterator[tuple[str, dict[str, Any]]]:
        """The batch's server-sent events as ``(event, data)``, starting with ``snapshot``; ends with the batch.

        Raises:
            ApiError: unknown batch (404) or an unreachable server.
        """
        response = self._open("GET", f"/wi/batches/{urllib.parse.quote(batch_id)}/events", timeout=timeout)
        with response:
            event, data_lines = "message", list[str]()
            for raw in response:
                line = raw.decode("utf-8").rstrip("\r\n")
                if not line:
                    if data_lines:
                        yield event, json.loads("\n".join(data_lines))
                    event, data_lines = "message", list[str]()
                elif line.startswith(":"):
                    continue  # keep-alive comment
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data_lines.append(line[5:].lstrip())

    def all_cells(self, batch_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The batch status and every cell (paged through ``/wi/status/{id}``)."""
        first = self.status(batch_id, offset=0, limit=1000)
        cells = list(first.get("cells") or [])
        total = int((first.get("cells_page") or {}).get("total", first.get("total", len(cells))))
        while len(cells) < total:
            page = self.status(batch_id, offset=len(cells), limit=1000)
            more = page.get("cells") or []
            if not more:
                break
            cells.extend(more)
        return first, cells


ProgressFn = Callable[[str, Mapping[str, Any]], None]


class Batch:
    """A handle on one batch of the server."""

    def __init__(self, client: Client, batch_id: str, *, count: int | None = None, grid: Any = None) -> None:
        self.client, self.id, self.count, self.grid_estimate = client, batch_id, count, grid

    def __repr__(self) -> str:
        return f"Batch({self.id!r}, count={self.count})"

    def status(self) -> dict[str, Any]:
        return self.client.status(self.id, limit=1)

    def cancel(self) -> dict[str, Any]:
        return self.client.cancel(self.id)

    def wait(self, *, on_event: ProgressFn | None = None, poll_s: float = 1.0, timeout: float | None = None) -> dict[str, Any]:
        """Follow the batch until it is settled; returns its final status (without cells).

        Reads the event stream; if the stream breaks it polls ``/wi/status/{id}`` instead. ``on_event(event,
        data)`` sees every event (``snapshot``, ``cell_ended``, ..., and ``status`` for each poll).

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
            ApiError: the batch is unknown.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for event, data in self.client.events(self.id):
                if on_event is not None:
                    on_event(event, data)
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"batch {self.id} still running after {timeout} s")
        except ApiError as exc:
            if exc.status == 404:
                raise
            logger.debug("event stream of %s broke (%s); polling", self.id, exc)
        except (OSError, ValueError) as exc:  # a dropped connection or a cut-off line
            logger.debug("event stream of %s broke (%s); polling", self.id, exc)
        while True:
            status = self.status()
            if on_event is not None:
                on_event("status", status)
            if is_settled(status) or status.get("state") == "interrupted":
                status.pop("cells", None)
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"batch {self.id} still running after {timeout} s")
            time.sleep(poll_s)

    def files(self) -> list[RemoteFile]:
        """Every file the batch has on the server: grid pages, manifest, viewer and each cell's images.

        Files in the batch's folder come through ``/wi/batch/{id}/{name}`` (kept flat, as the viewer links
        them); cell images saved elsewhere (another save node's folder) through ComfyUI's ``/view``, under
        ``other/<subfolder>/``.
        """
        status, cells = self.client.all_cells(self.id)
        subfolder = str((status.get("meta") or {}).get("subfolder") or "")
        base = f"{self.client.url}/wi/batch/{urllib.parse.quote(self.id)}/"
        found: list[RemoteFile] = []
        seen: set[str] = set()

        def add(kind: str, ref: Mapping[str, Any]) -> None:
            name = os.path.basename(str(ref.get("filename") or ""))
            sub = str(ref.get("subfolder") or "")
            if not name:
                return
            if sub == subfolder and str(ref.get("type", "output")) == "output":
                remote = RemoteFile(kind, base + urllib.parse.quote(name), name)
            else:
                query = urllib.parse.urlencode({"filename": name, "subfolder": sub, "type": ref.get("type", "output")})
                local = "/".join(["other", *(_safe(p) for p in sub.split("/") if p), _safe(name)])
                remote = RemoteFile(kind, f"{self.client.url}/view?{query}", local)
            if remote.local not in seen:
                seen.add(remote.local)
                found.append(remote)

        grid = status.get("grid") or {}
        for page in grid.get("pages") or []:
            add("grid", page)
        for key, kind in (("manifest", "manifest"), ("viewer", "viewer")):
            if isinstance(grid.get(key), Mapping):
                add(kind, grid[key])
        if isinstance(grid.get("manifest"), Mapping):
            add("manifest", {**grid["manifest"], "filename": "batch.csv"})
        for cell in cells:
            for ref in cell.get("files") or []:
                add("cell", ref)
        return found

    def download(self, out_dir: str | os.PathLike[str], *, on_file: Callable[[RemoteFile, str], None] | None = None
                 ) -> list[str]:
        """Download :meth:`files` into ``out_dir`` (created); returns the local paths written. A file the
        server no longer has (404) is skipped with a warning."""
        root = os.path.abspath(out_dir)
        written = []
        for remote in self.files():
            path = os.path.abspath(os.path.join(root, remote.local))
            if os.path.commonpath([root, path]) != root:  # names come from the server: never leave out_dir
                logger.warning("skipping %s: outside %s", remote.local, root)
                continue
            try:
                data = self.client.read_bytes(remote.url)
            except ApiError as exc:
                if exc.status == 404:
                    logger.warning("not on the server any more: %s", remote.local)
                    continue
                raise
            os.makedirs(os.path.dirname(path), exist_ok=True)
            partial = path + ".part"
            with open(partial, "wb") as handle:
                handle.write(data)
            os.replace(partial, path)
            written.append(path)
            if on_file is not None:
                on_file(remote, path)
        return written
