"""Start and drive a real ComfyUI with this pack installed: for integration tests, the example and benchmarks.

It only *uses* existing ComfyUI installs. Which ones (:func:`locate_backends`):

* ``COMFYUI_DIR`` and/or ``COMFYUI_PYTHON`` (defaults ``/opt/ComfyUI`` and ``<dir>/.venv/bin/python``):
  exactly that one;
* else ``WI_COMFYUI_DIRS``, space-separated checkouts, default ``/opt/ComfyUI /opt/ComfyUI-0.8`` (0.3.64 and
  0.8.0), each run with its own ``.venv/bin/python``.

Each server gets its own ``--base-directory`` in a temporary folder whose ``custom_nodes`` holds links to this
repository (and to any extra test packs), so the install itself is never modified. The server listens on a free
loopback port only.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
PACK_LINK_NAME = "comfyui-workflow-iterator"
DEFAULT_DIR = "/opt/ComfyUI"
DEFAULT_DIRS = "/opt/ComfyUI /opt/ComfyUI-0.8"
_VERSION_RE = re.compile(r"""^__version__\s*=\s*['"]([^'"]+)['"]""", re.MULTILINE)


@dataclass(frozen=True)
class Backend:
    """One usable ComfyUI install: its checkout, its interpreter and the version it declares."""

    comfy_dir: Path
    python: Path
    version: str

    @property
    def label(self) -> str:
        """The test id of this backend, e.g. ``comfyui-0.8.0``."""
        return f"comfyui-{self.version}"

    def describe(self) -> str:
        return f"ComfyUI {self.version} at {self.comfy_dir}"


def comfyui_version(comfy_dir: Path) -> str:
    """The version in ``comfyui_version.py`` (0.3.x and later), else ``unknown``."""
    try:
        match = _VERSION_RE.search((comfy_dir / "comfyui_version.py").read_text(errors="replace"))
    except OSError:
        return "unknown"
    return match.group(1) if match else "unknown"


def _check(comfy_dir: Path, python: Path) -> Backend | str:
    if not (comfy_dir / "main.py").is_file():
        return f"no ComfyUI at {comfy_dir} (set COMFYUI_DIR or WI_COMFYUI_DIRS to ComfyUI checkouts)"
    if not os.access(python, os.X_OK):
        return f"no Python interpreter at {python} (set COMFYUI_PYTHON to ComfyUI's interpreter)"
    return Backend(comfy_dir, python, comfyui_version(comfy_dir))


def locate_backends() -> list[tuple[str, Backend | str]]:
    """Every configured ComfyUI as ``(directory, Backend or the reason it is unusable)``, in the order given."""
    if os.environ.get("COMFYUI_DIR") or os.environ.get("COMFYUI_PYTHON"):  # the single override
        comfy_dir = Path(os.environ.get("COMFYUI_DIR") or DEFAULT_DIR)
        python = Path(os.environ.get("COMFYUI_PYTHON") or comfy_dir / ".venv" / "bin" / "python")
        return [(str(comfy_dir), _check(comfy_dir, python))]
    dirs = os.environ.get("WI_COMFYUI_DIRS", DEFAULT_DIRS).split()
    return [(entry, _check(Path(entry), Path(entry) / ".venv" / "bin" / "python")) for entry in dirs]


def locate_backend() -> Backend | str:
    """The first usable backend, or a sentence saying why none is."""
    reasons = []
    for _, result in locate_backends():
        if isinstance(result, Backend):
            return result
        reasons.append(result)
    return "; ".join(reasons) or "no ComfyUI configured (WI_COMFYUI_DIRS is empty)"


def locate_comfyui() -> tuple[Path, Path] | str:
    """``(comfy_dir, python)`` of the first usable backend, or a sentence saying why none was found."""
    found = locate_backend()
    return found if isinstance(found, str) else (found.comfy_dir, found.python)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ComfyServer:
    """A ComfyUI process on 127.0.0.1 with this pack (and optional extra node packs) linked in.

    ``with_pack=False`` starts a stock ComfyUI (only the extra packs): a remote worker of issue 14. ``env``
    adds environment variables for the server process.
    """

    def __init__(self, *, extra_packs: dict[str, Path] | None = None, extra_args: list[str] | None = None,
                 base_dir: Path | None = None, backend: Backend | None = None, with_pack: bool = True,
                 env: dict[str, str] | None = None) -> None:
        found = backend or locate_backend()
        if isinstance(found, str):
            raise RuntimeError(found)
        self.backend = found
        self.comfy_dir, self.python = found.comfy_dir, found.python
        self.port = free_port()
        self._owns_base = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="wi-comfy-"))
        self.extra_packs = dict(extra_packs or {})
        self.extra_args = list(extra_args or [])
        self.with_pack = with_pack
        self.env = dict(env or {})
        self.process: subprocess.Popen | None = None
        self.log_path = self.base_dir / "comfyui.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    def start(self, timeout: float = 180.0) -> "ComfyServer":
        custom_nodes = self.base_dir / "custom_nodes"
        custom_nodes.mkdir(parents=True, exist_ok=True)
        packs = {PACK_LINK_NAME: REPO_ROOT} if self.with_pack else {}
        for name, target in {**packs, **self.extra_packs}.items():
            link = custom_nodes / name
            if not link.exists():
                link.symlink_to(target, target_is_directory=True)
        for sub in ("input", "output", "temp", "user", "models"):
            (self.base_dir / sub).mkdir(exist_ok=True)
        command = [str(self.python), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
                   "--base-directory", str(self.base_dir), "--disable-auto-launch",
                   "--database-url", f"sqlite:///{self.base_dir / 'user' / 'comfyui.db'}", *self.extra_args]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, cwd=self.comfy_dir, stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}; log: {self.log_tail()}")
            try:
                probe = "WIIterator" if self.with_pack else "EmptyImage"
                status, info = self.get(f"/object_info/{probe}")
                if status == 200 and probe in info:
                    return self
                if status == 200:
                    raise RuntimeError(f"ComfyUI started without the WI pack; log: {self.log_tail()}")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"ComfyUI did not answer within {timeout:.0f}s; log: {self.log_tail()}")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        if self._owns_base:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ------------------------------------------------------------------ HTTP
    def request(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data is not None else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        return self.request("POST", path, body)

    def queue_prompt(self, prompt: dict, *, client_id: str | None = None, **extra: Any) -> tuple[int, Any]:
        body = {"prompt": prompt, "client_id": client_id or uuid.uuid4().hex, **extra}
        return self.post("/prompt", body)

    def batch_for_prompt(self, prompt_id: str, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for summary in self.get("/wi/status")[1]["batches"]:
                status = self.get(f"/wi/status/{summary['batch_id']}")[1]
                if any(cell.get("prompt_id") == prompt_id for cell in status["cells"]):
                    return status
            time.sleep(0.1)
        raise TimeoutError(f"no batch has prompt {prompt_id}")

    def wait_batch(self, batch_id: str, states: tuple[str, ...] = ("complete", "cancelled"), timeout: float = 120.0,
                   need_grid: bool = False) -> dict:
        """The batch's status once it is in one of ``states``; for a terminal state (complete, cancelled) also
        once every cell has ended, because a cancelled batch's interrupted cell ends when ComfyUI reports it,
        after the batch already reads "cancelled"."""
        deadline = time.monotonic() + timeout
        status: dict = {}
        while time.monotonic() < deadline:
            code, status = self.get(f"/wi/status/{batch_id}")
            if code == 200 and status["state"] in states and (not need_grid or status.get("grid")):
                counts = status.get("counts") or {}
                ended = sum(counts.get(key, 0) for key in ("done", "failed", "cancelled", "skipped"))
                if status["state"] not in ("complete", "cancelled") or ended >= counts.get("total", 0):
                    return status
            time.sleep(0.1)
        raise TimeoutError(f"batch {batch_id} did not reach {states}: {status.get('state')} {status.get('counts')}")

    def wait_history(self, prompt_id: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code, history = self.get(f"/history/{prompt_id}")
            if code == 200 and prompt_id in history:
                return history[prompt_id]
            time.sleep(0.1)
        raise TimeoutError(f"prompt {prompt_id} did not finish")

    def wait_idle(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, queue = self.get("/queue")
            if not queue["queue_running"] and not queue["queue_pending"]:
                return
            time.sleep(0.1)
        raise TimeoutError("queue did not drain")


def cell_values(status: dict[str, Any], cell: dict[str, Any]) -> dict[str, Any]:
    """A status cell's values by axis name: ``GET /wi/status/{id}`` gives a cell's coordinates and each value
    once, on its axis."""
    return {axis["name"]: axis["values"][coord] for axis, coord in zip(status["axes"], cell["coords"])}
