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
        self.user = after.ru_utime - self.before.ru_utime
        self.sys = after.ru_stime - self.before.ru_stime


def cpu_self() -> tuple[float, float]:
    """(user, system) CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def run(patterns: str, jobs: int, timeout: float = 10.0) -> tuple[list[CaseResult], float, Cpu]:
    """(results, wall seconds, CPU seconds of the fuzzer and of the server)."""
    cases = select_cases(patterns)
    with EchoServer() as server:
        user0, sys0 = cpu_self()
        began = time.perf_counter()
        options = RunOptions(timeout=timeout, jobs=jobs)
        results = asyncio.run(run_against_server(cases, "127.0.0.1", server.port, "/", options))
        wall = time.perf_counter() - began
        user1, sys1 = cpu_self()
    return results, wall, Cpu(user1 - user0, sys1 - sys0, server.user, server.sys)


class Cpu:
    def __init__(self, user: float, system: float, server_user: float, server_sys: float) -> None:
        self.user, self.sys = user, system
        self.server_user, self.server_sys = server_user, server_sys
        self.fuzzer = user + system
        self.server = server_user + server_sys

    @property
    def share(self) -> float:
        total = self.fuzzer + self.server
        return self.fuzzer / total if total else 0.0


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
    results, wall, cpu = run(CORE, args.jobs)
    print(
        f"core 247 cases, --jobs {args.jobs}: {wall:6.2f} s   (fuzzer CPU {cpu.fuzzer:.2f} s, "
        f"server CPU {cpu.server:.2f} s)  [{len(results)} cases: {verdicts(results)}]"
    )
    _, base_wall, base = run(CORE, 1)
    print(
        f"core 247 cases, --jobs 1 (baseline): {base_wall:6.2f} s   (fuzzer CPU "
        f"{base.fuzzer:.2f} s, server CPU {base.server:.2f} s)"
    )
    print(
        f"  speed-up from --jobs {args.jobs}: x{base_wall / wall:.1f}; target < 15 s: "
        + ("met" if wall < 15 else "MISSED")
    )

    if args.compression == "none":
        return
    patterns = "12.*,13.*" if args.compression == "full" else SAMPLE
    results, wall, cpu = run(patterns, max(2, min(args.jobs, 4)), timeout=60.0)
    each_way = sum(
        step.count * step.size
        for r in results
        for step in r.case.steps
        if isinstance(step, EchoRounds)
    )
    print(
        f"compression {args.compression} ({len(results)} cases, {each_way / 1e9:.1f} GB echoed "
        f"each way): {wall:6.1f} s  [{verdicts(results)}]"
    )
    print(
        f"  fuzzer CPU {cpu.fuzzer:6.1f} s (user {cpu.user:.1f}, system {cpu.sys:.1f}); "
        f"echo server CPU {cpu.server:6.1f} s (user {cpu.server_user:.1f}, system "
        f"{cpu.server_sys:.1f}); fuzzer share {cpu.share:.0%}"
    )


if __name__ == "__main__":
    main()
