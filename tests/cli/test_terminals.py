"""Decoded tables in each kind of terminal: flagged rows are styled with the
terminal's own colour codes, and narrow terminals keep what matters."""

from __future__ import annotations

import re
import subprocess

import pytest

from .terminal import ROOT, environment, run_in_terminal


@pytest.mark.parametrize("colours", ["none", "8", "256", "truecolor"])
def test_flagged_rows_in_every_colour_system(colours: str) -> None:
    run = run_in_terminal("wsp decode captures/violations.pcap", colours=colours, columns=80,
                          timeout=60)
    assert run.crash() is None, run.output
    assert run.status == 0, run.output
    flagged = [line for line in run.output.splitlines() if "text !" in line]
    assert flagged, run.output
    if colours == "none":
        assert "\x1b[" not in run.output
    else:
        assert all("\x1b[" in line for line in flagged), flagged


def test_addresses_are_not_cut_at_80_columns() -> None:
    run = run_in_terminal("wsp decode captures/wsp-session-v2.pcap", colours="none",
                          columns=80, timeout=60)
    assert run.status == 0, run.output
    table = run.output[run.output.index("Connections"):run.output.index("Summary")]
    addresses = re.findall(r"127\.0\.0\.1:\d+", table)
    assert len(addresses) == 6, table  # three connections, client and server
    assert "127.0.0.…" not in table
    assert all(len(line) <= 80 for line in run.output.splitlines())


def test_nothing_is_cut_through_a_pipe() -> None:
    done = subprocess.run(["wsp", "decode", "captures/wsp-session-v2.pcap"], cwd=ROOT,
                          capture_output=True, text=True, env=environment(), timeout=60,
                          check=False)
    assert done.returncode == 0
    assert "…" not in done.stdout
    # the full Authenticate proof is there (the 80-column view cuts it)
    assert re.search(r'"proof":"[0-9a-f]{64}"', done.stdout), done.stdout[:2000]
