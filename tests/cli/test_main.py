"""The ``wsp`` frame: help, version, lazy imports, exit statuses."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from wsproto_tools import __version__
from wsproto_tools.cli.main import COMMANDS, cli
from wsproto_tools.cli.status import ExitStatus


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
