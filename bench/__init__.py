"""Benchmarks: each module exposes run(quick) -> list[dict] and prints ratios against baselines measured in the same run."""
