"""Time ``wsp fuzz --suite wsp`` against a real ``wsp serve`` process.

Run: ``python benchmarks/fuzz_wsp.py`` (``--cases N``, default 2000; ``--quick``
for 300). Loopback only. Every run gets a fresh ``wsp serve --secret`` child
process on a free port of 127.0.0.1 (stopped at the end of the run); its
resident memory (VmRSS of ``/proc/PID/status``) is printed before and after.

1. **the wsp suite**: :func:`run_campaign` in this process (no shrinking), N
   cases with ``--jobs`` 1, 4 and 8: cases/s, steps/s and wsp messages/s (the
   messages the fuzzer sent to the target, ``CampaignResult.messages``).
2. **the baseline, same run**: a boofuzz-class fuzzer, which does for each case
   what a boofuzz session does: a fresh connection (the ``websockets`` asyncio
   client, subprotocol ``wsp.v2``), the Challenge read, the Handshake and the
   Authenticate sent (real HMAC proof), ONE mutated message sent (a valid
   Request, Heartbeat, Subscribe or Publish with one field set to a boofuzz-style
   boundary value, or its encoded bytes mutated: bit flips, boundary bytes,
   truncation, random tail), the answer or the close awaited (bounded by the
   suite's own per-answer timeout, 2 s), the connection closed. Three wsp
   messages per case. It runs one case at a time (as boofuzz does) and, to be
   fair to it, also with 8 cases at once. The figure is the ratio of the wsp
   suite's messages/s to the baseline's.

``--long N``: one run of N cases (e.g. 100000) at ``--jobs 8`` against a fresh
``wsp serve``, printing the target's RSS at the start, every 10,000 cases and at
the end, the rate, every finding (there should be none) and the memory oracle's
view (``CampaignResult.memory``). The suite reuses 3 * 256 topic names per run
(``SLOTS``), and ``wsp serve`` keeps at most ``--history`` messages (1000) and
``--history-bytes`` per topic, ``--history-total`` over all: the target's memory
is bounded; the baseline of that figure is the RSS at the start, after warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import random
import resource
import shlex
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from wsproto_tools.codec import (
    Authenticate,
    Challenge,
    Close,
    Flags,
    Handshake,
    Heartbeat,
    Message,
    Publish,
    Request,
    Subscribe,
    decode,
    encode,
)
from wsproto_tools.engine.auth import client_proof
from wsproto_tools.exceptions import WspError
from wsproto_tools.fuzz.wsp.campaign import CampaignOptions, TargetProcess, run_campaign
from wsproto_tools.fuzz.wsp.credentials import build_credentials, forbidden_topic
from wsproto_tools.fuzz.wsp.runner import Target
from wsproto_tools.fuzz.wsp.steps import Generator

SECRET = "bench-s3"
TIMEOUT = 2.0  # seconds per answer: the wsp suite's default, for both fuzzers
SERVE = (
    f"{shlex.quote(sys.executable)} -m wsproto_tools.cli.main serve --host 127.0.0.1 "
    f"--port {{port}} --secret {SECRET}"
)


def mib(value: int | None) -> str:
    return "?" if value is None else f"{value / 2**20:.1f} MiB"


def fuzzer_rss() -> str:
    """Peak RSS of this process (the fuzzers run here)."""
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"


@dataclass
class Run:
    name: str
    cases: int = 0
    steps: int = 0
    messages: int = 0
    seconds: float = 0.0
    rss_before: int | None = None
    rss_after: int | None = None
    findings: list[Any] = field(default_factory=list)
    notes: str = ""
    result: Any = None  # the CampaignResult of a wsp suite run

    def rate(self, count: int) -> float:
        return count / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        steps = f"{self.rate(self.steps):8,.0f} steps/s, " if self.steps else ""
        return (
            f"{self.name:<34} {self.cases:>7,} cases in {self.seconds:6.2f} s: "
            f"{self.rate(self.cases):7,.0f} cases/s, {steps}{self.rate(self.messages):8,.0f} "
            f"msg/s; target RSS {mib(self.rss_before)} -> {mib(self.rss_after)}"
            + (f"; {self.notes}" if self.notes else "")
        )


# ---------------------------------------------------------------- the wsp suite
def suite_options(cases: int, jobs: int, seed: int) -> tuple[Any, CampaignOptions]:
    creds = build_credentials(SECRET.encode())
    gen = Generator(methods=creds.methods)
    opts = CampaignOptions(
        seed=seed,
        cases=cases,
        jobs=jobs,
        timeout=TIMEOUT,
        shrink=False,
        generator=gen,
        forbidden=forbidden_topic(creds),
    )
    return creds, opts


async def suite_run(cases: int, jobs: int, seed: int = 1, *, long: bool = False) -> Run:
    """N cases of the wsp suite against a fresh ``wsp serve``."""
    process = TargetProcess(SERVE)
    await process.start()
    creds, opts = suite_options(cases, jobs, seed)
    run = Run(f"wsp suite --jobs {jobs}")
    run.rss_before = process.rss()
    began = time.perf_counter()
    marks = {"next": 10_000}

    def progress(result: Any) -> None:
        if long and result.cases >= marks["next"]:
            marks["next"] += 10_000
            elapsed = time.perf_counter() - began
            print(
                f"  {result.cases:>7,} cases, {elapsed:7.1f} s ({result.cases / elapsed:5.0f} "
                f"cases/s): target RSS {mib(process.rss())}, findings {len(result.findings)}, "
                f"restarts {result.restarts}",
                flush=True,
            )

    try:
        result = await run_campaign(
            Target(process.host, process.port), creds, opts, process=process, progress=progress
        )
        run.seconds = time.perf_counter() - began
        run.rss_after = process.rss()
    finally:
        await process.stop()
    run.cases, run.steps, run.messages = result.cases, result.steps, result.messages
    run.findings = result.findings
    run.notes = f"{len(result.findings)} findings" + (
        f", {result.restarts} restarts" if result.restarts else ""
    )
    run.result = result
    return run


# ---------------------------------------------------------------- the baseline
#: boofuzz-style boundary values, by field type
STRINGS = ["", "A" * 1024, "A" * 65536, "%s%n" * 64, "\x00", "../" * 100, "\u00e9\U0001f600" * 64]
INTS = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 2**31 - 1, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1]
BLOBS = [b"", b"\x00" * 1024, b"\xff" * 65536, b"A" * 100_000]


def template(rng: random.Random, n: int) -> tuple[Any, int, Flags]:
    """A valid message the target answers: (payload, sequence, flags)."""
    topic = f"fzbase.{n % 256}"  # bounded: 256 topics, as the suite's slots
    choice = rng.randrange(4)
    if choice == 0:
        return Request(n, "echo", rng.randbytes(64)), 0, Flags.NONE
    if choice == 1:
        return Heartbeat(n, False), 0, Flags.NONE
    if choice == 2:
        return Subscribe(topic), 0, Flags.NONE
    return Publish(topic, rng.randbytes(64)), 1, Flags.ACK_REQUESTED


def mutated(rng: random.Random, n: int) -> bytes:
    """ONE mutated message: a field at a boundary value, or the bytes mutated."""
    payload, sequence, flags = template(rng, n)
    if rng.random() < 0.5:
        fields = [f for f in dataclasses.fields(payload) if f.name != "id" or rng.random() < 0.5]
        target = rng.choice(fields)
        current = getattr(payload, target.name)
        if isinstance(current, bool):
            value: Any = not current
        elif isinstance(current, int):
            value = rng.choice(INTS)
        elif isinstance(current, str):
            value = rng.choice(STRINGS)
        else:
            value = rng.choice(BLOBS)
        with contextlib.suppress(Exception):  # a value the encoder refuses: bytes below
            changed = dataclasses.replace(payload, **{target.name: value})
            return encode(Message(changed, sequence=sequence, flags=flags))
    wire = bytearray(encode(Message(payload, sequence=sequence, flags=flags)))
    kind = rng.randrange(4)
    if kind == 0:  # bit flips
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(wire))
            wire[i] ^= 1 << rng.randrange(8)
    elif kind == 1:  # boundary bytes
        for _ in range(rng.randint(1, 4)):
            wire[rng.randrange(len(wire))] = rng.choice((0x00, 0x7F, 0x80, 0xFF))
    elif kind == 2:  # truncated
        del wire[rng.randrange(len(wire)) :]
    else:  # a random tail
        wire += rng.randbytes(rng.randint(1, 256))
    return bytes(wire)


@dataclass
class Tally:
    cases: int = 0
    messages: int = 0
    answered: int = 0
    closed: int = 0
    silent: int = 0  # nothing within the timeout
    undecodable: int = 0  # an answer that is not a wsp message
    failed: int = 0  # no session (refused, no Challenge, handshake not accepted)


async def baseline_case(uri: str, secret: bytes, n: int, tally: Tally) -> None:
    """One boofuzz-class test case on its own connection."""
    rng = random.Random(f"baseline:{n}")
    tally.cases += 1
    try:
        async with asyncio.timeout(4 * TIMEOUT):
            async with connect(
                uri,
                subprotocols=["wsp.v2"],  # type: ignore[list-item]
                compression=None,
                ping_interval=None,
                open_timeout=TIMEOUT,
                close_timeout=TIMEOUT,
                max_size=None,
            ) as ws:
                challenge = decode(await ws.recv()).payload  # type: ignore[arg-type]
                assert isinstance(challenge, Challenge)
                nonce = rng.randbytes(16)
                await ws.send(
                    encode(
                        Message(Handshake(("ack", "pubsub"), "boofuzz-class", "hmac", None, nonce))
                    )
                )
                proof = client_proof(secret, challenge.nonce, nonce)
                await ws.send(encode(Message(Authenticate("hmac", proof))))
                tally.messages += 2
                decode(await ws.recv())  # type: ignore[arg-type]  # HandshakeResponse
                await ws.send(mutated(rng, n))
                tally.messages += 1
                try:
                    async with asyncio.timeout(TIMEOUT):
                        answer = decode(await ws.recv()).payload  # type: ignore[arg-type]
                    if isinstance(answer, Close):
                        tally.closed += 1
                    else:
                        tally.answered += 1
                except ConnectionClosed:
                    tally.closed += 1
                except TimeoutError:
                    tally.silent += 1
                except WspError:
                    tally.undecodable += 1
    except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, WspError, AssertionError):
        tally.failed += 1


async def baseline_run(cases: int, concurrency: int) -> Run:
    """N boofuzz-class cases, ``concurrency`` at a time, against a fresh ``wsp serve``."""
    process = TargetProcess(SERVE)
    await process.start()
    uri = f"ws://127.0.0.1:{process.port}/"
    tally = Tally()
    run = Run(f"boofuzz-class baseline, {concurrency} at once")
    run.rss_before = process.rss()
    counter = iter(range(cases))

    async def worker() -> None:
        for n in counter:
            await baseline_case(uri, SECRET.encode(), n, tally)

    began = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        run.seconds = time.perf_counter() - began
        run.rss_after = process.rss()
        exited = await process.poll(0.05)
    finally:
        await process.stop()
    run.cases, run.messages = tally.cases, tally.messages
    run.notes = (
        f"answered {tally.answered}, closed {tally.closed}, silent {tally.silent}, "
        f"undecodable {tally.undecodable}, "
        f"no session {tally.failed}"
        + (f"; THE TARGET EXITED ({exited})" if exited is not None else "")
    )
    return run


# ---------------------------------------------------------------- modes
def show_findings(findings: list[Any], limit: int = 20) -> None:
    for finding in findings[:limit]:
        print(f"    FINDING {finding.to_json() if hasattr(finding, 'to_json') else finding}")
    if len(findings) > limit:
        print(f"    ... and {len(findings) - limit} more")


def normal(cases: int) -> None:
    runs: list[Run] = []
    for jobs in (1, 4, 8):
        run = asyncio.run(suite_run(cases, jobs))
        print(run.line(), flush=True)
        show_findings(run.findings)
        runs.append(run)
    bases: list[Run] = []
    for concurrency in (1, 8):
        base = asyncio.run(baseline_run(cases, concurrency))
        print(base.line(), flush=True)
        bases.append(base)
    one, eight = bases
    print()
    print(
        f"baseline (boofuzz-class, one case at a time): {one.rate(one.messages):,.0f} msg/s, "
        f"{one.rate(one.cases):,.0f} cases/s; with 8 at once: {eight.rate(eight.messages):,.0f} "
        f"msg/s, {eight.rate(eight.cases):,.0f} cases/s"
    )
    print()
    header = (
        "| run | cases | s | cases/s | steps/s | msg/s | msg/case | x baseline (1 at once) "
        "| x baseline (8 at once) | target RSS before -> after |"
    )
    print(header)
    print("| --- " + "| ---: " * 9 + "|")
    for run in runs + bases:
        steps = f"{run.rate(run.steps):,.0f}" if run.steps else "-"
        print(
            f"| {run.name} | {run.cases:,} | {run.seconds:.2f} | {run.rate(run.cases):,.0f} | "
            f"{steps} | {run.rate(run.messages):,.0f} | {run.messages / max(run.cases, 1):.1f} | "
            f"{run.rate(run.messages) / one.rate(one.messages):.2f}x | "
            f"{run.rate(run.messages) / eight.rate(eight.messages):.2f}x | "
            f"{mib(run.rss_before)} -> {mib(run.rss_after)} |"
        )
    print(f"\nfuzzer process peak RSS: {fuzzer_rss()}")


def long_run(cases: int) -> None:
    print(f"long run: {cases:,} cases, --jobs 8, one fresh wsp serve (history 1000 per topic)")
    run = asyncio.run(suite_run(cases, 8, long=True))
    result = run.result
    print(run.line())
    print(
        f"  target RSS at start {mib(run.rss_before)}, at end {mib(run.rss_after)}; "
        f"{run.rate(run.cases):,.0f} cases/s, {run.rate(run.steps):,.0f} steps/s, "
        f"{run.rate(run.messages):,.0f} msg/s"
    )
    memory = dict(result.memory)
    samples = memory.pop("samples", [])
    view = {k: (mib(v) if k.endswith("bytes") else v) for k, v in memory.items()}
    print(f"  memory oracle: {view}")
    if samples:
        picks = [*samples[:: max(1, len(samples) // 10)], samples[-1]]
        print("  memory samples (s, RSS): " + ", ".join(f"{t:.0f} s {mib(v)}" for t, v in picks))
    print(f"  canary: {result.canary}; corpus {result.corpus}; restarts {result.restarts}")
    print(f"  findings: {len(result.findings)}")
    show_findings(result.findings, limit=50)
    for finding, count in result.unique():
        print(f"  unique: {finding.oracle} x{count}: {finding}")
    print(f"fuzzer process peak RSS: {fuzzer_rss()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="300 cases a run")
    parser.add_argument("--long", type=int, metavar="N", help="one run of N cases at --jobs 8")
    args = parser.parse_args()
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.2f}; target: {SERVE.replace('{port}', 'FREE')}"
    )
    if args.long:
        long_run(args.long)
        return
    normal(300 if args.quick else args.cases)


if __name__ == "__main__":
    main()
