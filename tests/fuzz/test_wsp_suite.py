"""``wsp fuzz --suite wsp`` against real servers on 127.0.0.1.

- The model agrees with docs/protocol.md (hand-written from the spec, not from
  the model's own tables), and the same seed makes the same cases.
- The reference server (in-process, hmac + JWT + resume-token key) gets through
  hundreds of cases with no finding.
- Each server of ``planted.py`` carries one bug; the suite finds each within
  the number of cases stated in :data:`PLANTED`, names the right oracle, and
  shrinks the case; its pytest reproducer fails against the bug and passes
  against ``planted.py none``; its cassette reads back with ``wsp replay``'s
  reader.
- The CLI as users run it: usage errors (2), an unreachable target (4),
  SIGINT (130 with a report of the cases that finished), ``--coverage``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from wsproto_tools.codec.schema import (
    Acknowledge,
    BinaryData,
    Challenge,
    ContinuityLost,
    Deliver,
    DeltaUpdate,
    Error,
    Heartbeat,
    Publish,
    Request,
    Response,
    Resume,
    Subscribe,
    Subscribed,
    TextData,
    Unsubscribe,
    WindowUpdate,
)
from wsproto_tools.fuzz.wsp.campaign import CampaignOptions, run_campaign
from wsproto_tools.fuzz.wsp.credentials import build_credentials, forbidden_topic
from wsproto_tools.fuzz.wsp.model import CLIENT_TYPES, SERVER_ONLY_TYPES, field_mutations
from wsproto_tools.fuzz.wsp.runner import Target
from wsproto_tools.fuzz.wsp.steps import Case, Generator, generate, mutate
from wsproto_tools.replay.cassette import read_cassette
from wsproto_tools.server import ServerConfig, WspServer

from .planted import command

_MAIN = "from wsproto_tools.cli.main import main; main()"
SECRET = "fuzz-secret"
TOKEN_KEY = "fuzz-token-key"

#: bug -> (cases within which the suite finds it with seed 1, the oracle, extra options)
PLANTED: dict[str, tuple[int, str, tuple[str, ...]]] = {
    "crash-field": (120, "crash", ()),
    "wrong-close": (120, "close-code", ()),
    "foreign-resume": (120, "security", ()),
    "topic-leak": (300, "security", ()),
    "leak-unacked": (600, "memory", ("--max-rss-growth", "32")),
}


def _wsp(*args: str) -> list[str]:
    return [sys.executable, "-c", _MAIN, *args]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSP_")}
    env.update({"COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"}, **extra)
    return env


@pytest.fixture(scope="module")
def jwt_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "jwt.key"
    path.write_text("a-jwt-key-of-thirty-two-bytes-or-more!")
    return path


def _target_cmd(bug: str, jwt_key: Path) -> str:
    argv = command(
        bug, "{port}", "--secret", SECRET, "--jwt-key", str(jwt_key), "--token-key", TOKEN_KEY
    )
    return " ".join(argv)


def _valid(report: dict[str, Any]) -> None:
    import jsonschema

    from wsproto_tools.fuzz.wsp.report import load_schema

    jsonschema.validate(report, load_schema())


def _html_ok(text: str) -> list[str]:
    """The table cells of an HTML report, parsed by html.parser (it must parse)."""
    from html.parser import HTMLParser

    cells: list[str] = []

    class Cells(HTMLParser):
        inside = False

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            self.inside = tag == "td"

        def handle_data(self, data: str) -> None:
            if self.inside:
                cells.append(data)

    Cells().feed(text)
    return cells


def _fuzz_argv(bug: str, jwt_key: Path, cases: int, out: Path, *extra: str) -> list[str]:
    return _wsp(
        "fuzz",
        "--suite",
        "wsp",
        "--target-cmd",
        _target_cmd(bug, jwt_key),
        "--secret",
        SECRET,
        "--jwt-key",
        str(jwt_key),
        "--token-key",
        TOKEN_KEY,
        "--seed",
        "1",
        "--timeout",
        "1",
        "--cases",
        str(cases),
        "--jobs",
        "4",
        "--reproducers",
        str(out / f"repro-{bug}"),
        "--json-report",
        str(out / f"{bug}.json"),
        "--html-report",
        str(out / f"{bug}.html"),
        *extra,
    )


def _read_report(bug: str, out: Path, stderr: str) -> dict[str, Any]:
    assert "Traceback" not in stderr, stderr
    data: dict[str, Any] = json.loads((out / f"{bug}.json").read_text())
    _valid(data)
    cells = _html_ok((out / f"{bug}.html").read_text())
    for finding in data["findings"]:
        assert finding["observed"] in cells
    return data


@pytest.fixture(scope="module")
def planted_runs(
    jwt_key: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[int, dict[str, Any], Path]]:
    """Every planted bug, and ``none``, fuzzed by the CLI: (status, report, folder).
    Three runs at a time (each is a fuzzer and a server process)."""
    out = tmp_path_factory.mktemp("planted")
    runs = {bug: (cases, extra) for bug, (cases, _oracle, extra) in PLANTED.items()}
    runs["none"] = (600, ("--max-rss-growth", "32"))
    results: dict[str, tuple[int, dict[str, Any], Path]] = {}
    pending = list(runs.items())
    running: dict[str, subprocess.Popen[str]] = {}
    deadline = time.monotonic() + 600
    while (pending or running) and time.monotonic() < deadline:
        while pending and len(running) < 3:
            bug, (cases, extra) = pending.pop(0)
            running[bug] = subprocess.Popen(
                _fuzz_argv(bug, jwt_key, cases, out, *extra),
                env=_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        for bug, proc in list(running.items()):
            if proc.poll() is not None:
                assert proc.stderr is not None
                stderr = proc.stderr.read()
                results[bug] = (proc.returncode, _read_report(bug, out, stderr), out)
                del running[bug]
        time.sleep(0.1)
    for proc in running.values():
        proc.kill()
    assert not running and not pending, "the planted runs did not finish in 10 minutes"
    return results


# ---------------------------------------------------------------- the model
def test_client_and_server_types_follow_rule_25() -> None:
    # docs/protocol.md S.9 rule 25 and 26, written out by hand
    server_only = {Challenge, Deliver, Subscribed, ContinuityLost, Response, Resume}
    assert server_only <= set(SERVER_ONLY_TYPES)
    client_side = {
        Publish,
        Subscribe,
        Unsubscribe,
        Request,
        Acknowledge,
        Heartbeat,
        TextData,
        BinaryData,
        DeltaUpdate,
        WindowUpdate,
        Error,
    }
    assert client_side == set(CLIENT_TYPES)


def test_field_mutations_get_the_spec_close_codes() -> None:
    by_label = {(m.field, m.label): m.outcome for m in field_mutations(Publish)}
    # section 9: a missing or ill-typed field is invalid content, 1007, the session ends
    missing = by_label[("topic", "missing required field")]
    assert missing.closes == {1007} and not missing.may_continue
    assert by_label[("data", "str for bytes")].closes == {1007}
    # section 8: a string past max_str_len (65536 bytes) is a limit, 1009
    assert 1009 in by_label[("topic", "65537 bytes (over the limit)")].closes
    # a 256-character topic is allowed, a 257-character one is closed with 1008 (S.7)
    assert by_label[("topic", "257 characters")].may_continue
    assert 1008 in by_label[("topic", "257 characters")].closes
    assert 1011 not in by_label[("topic", "257 characters")].closes


def test_the_same_seed_makes_the_same_cases() -> None:
    gen = Generator(methods=("hmac", "jwt"), mint=True, token_key=True)
    first = [generate(7, i, gen).dumps() for i in range(300)]
    assert first == [generate(7, i, gen).dumps() for i in range(300)]
    assert first != [generate(8, i, gen).dumps() for i in range(300)]
    cases = [generate(7, i, gen) for i in range(300)]
    assert {c.steps[0].action for c in cases} == {"hello"}
    actions = {s.action for c in cases for s in c.steps[1:]}
    assert {"publish", "subscribe", "reconnect", "field", "sequence-gap", "bomb"} <= actions
    for case in cases[:50]:
        assert Case.from_json(json.loads(case.dumps())) == case
        assert mutate(case, 7, 1000, gen) == mutate(case, 7, 1000, gen)


# ---------------------------------------------------------------- the reference server
async def test_reference_server_has_no_findings(jwt_key: Path) -> None:
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        secret=SECRET.encode(),
        jwt_key=jwt_key.read_bytes(),
        token_key=TOKEN_KEY.encode(),
        sweep_interval=0.05,
    )
    server = WspServer(config)
    await server.start()
    try:
        creds = build_credentials(SECRET.encode(), None, str(jwt_key), TOKEN_KEY.encode())
        gen = Generator(methods=creds.methods, mint=True, token_key=True, claims=True)
        opts = CampaignOptions(
            seed=3, cases=400, jobs=4, generator=gen, forbidden=forbidden_topic(creds)
        )
        result = await run_campaign(Target("127.0.0.1", int(server.port)), creds, opts)
    finally:
        await server.shutdown()
    assert result.cases == 400
    assert not result.findings, [f.to_json() for f in result.findings[:5]]
    # the run went through the handshake, sessions with encryption and subscriptions
    assert {"challenged", "active", "active+sealed"} <= set(result.states)
    assert any(state.startswith("closed:100") for state in result.states)
    assert result.canary["rounds"] > 0
    assert result.memory["source"] == "metrics" and result.memory["end_bytes"] > 0


async def test_a_given_token_limits_the_topics(jwt_key: Path) -> None:
    """--token alone: the suite reads the JWT's topic claim, names its topics inside
    it, and expects 4003 outside it (the reference server gives exactly that)."""
    import jwt

    claims = {
        "sub": "u1",
        "exp": int(time.time()) + 600,
        "wsp": {"pub": ["app.*"], "sub": ["app.*"]},
    }
    token = jwt.encode(claims, jwt_key.read_bytes(), algorithm="HS256")
    config = ServerConfig(host="127.0.0.1", port=0, jwt_key=jwt_key.read_bytes())
    server = WspServer(config)
    await server.start()
    try:
        creds = build_credentials(None, token)
        assert creds.sub == ("app.*",) and forbidden_topic(creds) == "secret.plans"
        gen = Generator(methods=creds.methods, claims=True)
        opts = CampaignOptions(
            seed=5, cases=300, jobs=4, generator=gen, forbidden=forbidden_topic(creds)
        )
        result = await run_campaign(Target("127.0.0.1", int(server.port)), creds, opts)
    finally:
        await server.shutdown()
    assert not result.findings, [f.to_json() for f in result.findings[:5]]
    assert "closed:4003" in result.states  # the forbidden topics were tried and refused
    assert any("subscribed" in state for state in result.states)  # and app.* ones served


async def test_the_same_seed_runs_the_same_cases_with_any_jobs() -> None:
    server = WspServer(ServerConfig(host="127.0.0.1", port=0, secret=SECRET.encode()))
    await server.start()
    try:
        digests = []
        for seed, jobs in ((9, 1), (9, 6), (10, 6)):
            opts = CampaignOptions(seed=seed, cases=200, jobs=jobs, shrink=False)
            result = await run_campaign(
                Target("127.0.0.1", int(server.port)), build_credentials(SECRET.encode()), opts
            )
            assert result.cases == 200 and not result.findings
            digests.append(result.digest.hexdigest())
    finally:
        await server.shutdown()
    assert digests[0] == digests[1] != digests[2]


async def test_no_false_delivery_finding_after_a_reconnect() -> None:
    """A shape the 100,000-case run flagged on the reference server: topics
    subscribed from an offset (content unknown: offsets checked, data not), slow
    readers, reconnects, more publishes, on topics whose history grows. The
    suite's own bookkeeping must not turn the replay after a reconnect into a
    delivery finding (before the fix, 2 of these 40 sessions had one)."""
    import random

    from wsproto_tools.fuzz.wsp.actions import ACTIONS, Plan
    from wsproto_tools.fuzz.wsp.runner import run_case
    from wsproto_tools.fuzz.wsp.steps import Step

    names = ["subscribe", "publish", "publish", "slow-reader", "reconnect", "unsubscribe", "flood"]
    hello = Step("hello", {"auth": "hmac", "caps": ["pubsub"], "variant": "ok", "version": 2})
    server = WspServer(ServerConfig(host="127.0.0.1", port=0, secret=SECRET.encode()))
    await server.start()
    try:
        creds = build_credentials(SECRET.encode())
        for index in range(40):
            rng, plan, steps = random.Random(index), Plan("hmac", ("pubsub",)), [hello]
            for _ in range(20):
                name = rng.choice(names)
                args = ACTIONS[name].generate(rng, plan)
                if args is not None:
                    steps.append(Step(name, args))
            case = Case(index, tuple(steps))
            target = Target("127.0.0.1", int(server.port))
            result = await run_case(target, creds, case, timeout=1.0, slot=index % 4)
            assert not result.findings, [f.to_json() for f in result.findings[:3]]
    finally:
        await server.shutdown()


# ---------------------------------------------------------------- planted bugs
@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_planted_bug_is_found(bug: str, planted_runs: dict[str, Any]) -> None:
    cases, oracle, _extra = PLANTED[bug]
    status, report, _out = planted_runs[bug]
    assert status == 1, report["summary"]
    oracles = {f["oracle"] for f in report["findings"]}
    assert oracle in oracles, report["findings"]
    found = next(f for f in report["findings"] if f["oracle"] == oracle)
    assert found["case"] < cases
    if oracle != "memory":
        files = found["reproducer"]["files"]
        assert any(name.endswith(".py") for name in files)
        assert found["reproducer"]["steps"] <= 4  # shrunk to a few steps
    if bug == "crash-field":
        steps = found["reproducer"]["case"]["steps"]
        assert any(s["action"] == "subscribe" and s["args"]["from"] == "huge" for s in steps)
        assert "status 70" in found["observed"]
    if bug == "wrong-close":
        assert found["rule"] == 27 and "1008" in found["observed"]


def test_nothing_found_on_the_reference_behind_planted(planted_runs: dict[str, Any]) -> None:
    status, report, _out = planted_runs["none"]
    assert report["findings"] == [] and status == 0
    memory = report["memory"]
    assert memory["source"] == "process" and memory["end_bytes"] > 0


def test_reproducer_fails_while_the_bug_is_there(
    planted_runs: dict[str, Any], jwt_key: Path, tmp_path: Path
) -> None:
    status, report, _out = planted_runs["wrong-close"]
    assert status == 1
    found = next(f for f in report["findings"] if f["oracle"] == "close-code")
    files = found["reproducer"]["files"]
    test_file = next(Path(n) for n in files if n.endswith(".py"))
    cassette = next(Path(n) for n in files if n.endswith(".cassette.ndjson"))
    recorded = read_cassette(cassette.read_text().splitlines())
    assert recorded.connections and any(m.direction == "client" for m in recorded.messages)
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)]
    against_bug = subprocess.run(
        run, env=_env(), capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False
    )
    assert against_bug.returncode == 1, against_bug.stdout[-2000:]
    assert "the finding came back" in against_bug.stdout
    fixed = _env(WSP_FUZZ_TARGET_CMD=_target_cmd("none", jwt_key))
    against_fix = subprocess.run(
        run, env=fixed, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False
    )
    assert against_fix.returncode == 0, against_fix.stdout[-2000:]


# ---------------------------------------------------------------- the CLI
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "args",
    [
        ("--suite", "wsp", "--secret", "s"),  # no target
        ("ws://127.0.0.1:1/", "--suite", "wsp", "--cases", "1.*"),
        ("--suite", "wsp", "--target-cmd", "wsp serve"),  # no {port}
        ("ws://127.0.0.1:1/", "--suite", "wsp", "--coverage"),  # two targets
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    proc = subprocess.run(
        _wsp("fuzz", *args), env=_env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_target_exits_4() -> None:
    url = f"ws://127.0.0.1:{_free_port()}/"
    proc = subprocess.run(
        _wsp("fuzz", url, "--suite", "wsp", "--secret", "s", "--cases", "5"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 4, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("wsp: error: cannot reach"), proc.stderr


def test_sigint_writes_the_report_of_finished_cases(jwt_key: Path, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    proc = subprocess.Popen(
        _wsp(
            "fuzz",
            "--suite",
            "wsp",
            "--target-cmd",
            _target_cmd("none", jwt_key),
            "--secret",
            SECRET,
            "--duration",
            "60",
            "--json-report",
            str(report),
        ),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(6)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted after" in err
    data = json.loads(report.read_text())
    assert data["interrupted"]["finished"] == data["summary"]["cases"] > 0


def test_coverage_mode_grows_a_corpus(tmp_path: Path) -> None:
    proc = subprocess.run(
        _wsp(
            "fuzz", "--suite", "wsp", "--coverage", "--secret", SECRET, "--cases", "150", "--json"
        ),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    _valid(report)
    points = [c["points"] for c in report["coverage"]]
    assert points == sorted(points) and points[-1] > points[0] > 0
    assert report["summary"]["corpus"] > 0
    assert any(name.endswith("server/app.py") for name in report["coverage_files"])


def test_serve_mode_runs_through_the_cli() -> None:
    port = _free_port()
    server = subprocess.Popen(
        _wsp(
            "fuzz",
            "--serve",
            "--suite",
            "wsp",
            "--port",
            str(port),
            "--secret",
            SECRET,
            "--cases",
            "12",
            "--json",
        ),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        async def clients() -> None:
            from wsproto_tools.client import Client

            deadline = time.monotonic() + 60
            while server.poll() is None and time.monotonic() < deadline:
                client = Client(
                    f"ws://127.0.0.1:{port}/",
                    secret=SECRET.encode(),
                    connect_attempts=1,
                    max_attempts=0,
                    open_timeout=3.0,
                )
                try:
                    async with asyncio.timeout(8):
                        await client.connect()
                        await client.subscribe("t")
                        await asyncio.sleep(1)
                except Exception:
                    pass
                finally:
                    try:
                        async with asyncio.timeout(3):
                            await client.close()
                    except Exception:
                        pass
                await asyncio.sleep(0.05)

        asyncio.run(clients())
        out, err = server.communicate(timeout=60)
    finally:
        server.kill()
    assert "Traceback" not in err
    report = json.loads(out)
    _valid(report)
    assert report["suite"] == "wsp" and report["mode"] == "serve"
    assert report["summary"]["cases"] == 12
    assert server.returncode == (1 if report["findings"] else 0)


@pytest.mark.parametrize("colours", ["none", "256", "truecolor"])
def test_findings_table_in_an_80_column_terminal(colours: str, tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_wsp_suite_terminal", Path(__file__).parents[1] / "cli" / "terminal.py"
    )
    assert spec is not None and spec.loader is not None
    terminal = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = terminal  # its dataclasses look their module up
    spec.loader.exec_module(terminal)
    run_in_terminal = terminal.run_in_terminal

    target = " ".join(command("wrong-close", "{port}", "--secret", SECRET))
    line = (
        f"{sys.executable} -c '{_MAIN}' fuzz --suite wsp --target-cmd \"{target}\" "
        f"--secret {SECRET} --cases 150 --timeout 1 --reproducers {tmp_path / 'r'}"
    )
    run = run_in_terminal(line, colours=colours, columns=80, timeout=120, cwd=tmp_path)
    assert run.crash() is None, run.output[-3000:]
    assert run.status == 1, run.output[-2000:]
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "", run.output)
    assert "sequence-gap" in text and "closed with 1008" in text
    widths = [len(line.rstrip("\r")) for line in text.splitlines()]
    assert max(widths) <= 80, max(widths)


def test_a_wss_server_with_its_ca(tls_files: Any, tmp_path: Path) -> None:
    """wss://: every case's connection is TLS, checked against --cafile; a CA
    that did not sign the certificate is refused before the first case (4)."""
    port = _free_port()
    server = subprocess.Popen(
        _wsp("serve", "--host", "127.0.0.1", "--port", str(port), "--secret", SECRET,
             "--certfile", tls_files.certfile, "--keyfile", tls_files.keyfile),
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        url = f"wss://127.0.0.1:{port}/"
        good = subprocess.run(
            _wsp("fuzz", url, "--suite", "wsp", "--secret", SECRET, "--cafile",
                 tls_files.cafile, "--cases", "80", "--json"),
            env=_env(), capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert good.returncode == 0, good.stderr[-2000:]
        report = json.loads(good.stdout)
        assert report["summary"]["cases"] == 80 and report["findings"] == []
        assert "active+sealed" in report["states"] or "active" in report["states"]
        bad = subprocess.run(
            _wsp("fuzz", url, "--suite", "wsp", "--secret", SECRET, "--cafile",
                 tls_files.other_cafile, "--cases", "5"),
            env=_env(), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert bad.returncode == 4, bad.stderr
        assert "certificate" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        server.terminate()
        server.wait(10)
