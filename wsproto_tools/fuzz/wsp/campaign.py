"""A whole run of the wsp suite: cases, jobs, the run-level oracles, the corpus.

:func:`run_campaign` makes case after case (:mod:`.steps`) and runs up to
``jobs`` at once (:mod:`.runner`). Around them it keeps the oracles that belong
to the run:

* **liveness** — a canary session, well-behaved, kept open all along: every
  ``canary_every`` seconds a Heartbeat probe, an echo Request and a Publish to
  its own topic, each answered (and delivered, exactly once and in order)
  within ``liveness`` seconds;
* **memory** — the target's resident memory (``/proc/PID`` of a process the
  fuzzer started, or ``process_resident_memory_bytes`` on ``/metrics``),
  sampled every second; growing more than ``max_rss_growth`` bytes over the
  run after warm-up is a finding;
* **crash** — a target that stops answering during the run. A process the
  fuzzer started (:class:`TargetProcess`) is started again and the run goes on.

The corpus keeps the cases that reached something new: a new transition
between abstract states (the target's answers, AFLNet-style) or, with
coverage feedback, new branch arcs in the target; later cases are made by
mutating them. Cases are made in rounds of :data:`ROUND` from the corpus as it
was before the round (``jobs`` of them run at once) and the results are taken
in case order, so the same seed gives the same cases whatever the timing and
the number of jobs, as long as the target answers the same way.
"""

from __future__ import annotations

__all__ = [
    "CampaignOptions",
    "CampaignResult",
    "TargetProcess",
    "TargetUnreachable",
    "run_campaign",
]

import asyncio
import contextlib
import hashlib
import os
import random
import shlex
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wsproto_tools.codec import Heartbeat, Publish, Request, Subscribe
from wsproto_tools.exceptions import WspError
from wsproto_tools.fuzz.wsp.findings import Finding, Oracle
from wsproto_tools.fuzz.wsp.runner import CaseResult, Target, run_case
from wsproto_tools.fuzz.wsp.session import Credentials, Peer
from wsproto_tools.fuzz.wsp.shrink import shrink
from wsproto_tools.fuzz.wsp.steps import Case, Generator, generate, mutate

SLOTS = 256  # topic name slots: a run makes at most 3 * SLOTS topics
#: cases made at once from the corpus as it stands, whatever --jobs: the same seed
#: makes the same cases with any number of jobs
ROUND = 16


class TargetUnreachable(WspError):
    """The target could not be reached before the first case (exit status 4)."""


@dataclass
class CampaignOptions:
    seed: int = 1
    cases: int | None = 1000
    duration: float | None = None
    jobs: int = 4
    timeout: float = 2.0
    liveness: float = 3.0  # the canary's deadline
    canary_every: float = 0.25
    max_rss_growth: int = 1024 << 20
    warmup: float = 2.0  # seconds before the memory baseline is taken
    shrink: bool = True
    shrink_budget: int = 24  # case runs per finding
    generator: Generator = field(default_factory=Generator)
    forbidden: str = ""  # a topic the credential does not allow ("" if none)
    take_coverage: Callable[[], int] | None = None  # new arcs since the last call
    coverage_total: Callable[[], int] | None = None


@dataclass
class CampaignResult:
    cases: int = 0
    steps: int = 0
    messages: int = 0  # wsp messages sent to the target
    findings: list[Finding] = field(default_factory=list)  # every one, in case order
    reproducers: dict[tuple[str, int | None, str], Case] = field(default_factory=dict)
    #: per kind of finding: (trace, connections) of its (shrunk) case's last run
    traces: dict[tuple[str, int | None, str], tuple[Any, Any]] = field(default_factory=dict)
    states: Counter[str] = field(default_factory=Counter)
    transitions: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    coverage: list[dict[str, float]] = field(default_factory=list)  # t, cases, points
    memory: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0
    corpus: int = 0
    duration: float = 0.0
    interrupted: bool = False
    canary: dict[str, Any] = field(default_factory=dict)
    #: SHA-256 over the cases run, in order: equal for two runs that ran the same cases
    digest: Any = field(default_factory=lambda: hashlib.sha256())

    def unique(self) -> list[tuple[Finding, int]]:
        """The first finding of each kind, with how many cases had one."""
        first: dict[tuple[str, int | None, str], Finding] = {}
        count: Counter[tuple[str, int | None, str]] = Counter()
        for finding in self.findings:
            first.setdefault(finding.key, finding)
            count[finding.key] += 1
        return [(f, count[k]) for k, f in first.items()]


# ---------------------------------------------------------------- the target process
class TargetProcess:
    """A server the fuzzer starts itself: ``{port}`` in the command is replaced by
    a free port; it is started again after it dies, and its memory is read."""

    def __init__(self, command: str, host: str = "127.0.0.1", *, start_timeout: float = 20.0):
        self.template = command
        self.host = host
        self.port = _free_port(host)
        self.start_timeout = start_timeout
        self.process: asyncio.subprocess.Process | None = None
        self.exits: list[int] = []
        self.stderr_tail = b""

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.template.replace("{port}", str(self.port)))

    async def start(self) -> None:
        """Start the command and wait until it accepts connections (bounded)."""
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            raise TargetUnreachable(f"cannot start the target: {error}") from None
        self._drain = asyncio.create_task(self._read_stderr(self.process))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while loop.time() < deadline:
            if self.process.returncode is not None:
                raise TargetUnreachable(
                    f"the target exited with status {self.process.returncode} at start-up"
                    + _tail(self.stderr_tail)
                )
            with contextlib.suppress(OSError):
                _r, writer = await asyncio.open_connection(self.host, self.port)
                writer.close()
                return
            await asyncio.sleep(0.05)
        raise TargetUnreachable(
            f"the target did not listen on port {self.port} within {self.start_timeout:g} s"
        )

    async def _read_stderr(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        with contextlib.suppress(Exception):
            while chunk := await process.stderr.read(65536):
                self.stderr_tail = (self.stderr_tail + chunk)[-2000:]

    @property
    def dead(self) -> bool:
        return self.process is None or self.process.returncode is not None

    async def poll(self, wait: float = 0.0) -> int | None:
        """The exit status if the process died (waiting up to ``wait`` s), else None."""
        if self.process is None:
            return None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self.process.wait()
        return self.process.returncode

    def rss(self) -> int | None:
        if self.process is None or self.process.returncode is not None:
            return None
        try:
            with open(f"/proc/{self.process.pid}/status", "rb") as status:
                for line in status:
                    if line.startswith(b"VmRSS:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            return None
        return None

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            async with asyncio.timeout(5):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def _tail(data: bytes) -> str:
    lines = data.decode("utf-8", "replace").strip().splitlines()
    return f": {lines[-1]}" if lines else ""


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def _metrics_rss(target: Target) -> int | None:
    """``process_resident_memory_bytes`` from the target's ``/metrics``, if it has one."""
    try:
        async with asyncio.timeout(2):
            reader, writer = await asyncio.open_connection(
                target.host,
                target.port,
                ssl=target.ssl,
                server_hostname=target.host if target.ssl is not None else None,
            )
            writer.write(
                f"GET /metrics HTTP/1.1\r\nHost: {target.host}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            body = await reader.read(1 << 20)
            writer.close()
    except (OSError, TimeoutError):
        return None
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("process_resident_memory_bytes "):
            with contextlib.suppress(ValueError):
                return int(float(line.split()[1]))
    return None


# ---------------------------------------------------------------- the canary
class _Canary:
    """The well-behaved second session of the liveness and delivery oracles."""

    def __init__(self, target: Target, creds: Credentials, tag: str, opts: CampaignOptions):
        self.target, self.creds, self.tag, self.opts = target, creds, tag, opts
        self.findings: list[Finding] = []
        self.rounds = 0
        self.worst = 0.0
        self.peer: Peer | None = None
        self.published = 0
        self.process: TargetProcess | None = None

    async def connect(self) -> None:
        from wsproto_tools.fuzz.wsp.actions import Context
        from wsproto_tools.fuzz.wsp.handshake import hello

        peer = Peer(
            self.target.host,
            self.target.port,
            self.target.path,
            timeout=self.opts.liveness,
            ssl=self.target.ssl,
        )
        ctx = Context(
            self.target.host,
            self.target.port,
            self.target.path,
            self.creds,
            self.tag,
            -1,
            self.opts.liveness,
            peer,
            subject="fuzz-canary",
        )
        auth = "hmac" if self.creds.secret is not None else self.creds.methods[0]
        await hello(ctx, {"auth": auth, "caps": ["pubsub"], "variant": "ok"})
        if not await peer.wait_for(lambda: peer.answered):
            raise TargetUnreachable(
                "the canary session was not accepted"
                + (f" (closed {peer.closed.code}: {peer.closed.reason})" if peer.closed else "")
            )
        self.peer = peer
        topic = f"{self.tag}.canary"
        peer.subscribing.add(topic)
        await peer.send_wire(peer.encode(Subscribe(topic)))
        if not await peer.wait_for(lambda: topic not in peer.subscribing):
            raise TargetUnreachable("the canary's Subscribe was not answered")
        self.track = peer.topics[topic]
        self.ctx = ctx

    def finding(self, expected: str, observed: str) -> None:
        self.findings.append(Finding(Oracle.LIVENESS, -1, -2, "canary session", expected, observed))

    async def round(self) -> bool:
        """One probe, echo and publish; False when the canary session is gone."""
        peer = self.peer
        if peer is None or peer.closed is not None:
            return False
        self.rounds += 1
        self.ctx.probe_id += 1
        probe = self.ctx.probe_id
        rid = self.ctx.next_request()
        self.published += 1
        data = f"canary:{self.published}".encode()
        self.track.expected.append(data)
        peer.probes.add(probe)
        peer.requests[rid] = data
        started = time.perf_counter()
        try:
            await peer.send_wire(
                peer.encode(Heartbeat(probe, False)),
                peer.encode(Request(rid, "echo", data)),
                peer.encode(Publish(f"{self.tag}.canary", data), sequence=peer.next_seq()),
            )
        except (WspError, OSError) as error:
            self.finding("the canary is served", f"sending failed: {error}")
            return False
        ok = await peer.wait_for(
            lambda: (
                probe in peer.replies and rid in peer.answers and data not in self.track.expected
            )
        )
        took = time.perf_counter() - started
        self.worst = max(self.worst, took)
        if peer.closed is not None:
            if peer.closed.code != 1006 or await _crashed(self.process, self.target) is None:
                self.finding(
                    "the canary session stays open",
                    f"closed with {peer.closed.code} ({peer.closed.reason})",
                )
            return False  # a crash is the run's finding, not the canary's
        if not ok:
            self.finding(
                f"heartbeat, echo and delivery within {self.opts.liveness:g} s",
                f"not all answered after {took:.1f} s",
            )
        for problem in peer.delivery:
            self.findings.append(
                Finding(
                    Oracle.DELIVERY,
                    -1,
                    -2,
                    "canary session",
                    "each canary publish delivered once, in order",
                    problem,
                )
            )
        peer.delivery.clear()
        peer.requests.pop(rid, None)
        return True

    async def close(self) -> None:
        if self.peer is not None:
            await self.peer.close()


# ---------------------------------------------------------------- the run
async def run_campaign(
    target: Target,
    creds: Credentials,
    opts: CampaignOptions,
    *,
    process: TargetProcess | None = None,
    progress: Callable[[CampaignResult], None] | None = None,
) -> CampaignResult:
    """Run the suite; see the module doc. Raises :class:`TargetUnreachable` when
    the target cannot be reached before the first case."""
    result = CampaignResult()
    from wsproto_tools.fuzz.wsp.credentials import topic_tag

    tag = topic_tag(creds, f"fz{os.urandom(3).hex()}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    if process is not None and process.process is None:
        await process.start()
    canary = _Canary(target, creds, tag, opts)
    canary.process = process
    try:
        await canary.connect()
    except (WspError, OSError) as error:
        await canary.close()
        raise TargetUnreachable(f"cannot reach {target.host}:{target.port}: {error}") from None
    corpus: list[Case] = []
    seen_transitions: set[tuple[str, str, str]] = set()
    memory = _Memory(target, process, opts)
    watcher = asyncio.create_task(_watch(canary, memory, opts, result))
    index = 0
    try:
        while True:
            if opts.cases is not None and index >= opts.cases:
                break
            if opts.duration is not None and loop.time() - started >= opts.duration:
                break
            size = ROUND if opts.cases is None else min(ROUND, opts.cases - index)
            cases = [_next_case(opts, index + i, corpus) for i in range(size)]
            index += size
            gate = asyncio.Semaphore(opts.jobs)

            async def one(case: Case, gate: asyncio.Semaphore = gate) -> CaseResult:
                async with gate:
                    return await run_case(
                        target,
                        creds,
                        case,
                        timeout=opts.timeout,
                        tag=tag,
                        slot=case.index % SLOTS,
                        forbidden=opts.forbidden,
                    )

            results = await asyncio.gather(*(one(case) for case in cases))
            crashed = await _crashed(process, target)
            if crashed is None:
                for case_result in results:
                    _take(result, case_result, corpus, seen_transitions, opts)
            else:
                # what the cases of this round saw is the crash's doing: one finding
                result.cases += len(results)
                result.steps += sum(r.steps_run for r in results)
                culprit = cases[0]
                if process is not None:
                    result.restarts += 1
                    await process.start()
                    culprit = await _culprit(cases, target, creds, opts, tag, process) or culprit
                crash = Finding(
                    Oracle.CRASH,
                    culprit.index,
                    -1,
                    " ".join(s.describe() for s in culprit.steps)[:300],
                    "the target keeps running",
                    crashed,
                )
                result.findings.append(crash)
                result.reproducers.setdefault(crash.key, culprit)
                if process is None:
                    break
                await canary.close()
                canary.peer = None
                try:
                    await canary.connect()
                except (WspError, OSError) as error:
                    result.findings.append(
                        Finding(
                            Oracle.CRASH,
                            -1,
                            -2,
                            "restart",
                            "the restarted target serves",
                            str(error),
                        )
                    )
                    break
            if opts.take_coverage is not None and opts.coverage_total is not None:
                result.coverage.append(
                    {
                        "t": round(loop.time() - started, 3),
                        "cases": result.cases,
                        "points": opts.coverage_total(),
                    }
                )
            if progress is not None:
                progress(result)
    except asyncio.CancelledError:
        result.interrupted = True
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await watcher
        with contextlib.suppress(Exception):
            await memory.sample(result.cases)  # the end of the run
        await canary.close()
        result.findings.extend(canary.findings)
        result.memory = memory.report()
        if memory.finding is not None:
            result.findings.append(memory.finding)
        result.canary = {"rounds": canary.rounds, "worst_seconds": round(canary.worst, 4)}
        result.corpus = len(corpus)
        result.duration = loop.time() - started
    if opts.shrink:
        await _shrink_all(result, target, creds, opts, tag, process)
    return result


async def _alone(
    target: Target, creds: Credentials, opts: CampaignOptions, tag: str, case: Case
) -> CaseResult:
    """Run one case on its own, on topics no case of the run uses (slots past SLOTS)."""
    return await run_case(
        target,
        creds,
        case,
        timeout=opts.timeout,
        tag=tag,
        slot=SLOTS + case.index % SLOTS,
        forbidden=opts.forbidden,
    )


async def _culprit(
    cases: list[Case],
    target: Target,
    creds: Credentials,
    opts: CampaignOptions,
    tag: str,
    process: TargetProcess,
) -> Case | None:
    """The case of a round that crashes the target when it runs alone (the target
    is started again after each crash)."""
    if len(cases) == 1:
        return cases[0]
    for case in cases:
        await _alone(target, creds, opts, tag, case)
        if await _crashed(process, target) is not None:
            await process.start()
            return case
    return None


def _next_case(opts: CampaignOptions, index: int, corpus: list[Case]) -> Case:
    rng = random.Random(f"{opts.seed}:{index}:pick")
    if corpus and rng.random() < 0.5:
        parent = corpus[rng.randrange(len(corpus))]
        return mutate(parent, opts.seed, index, opts.generator)
    return generate(opts.seed, index, opts.generator)


def _take(
    result: CampaignResult,
    case_result: CaseResult,
    corpus: list[Case],
    seen: set[tuple[str, str, str]],
    opts: CampaignOptions,
) -> None:
    result.cases += 1
    result.digest.update(case_result.case.dumps().encode())
    result.steps += case_result.steps_run
    result.messages += case_result.messages
    result.states.update(case_result.states)
    new = False
    for transition in case_result.transitions:
        result.transitions[transition] += 1
        if transition not in seen:
            seen.add(transition)
            new = True
    if opts.take_coverage is not None and opts.take_coverage() > 0:
        new = True
    if new and len(corpus) < 4096:
        corpus.append(case_result.case)
    for finding in case_result.findings:
        result.findings.append(finding)
        if finding.key not in result.reproducers:
            result.reproducers[finding.key] = case_result.case
            result.traces[finding.key] = (case_result.trace, case_result.connections)


async def _crashed(process: TargetProcess | None, target: Target) -> str | None:
    """Why the target is gone, or None when it still accepts connections."""
    refused: str | None = None
    try:
        async with asyncio.timeout(2):
            _r, writer = await asyncio.open_connection(target.host, target.port)
            writer.close()
    except (OSError, TimeoutError) as error:
        refused = f"the target stopped accepting connections ({error})"
    if process is not None:
        status = await process.poll(1.0 if refused else 0.05)
        if status is not None:
            process.exits.append(status)
            return f"the target process exited with status {status}" + _tail(process.stderr_tail)
    return refused


class _Memory:
    def __init__(self, target: Target, process: TargetProcess | None, opts: CampaignOptions):
        self.target, self.process, self.opts = target, process, opts
        self.samples: list[tuple[float, int]] = []
        self.baseline: int | None = None
        self.start: int | None = None
        self.finding: Finding | None = None
        self.started = time.monotonic()

    async def sample(self, cases_done: int = 0) -> None:
        rss = self.process.rss() if self.process is not None else await _metrics_rss(self.target)
        if rss is None:
            return
        t = time.monotonic() - self.started
        if self.start is None:
            self.start = rss
        warm = t >= self.opts.warmup or (
            self.opts.cases is not None and cases_done >= self.opts.cases // 10
        )
        if self.baseline is None and warm:
            self.baseline = rss
        self.samples.append((t, rss))
        if len(self.samples) > 4000:
            del self.samples[::2]
        if self.baseline is not None and self.finding is None:
            growth = rss - self.baseline
            if growth > self.opts.max_rss_growth:
                self.finding = Finding(
                    Oracle.MEMORY,
                    -1,
                    -2,
                    "the whole run",
                    f"resident memory grows at most {self.opts.max_rss_growth >> 20} MiB "
                    "after warm-up",
                    f"grew {growth / 2**20:.0f} MiB "
                    f"({self.baseline / 2**20:.0f} -> {rss / 2**20:.0f} MiB) by {t:.0f} s",
                )

    def report(self) -> dict[str, Any]:
        if not self.samples:
            return {"source": None}
        values = [v for _, v in self.samples]
        return {
            "source": "process" if self.process is not None else "metrics",
            "start_bytes": self.start,
            "baseline_bytes": self.baseline,
            "end_bytes": values[-1],
            "max_bytes": max(values),
            "samples": [[round(t, 2), v] for t, v in self.samples[:: max(1, len(values) // 200)]],
        }


async def _watch(
    canary: _Canary, memory: _Memory, opts: CampaignOptions, result: CampaignResult
) -> None:
    """The canary rounds and the memory samples, until cancelled."""
    last_sample = 0.0
    while True:
        await canary.round()
        now = time.monotonic()
        if now - last_sample >= 0.5:
            last_sample = now
            await memory.sample(result.cases)
        await asyncio.sleep(opts.canary_every)


async def _shrink_all(
    result: CampaignResult,
    target: Target,
    creds: Credentials,
    opts: CampaignOptions,
    tag: str,
    process: TargetProcess | None,
) -> None:
    """Shrink the first case of each kind of case-level finding. A case that holds
    several kinds is shrunk once; its small form serves the others it still shows."""
    shrunk: dict[int, Case] = {}
    for key, case in list(result.reproducers.items()):
        oracle = key[0]
        if oracle in (Oracle.MEMORY.value, Oracle.LIVENESS.value):
            continue

        async def attempt(candidate: Case, key: Any = key) -> CaseResult | None:
            if process is not None and process.dead:
                await process.start()
            got = await _alone(target, creds, opts, tag, candidate)
            if key[0] == Oracle.CRASH.value:
                crashed = await _crashed(process, target)
                if crashed is None:
                    return None
                if process is not None:
                    await process.start()
                return got
            return got if any(f.key == key for f in got.findings) else None

        try:
            known = shrunk.get(case.index)
            again = await attempt(known) if known is not None else None
            last: Any | None
            if known is not None and again is not None:
                small, last = known, again
            else:
                small, last = await shrink(case, attempt, budget=opts.shrink_budget)
        except (WspError, OSError):
            continue
        shrunk.setdefault(case.index, small)
        result.reproducers[key] = small
        if last is not None:
            result.traces[key] = (last.trace, last.connections)
