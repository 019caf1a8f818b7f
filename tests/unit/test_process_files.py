"""The merged scrape survives a worker process that is creating its metric file."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

from workers.observe.process_files import ProcessFilesCollector, process_registry


def _write_counter(directory: Path, pid: int, value: float) -> None:
    key = json.dumps(
        ["giftsync_demo", "giftsync_demo_total", {"tenant": "lake"}, "Demo."], sort_keys=True
    )
    values = MmapedDict(str(directory / f"counter_{pid}.db"))  # type: ignore[no-untyped-call]
    values.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]
    values.close()  # type: ignore[no-untyped-call]


def _total(directory: Path) -> float:
    return sum(
        sample.value
        for family in process_registry(directory).collect()
        for sample in family.samples
        if sample.name == "giftsync_demo_total"
    )


def test_a_file_created_but_not_yet_sized_is_left_out(tmp_path: Path) -> None:
    _write_counter(tmp_path, 101, 3.0)
    _write_counter(tmp_path, 102, 4.0)
    # The moment between a starting process's open() and its truncate().
    (tmp_path / "counter_103.db").touch()

    with pytest.raises(struct.error):
        list(MultiProcessCollector.merge([str(p) for p in tmp_path.glob("*.db")]))  # type: ignore[no-untyped-call]
    assert _total(tmp_path) == 7.0


def test_a_sized_file_not_yet_written_counts_nothing(tmp_path: Path) -> None:
    _write_counter(tmp_path, 101, 3.0)
    # Sized but its header not yet written: all zeros.
    with (tmp_path / "counter_104.db").open("wb") as handle:
        handle.truncate(1 << 20)
    assert _total(tmp_path) == 3.0


def test_a_missing_directory_is_named() -> None:
    with pytest.raises(ValueError, match="PROMETHEUS_MULTIPROC_DIR: '/nonexistent/prom'"):
        ProcessFilesCollector("/nonexistent/prom")
