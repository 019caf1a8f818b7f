"""Every worker process's metric files, merged into one scrape.

prometheus-client's multiprocess mode gives each process its own memory-mapped file. A
process that is starting creates its file empty and sizes it a moment later, and the
library's own collector fails the whole scrape when it reads a file in that moment. This
collector leaves such a file out until it is sized: a scrape during a worker's start loses
only that process's samples, which are still zero.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

# A sized file starts with the 8-byte header that says how much of it is used.
_HEADER_BYTES = 8


class ProcessFilesCollector:
    """Merges the metric files in ``directory`` at each scrape, skipping unsized ones."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._directory = Path(directory)
        if not self._directory.is_dir():
            raise ValueError(f"PROMETHEUS_MULTIPROC_DIR: {str(directory)!r} is not a directory")

    def collect(self) -> Iterable[Metric]:
        """The merged metrics of every sized process file."""
        files = [str(path) for path in sorted(self._directory.glob("*.db")) if _sized(path)]
        merged: Iterable[Metric] = MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call]
        return merged


def process_registry(directory: str | os.PathLike[str]) -> CollectorRegistry:
    """A registry holding only the merged process files of ``directory``."""
    registry = CollectorRegistry()
    registry.register(ProcessFilesCollector(directory))
    return registry


def _sized(path: Path) -> bool:
    try:
        return path.stat().st_size >= _HEADER_BYTES
    except FileNotFoundError:
        # A process marked dead took its file between the glob and now.
        return False
