"""Run the model-free example sweep in a real ComfyUI with this pack, on the CPU, and show where the grid is.

    python3 tools/run_example.py                 # start ComfyUI, run the 3x3 sweep, copy results, stop
    python3 tools/run_example.py --keep-running  # leave ComfyUI running to open it in a browser

Uses an existing ComfyUI (COMFYUI_DIR / COMFYUI_PYTHON, default /opt/ComfyUI); it never installs one.
Standard library only, so any Python 3.10+ runs it.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.comfy_harness import REPO_ROOT, ComfyServer, locate_comfyui  # noqa: E402

logger = logging.getLogger("wi.example")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflow", default=str(REPO_ROOT / "example_workflows" / "api" / "model_free_sweep_api.json"))
    parser.add_argument("--out", default="wi-example-output", help="where to copy the batch folder")
    parser.add_argument("--keep-running", action="store_true", help="leave ComfyUI running (Ctrl+C stops it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    found = locate_comfyui()
    if isinstance(found, str):
        logger.error("cannot run the example: %s", found)
        return 2
    prompt = json.loads(Path(args.workflow).read_text())
    server = ComfyServer()
    try:
        logger.info("starting ComfyUI (%s) on the CPU ...", found[0])
        server.start()
        logger.info("ComfyUI with Workflow Iterator at %s", server.url)
        code, answer = server.queue_prompt(prompt)
        if code != 200:
            logger.error("ComfyUI refused the example (%s): %s", code, json.dumps(answer))
            return 1
        batch = server.batch_for_prompt(answer["prompt_id"])
        logger.info("batch %s: %d cells queued", batch["batch_id"], batch["counts"]["total"])
        status = server.wait_batch(batch["batch_id"], need_grid=True, timeout=300)
        counts = status["counts"]
        logger.info("batch %s %s: %d done, %d failed, %d cancelled in %.1fs", status["batch_id"], status["state"],
                    counts["done"], counts["failed"], counts["cancelled"], status["timings"]["elapsed_s"] or 0)
        source = server.output_dir / status["grid"]["subfolder"]
        target = Path(args.out).resolve() / status["batch_id"]
        shutil.copytree(source, target, dirs_exist_ok=True)
        logger.info("grid:    %s", target / status["grid"]["filename"])
        logger.info("viewer:  %s", target / "viewer.html")
        logger.info("cells, batch.json and batch.csv: %s", target)
        if args.keep_running:
            logger.info("ComfyUI keeps running at %s (Ctrl+C to stop)", server.url)
            while True:
                time.sleep(3600)
        return 0 if status["state"] == "complete" and counts["done"] == counts["total"] else 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
