"""The benchmark report: the machine it ran on, and the results as JSON and as a markdown table.

Figures from a shared 2-core machine are noisy, so the report keeps the load average seen at
the start and the end of the run beside them.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import Result
from giftsync.embedded_redis import find_redis_server

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "RESULTS.md"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _redis_version() -> str:
    try:
        out = subprocess.run(
            [find_redis_server(), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except Exception as exc:
        return f"unknown ({exc})"
    # "Redis server v=7.0.15 sha=... malloc=jemalloc-5.3.0 bits=64 build=..."
    words = dict(w.split("=", 1) for w in out.split() if "=" in w)
    return words.get("v", out.strip() or "unknown")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": _cpu_model(),
        "ram_gib": round(_ram_gib(), 1),
        "python": platform.python_version(),
        "redis": _redis_version(),
        "os": f"{platform.system()} {platform.release()}",
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


def write(
    results: list[Result],
    info: dict[str, Any],
    command: str,
    json_path: Path = RESULTS_JSON,
    md_path: Path = RESULTS_MD,
) -> None:
    """Write results.json and RESULTS.md."""
    info = {**info, "load_average_end": [round(x, 2) for x in os.getloadavg()]}
    document = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": info,
        "benchmarks": [asdict(r) for r in results],
    }
    json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown(document), encoding="utf-8")


def _value(figure: dict[str, Any]) -> str:
    value = figure["value"]
    if isinstance(value, float):
        text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text} {figure['unit']}".strip()


def markdown(document: dict[str, Any]) -> str:
    """The results as a markdown section: the machine, the command, one table row per figure."""
    m = document["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Measured {document['when']} with `{document['command']}` on {m['nproc']} cores "
        f"({m['cpu']}), {m['ram_gib']} GiB RAM, Python {m['python']}, Redis {m['redis']}, "
        f"{m['os']}. Load average (1, 5, 15 min) at the start {m['load_average_start']}, "
        f"at the end {m['load_average_end']}.",
        "",
        "| benchmark | figure | value | target | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for bench in document["benchmarks"]:
        for figure in bench["figures"]:
            met = {True: "yes", False: "**no**", None: ""}[figure["met"]]
            lines.append(
                f"| {bench['title']} | {figure['label']} | {_value(figure)} | "
                f"{figure['target']} | {met} |"
            )
    lines.append("")
    for bench in document["benchmarks"]:
        params = ", ".join(f"{k}={v}" for k, v in bench["params"].items())
        lines.append(f"- **{bench['name']}** ({bench['seconds']:.0f} s; {params})")
        lines.extend(f"  - {note}" for note in bench["notes"])
    lines.append("")
    return "\n".join(lines)
