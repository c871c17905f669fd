"""Time ``wsp fuzz --suite rfc6455`` against a local ``websockets`` echo server.

Two figures, each next to its baseline from the same run:

1. the 247 core cases (areas 1-7 and 10) with ``--jobs N`` — baseline: the
   same cases one at a time (``--jobs 1``); the target is under 15 s;
2. the compression areas 12 and 13 (about 11 GB echoed) — the time, and the
   fuzzer's own CPU time next to the echo server's (the server runs in a child
   process; its CPU comes from ``resource.getrusage(RUSAGE_CHILDREN)`` once it
   has exited).

Usage: python benchmarks/fuzz_rfc6455.py [--jobs 8] [--compression full|sample|none]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from collections import Counter

from wsproto_tools.fuzz.catalog import select_cases
from wsproto_tools.fuzz.model import CaseResult, EchoRounds
from wsproto_tools.fuzz.runner import RunOptions, run_against_server

CORE = "1.*,2.*,3.*,4.*,5.*,6.*,7.*,10.*"
SAMPLE = "12.*.1,12.*.10,12.*.18,13.*.1,13.*.10,13.*.18"

SERVER = """
import asyncio, contextlib, sys
from websockets.asyncio.server import serve

async def echo(ws):
    with contextlib.suppress(Exception):
        async for message in ws:
            await ws.send(message)

async def main():
    async with serve(echo, "127.0.0.1", 0, max_size=None) as server:
        print(next(iter(server.sockets)).getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


class EchoServer:
    """A websockets echo server in a child process (so its CPU time is its own)."""

    def __enter__(self) -> EchoServer:
        self.before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(30)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu = (after.ru_utime - self.before.ru_utime) + (after.ru_stime - self.before.ru_stime)


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(
    patterns: str, jobs: int, timeout: float = 10.0
) -> tuple[list[CaseResult], float, float, float]:
    """(results, wall seconds, fuzzer CPU seconds, server CPU seconds)."""
    cases = select_cases(patterns)
    with EchoServer() as server:
        cpu0 = cpu_self()
        began = time.perf_counter()
        results = asyncio.run(
            run_against_server(
                cases, "127.0.0.1", server.port, "/", RunOptions(timeout=timeout, jobs=jobs)
            )
        )
        wall = time.perf_counter() - began
        fuzzer = cpu_self() - cpu0
    return results, wall, fuzzer, server.cpu


def verdicts(results: list[CaseResult]) -> str:
    counts = Counter(f"{r.behavior.value}/{r.close.value}" for r in results)
    text = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    for r in results:
        if r.failed:
            events = [e.to_json() for e in r.observed[:2]]
            text += f"\n    {r.case.id}: {r.result} {r.close_result} {events}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--compression", choices=["full", "sample", "none"], default="full")
    args = parser.parse_args()

    print(f"Python {sys.version.split()[0]}, websockets echo server in a child process")
    results, wall, fuzzer, server = run(CORE, args.jobs)
    print(
        f"core 247 cases, --jobs {args.jobs}: {wall:6.2f} s   (fuzzer CPU {fuzzer:.2f} s, "
        f"server CPU {server:.2f} s)  [{len(results)} cases: {verdicts(results)}]"
    )
    _, base_wall, base_fuzzer, base_server = run(CORE, 1)
    print(
        f"core 247 cases, --jobs 1 (baseline): {base_wall:6.2f} s   (fuzzer CPU {base_fuzzer:.2f} s, "
        f"server CPU {base_server:.2f} s)"
    )
    print(
        f"  speed-up from --jobs {args.jobs}: x{base_wall / wall:.1f}; target < 15 s: "
        + ("met" if wall < 15 else "MISSED")
    )

    if args.compression == "none":
        return
    patterns = "12.*,13.*" if args.compression == "full" else SAMPLE
    results, wall, fuzzer, server = run(patterns, max(2, min(args.jobs, 4)), timeout=60.0)
    echoed = sum(
        2 * step.count * step.size
        for r in results
        for step in r.case.steps
        if isinstance(step, EchoRounds)
    )
    share = fuzzer / (fuzzer + server) if fuzzer + server else 0.0
    print(
        f"compression {args.compression} ({len(results)} cases, {echoed / 1e9:.1f} GB sent + "
        f"echoed): {wall:6.1f} s  [{verdicts(results)}]"
    )
    print(
        f"  fuzzer CPU {fuzzer:6.1f} s, echo server CPU {server:6.1f} s: fuzzer share {share:.0%}"
    )


if __name__ == "__main__":
    main()
