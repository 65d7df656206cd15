"""Test-only pack for the multi-server tests (issue 14): gives the master's sweep service a worker directory
read from the JSON file named by ``WI_TEST_WORKERS_FILE`` (re-read on every sweep, so a test can change the
list between batches). It replaces the real directory (``core/worker_registry.py``) on that master, so the
dispatch is tested against real servers on its own."""
import json
import os
import sys

NODE_CLASS_MAPPINGS = {}


class _FileDirectory:
    def __init__(self, path, config_class, health_class):
        self.path, self.config_class, self.health_class = path, config_class, health_class

    def workers(self):
        try:
            with open(self.path, encoding="utf-8") as handle:
                entries = json.load(handle)
        except (OSError, ValueError):
            return []
        return [self.config_class(str(e["id"]), str(e.get("name", e["id"])), e.get("url"),
                                  float(e.get("weight", 1.0)), bool(e.get("enabled", True)), e.get("auth_header"))
                for e in entries]

    def health(self, worker_id):
        return self.health_class(reachable=True)

    def report(self, worker_id, *, reachable, queue_depth=None, error=None):
        pass


def _attach(json_data):
    path = os.environ.get("WI_TEST_WORKERS_FILE")
    if path:
        for module in list(sys.modules.values()):
            service = getattr(module, "_service", None) if getattr(module, "__name__", "").endswith(".nodes") else None
            # Replaces the real registry (core/worker_registry.py, tested on its own) for this test master only:
            # the dispatch tests rewrite the list between batches.
            if service is not None and hasattr(service, "workers") and not isinstance(service.workers, _FileDirectory):
                workers_module = sys.modules[type(service).__module__.rsplit(".", 1)[0] + ".workers"]
                service.workers = _FileDirectory(path, workers_module.WorkerConfig, workers_module.WorkerHealth)
    return json_data


try:
    import server

    server.PromptServer.instance.add_on_prompt_handler(_attach)
except Exception:  # outside ComfyUI
    pass
