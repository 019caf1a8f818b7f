"""The benchmarks still run: ``python -m benchmarks.run --quick`` exits 0 and prints every figure.

It asserts nothing about speed (a shared CI machine makes that meaningless); it keeps the
harness from rotting between the runs that produce the README's figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.run import BENCHMARKS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_quick_benchmarks_run_and_print_every_figure(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    output = completed.stdout
    assert completed.returncode == 0, output[-3000:] + completed.stderr[-3000:]
    for name, module in BENCHMARKS.items():
        assert f"== {name}:" in output
        for label in module.FIGURES:
            assert f"  {label}: " in output, f"{name} did not print {label!r}"
    document = json.loads((tmp_path / "results-quick.json").read_text(encoding="utf-8"))
    assert [b["name"] for b in document["benchmarks"]] == list(BENCHMARKS)
    assert document["machine"]["nproc"] >= 1
    assert "| benchmark | figure |" in (tmp_path / "RESULTS-quick.md").read_text()
    print("\n" + output)
