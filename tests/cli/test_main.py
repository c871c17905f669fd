"""The ``wsp`` frame: help, version, lazy imports, exit statuses."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import wsproto_tools.cli
from wsproto_tools import __version__
from wsproto_tools.cli.env import end
from wsproto_tools.cli.main import COMMANDS, cli
from wsproto_tools.cli.status import CommandExit, ExitStatus
from wsproto_tools.exceptions import AuthenticationError, CaptureError


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_help_lists_every_registered_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_every_registered_command_loads_and_has_help() -> None:
    for name in COMMANDS:
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)


def test_help_does_not_import_heavy_packages() -> None:
    code = (
        "import sys\n"
        "from wsproto_tools.cli.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('scapy', 'textual', 'rich', 'websockets') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "HEAVY="


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == ExitStatus.USAGE == 2


def test_exit_status_values_are_the_documented_ones() -> None:
    assert [int(s) for s in ExitStatus] == [0, 1, 2, 3, 4, 5, 130]


def test_end_gives_the_line_and_the_status(capsys: pytest.CaptureFixture[str]) -> None:
    """cli.env.end: what ended a command, said once on stderr, and its status."""
    cases: list[tuple[BaseException, int, str]] = [
        (CommandExit(ExitStatus.BAD_INPUT, "cannot open F"), 3, "wsp: error: cannot open F\n"),
        (CommandExit(ExitStatus.PROBLEMS_FOUND), 1, ""),
        (KeyboardInterrupt(), 130, "wsp: interrupted\n"),
        (CaptureError("F: not a capture"), 3, "wsp: error: F: not a capture\n"),
        (AuthenticationError("refused"), 5, "wsp: error: refused\n"),
        (FileNotFoundError(2, "No such file or directory", "F"), 4,
         "wsp: error: F: No such file or directory\n"),
    ]
    for error, status, line in cases:
        assert end(error) == status
        assert capsys.readouterr().err == line
    with pytest.raises(RuntimeError):
        end(RuntimeError("a bug"))


def test_one_way_to_end() -> None:
    """Commands raise (CommandExit or an error); only main() exits the process."""
    root = Path(wsproto_tools.cli.__file__).parent
    for path in sorted(root.glob("*.py")):
        text = path.read_text()
        found = re.findall(r"SystemExit|guarded|ctx\.exit\(|(?<![.\w])fail\(", text)
        exits = text.count("sys.exit(")
        assert not found, (path.name, found)
        assert exits == (1 if path.name == "main.py" else 0), path.name


def test_an_interrupt_wrapped_by_python_still_counts_as_interrupted() -> None:
    # SIGTERM during a slow import (textual's, for wsp tui) arrives inside class
    # creation, and Python reports "Error calling __set_name__" caused by it
    from wsproto_tools.cli.main import _interrupted

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as interrupt:
            raise RuntimeError("Error calling __set_name__ on 'reactive'") from interrupt
    except RuntimeError as wrapped:
        assert _interrupted(wrapped)
    assert not _interrupted(RuntimeError("a bug"))
    assert not _interrupted(ValueError("x"))
