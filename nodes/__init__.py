"""ComfyUI-facing layer: thin V1 nodes, routes, and ``register()`` wiring the core service into the server."""
from __future__ import annotations

import logging
import threading
from typing import Any

logger = logging.getLogger(__name__)

_register_lock = threading.Lock()
#: While batches run, the loop records the cells ComfyUI's worker started and finished (and sends their
#: wi.* events) this often: the worker hands each start and end over and goes straight on with its prompt.
HANDOFF_INTERVAL_S = 0.1
_service: Any = None
#: The worker list (core/worker_registry.py), once register() ran inside ComfyUI.
_worker_registry: Any = None


def register() -> Any:
    """Install the onprompt hook, queue observers and routes into the running ComfyUI, once.

    Returns the ``SweepService`` (None outside ComfyUI). Safe to call again: later calls return the first
    service.
    """
    global _service, _worker_registry
    from . import _comfy

    with _register_lock:
        if _service is not None:
            return _service
        server_instance = _comfy.prompt_server()
        if server_instance is None:
            logger.debug("WI: no running ComfyUI server; nodes defined, hooks not installed")
            return None
        from ..core.iteration_state import IterationStateManager
        from ..core.sweep import SweepService
        from . import api_routes, routes
        from .outputs import GridService

        host = _comfy.ComfyHost(server_instance)
        manager = IterationStateManager.instance()
        from .remote_comfy import RemoteComfy

        # With only the local worker listed, the dispatcher stays out of the way: nothing changes.
        worker_registry = _install_workers(server_instance, host, _comfy.user_directory())
        service = SweepService(manager, host, journal=_open_journal(_comfy.user_directory()),
                               grid_builder=GridService(manager, host).build, handoff_interval=HANDOFF_INTERVAL_S,
                               workers=worker_registry, remote=RemoteComfy())
        host.install(service)  # service.handle_prompt is the hook's one catch-all boundary
        routes.add_routes(server_instance.routes, service)
        api_routes.add_routes(server_instance.routes, service)
        service.restore_interrupted()
        _service = service
        logger.info("WI: Workflow Iterator installed")
        return service


def _open_journal(user_dir: str | None) -> Any:
    """The durable batch journal in ComfyUI's user directory (None, with a warning, if it cannot be had)."""
    import os

    from ..core.journal import BatchJournal

    if not user_dir:
        logger.warning("WI: no user directory; batches will not survive a restart")
        return None
    try:
        return BatchJournal(os.path.join(user_dir, "workflow_iterator", "batches.sqlite3"))
    except Exception:  # the journal is a safety net: ComfyUI must start without it
        logger.exception("WI: batch journal unavailable; batches will not survive a restart")
        return None


def _install_workers(server_instance: Any, host: Any, user_dir: str | None) -> Any:
    """The worker list (issue 14), its routes and its health probe; the registry (in memory without a user dir)."""
    from ..core.worker_registry import WorkerRegistry, workers_file_path
    from . import _comfy
    from .worker_health import HealthProbe
    from .worker_routes import add_worker_routes

    registry = WorkerRegistry(workers_file_path(user_dir) if user_dir else None)
    probe = HealthProbe(registry, local_depth=lambda: _comfy.local_queue_depth(server_instance))
    add_worker_routes(server_instance.routes, registry, send_event=host.send_event, on_change=probe.wake)
    probe.start(server_instance.loop)
    return registry
