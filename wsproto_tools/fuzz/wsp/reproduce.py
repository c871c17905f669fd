"""Reproducers of wsp suite findings: a case file and a pytest file that fails
while the bug is there.

:func:`reproducer_files` writes, for one finding, ``<name>.json`` (the shrunk
case, the finding and the target) and ``test_<name>.py``, which runs the case
again with :func:`replay_finding` and fails when the same finding (oracle,
rule, step kind) comes back. The target is the recorded URL or ``--target-cmd``
(the environment variables ``WSP_FUZZ_URL`` and ``WSP_FUZZ_TARGET_CMD``
override them). The CLI adds the cassette (the case's wire traffic, for ``wsp
replay``).
"""

from __future__ import annotations

__all__ = ["replay_finding", "reproducer_files", "run_reproducer"]

import asyncio
import json
import os
import pprint
import re
from typing import Any
from urllib.parse import urlsplit

from wsproto_tools.exceptions import ConfigError
from wsproto_tools.fuzz.wsp.credentials import build_credentials, forbidden_topic, topic_tag
from wsproto_tools.fuzz.wsp.findings import Finding, Oracle
from wsproto_tools.fuzz.wsp.runner import Target, run_case
from wsproto_tools.fuzz.wsp.steps import Case


def _name(finding: Finding) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", finding.message.split("(", 1)[0].lower()).strip("_")
    return f"case_{finding.case}_{finding.oracle.value.replace('-', '_')}_{slug or 'run'}"


def reproducer_files(
    finding: Finding, case: Case, target: dict[str, Any], *, seed: int
) -> dict[str, str]:
    """File name -> content of the reproducer of ``finding`` (see module doc).
    ``target``: ``url`` or ``target_cmd``, plus the credentials' options."""
    name = _name(finding)
    data = {"seed": seed, "finding": finding.to_json(), "case": case.to_json(), "target": target}
    test = f'''"""Reproducer written by `wsp fuzz --suite wsp` (seed {seed}, case {finding.case}).

Oracle {finding.oracle.value} at step {finding.step}: {finding.message}
Expected: {finding.expected}
Observed: {finding.observed}

It fails while the bug is there. The target is the one the run used;
WSP_FUZZ_URL or WSP_FUZZ_TARGET_CMD point it elsewhere.
"""

from wsproto_tools.fuzz.wsp.reproduce import run_reproducer

REPRODUCER = {pprint.pformat(data, width=88, sort_dicts=True)}


def test_{name}() -> None:
    again = run_reproducer(REPRODUCER)
    assert not again, "the finding came back: " + "; ".join(again)
'''
    return {
        f"{name}.json": json.dumps(data, indent=2, sort_keys=True) + "\n",
        f"test_{name}.py": test,
    }


def run_reproducer(data: dict[str, Any], *, tries: int = 3) -> list[str]:
    """Run a reproducer (the JSON of :func:`reproducer_files`); the findings of the
    same kind that came back, as text (empty: the bug is gone). A finding that
    depends on timing gets ``tries`` chances to show."""
    finding = Finding.from_json(data["finding"])
    case = Case.from_json(data["case"])
    target = dict(data.get("target") or {})
    if os.environ.get("WSP_FUZZ_URL"):
        target = {**target, "url": os.environ["WSP_FUZZ_URL"], "target_cmd": None}
    if os.environ.get("WSP_FUZZ_TARGET_CMD"):
        target = {**target, "target_cmd": os.environ["WSP_FUZZ_TARGET_CMD"], "url": None}
    for _ in range(tries):
        found = asyncio.run(replay_finding(case, finding, **target))
        if found:
            return [
                f"{f.oracle.value} at step {f.step}: {f.expected} / {f.observed}" for f in found
            ]
    return []


async def replay_finding(
    case: Case,
    finding: Finding,
    *,
    url: str | None = None,
    target_cmd: str | None = None,
    secret: str | None = None,
    token: str | None = None,
    jwt_key: str | None = None,
    token_key: str | None = None,
    timeout: float = 2.0,
) -> list[Finding]:
    """Run ``case`` once on the target; the findings with ``finding``'s key."""
    from wsproto_tools.fuzz.wsp.campaign import SLOTS, TargetProcess, _crashed

    creds = build_credentials(
        secret.encode() if secret else None,
        token,
        jwt_key,
        token_key.encode() if token_key else None,
    )
    process = None
    if target_cmd:
        process = TargetProcess(target_cmd)
        await process.start()
        where = Target(process.host, process.port)
    elif url:
        parts = urlsplit(url)
        if parts.scheme != "ws" or not parts.hostname:
            raise ConfigError(f"a reproducer target must be a ws:// URL, not {url!r}")
        where = Target(parts.hostname, parts.port or 80, parts.path or "/")
    else:
        raise ConfigError("the reproducer names no target (url or target_cmd)")
    try:
        tag = topic_tag(creds, f"fz{os.urandom(3).hex()}")
        result = await run_case(
            where,
            creds,
            case,
            timeout=timeout,
            tag=tag,
            slot=case.index % SLOTS,
            forbidden=forbidden_topic(creds),
        )
        if finding.oracle is Oracle.CRASH:
            crashed = await _crashed(process, where)
            return (
                []
                if crashed is None
                else [
                    Finding(
                        Oracle.CRASH,
                        case.index,
                        -1,
                        finding.message,
                        "the target keeps running",
                        crashed,
                    )
                ]
            )
        return [f for f in result.findings if f.key == finding.key]
    finally:
        if process is not None:
            await process.stop()
