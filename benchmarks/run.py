"""``python -m benchmarks.run [--quick] [--only NAME] [--out DIR]``: run the benchmarks.

Prints each figure as it is measured, then writes the results as JSON and as a markdown
table with the machine and the command: ``benchmarks/results.json`` and
``benchmarks/RESULTS.md`` for a full run, ``results-quick.json`` and ``RESULTS-quick.md`` for
``--quick`` (small counts, about a minute in all: a smoke test, whose figures mean little).
Exits 1 if a benchmark failed to run; a missed target is reported, never an error.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from benchmarks import (
    backlog,
    cap,
    hosts,
    latency,
    memory,
    realtime_cap,
    report,
    tenants,
    throughput,
)
from benchmarks.harness import Result

BENCHMARKS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (throughput, cap, backlog, latency, memory, realtime_cap, hosts, tenants)
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke of each benchmark")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=report.HERE,
        help="directory for the JSON and markdown results (default: benchmarks/)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks; returns the exit status."""
    args = _parser().parse_args(argv)
    command = "python -m benchmarks.run" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    names = args.only or list(BENCHMARKS)
    info = report.machine()
    print(
        f"machine: {info['nproc']} cores, {info['cpu']}, {info['ram_gib']} GiB, "
        f"Python {info['python']}, Redis {info['redis']}, load {info['load_average_start']}",
        flush=True,
    )
    results: list[Result] = []
    failed = []
    for name in names:
        module = BENCHMARKS[name]
        print(f"\n== {name}: {module.TITLE}{' (quick)' if args.quick else ''}", flush=True)
        started = time.monotonic()
        try:
            result: Result = module.run(args.quick)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        result.seconds = time.monotonic() - started
        results.append(result)
        for figure in result.figures:
            print(f"  {figure.text()}", flush=True)
        for note in result.notes:
            print(f"  - {note}", flush=True)
    suffix = "-quick" if args.quick else ""
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"results{suffix}.json"
    md_path = args.out / f"RESULTS{suffix}.md"
    report.write(results, info, command, json_path, md_path)
    print(f"\nwrote {json_path} and {md_path}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
