"""The ``wsp`` root group: wires the context and loads subcommands lazily.

Each command lives in its own module under ``wsproto_tools.cli`` and is imported
only when it runs (or when ``--help`` lists its one-line summary), so ``wsp
--help`` never imports scapy or Textual.
"""

from __future__ import annotations

__all__ = ["COMMANDS", "cli", "main"]

import importlib
import sys
from typing import Any, NoReturn

import click

from wsproto_tools import __version__
from wsproto_tools.cli.env import Environment, end
from wsproto_tools.cli.status import CommandExit
from wsproto_tools.exceptions import WspError

# name -> ("module:attribute", one-line help). Only commands that work are listed.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve:serve", "Run the reference wsp server (pub/sub, echo, /healthz, /metrics)."),
    "pub": ("pub:pub", "Publish messages to a topic; exit 0 when all were acknowledged."),
    "sub": ("sub:sub", "Subscribe to topics and print deliveries (reconnects and resumes)."),
    "connect": ("connect:connect", "An interactive wsp session: send, subscribe, publish, ping."),
    "msg": ("msg:msg", "Encode and decode wsp application messages."),
    "decode": ("decode:decode", "Decode WebSocket and wsp messages from a pcap/pcapng capture."),
    "inspect": ("inspect:inspect", "Print the inspector feed of a wsp serve --inspect (live)."),
    "tui": ("tui:tui", "Sessions, messages and stats of a capture, the tap, a server or a client."),
    "tap": ("tap:tap", "Decode WebSocket and wsp traffic live from a network interface."),
    "replay": ("replay:replay", "Replay recorded WebSocket traffic against a server (or as one) "
               "and diff the answers."),
    "fuzz": ("fuzz:fuzz", "RFC 6455 conformance fuzzing of a WebSocket server or client."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target[0].split(":")
        module = importlib.import_module(f"wsproto_tools.cli.{module_name}")
        command: click.Command = getattr(module, attribute)
        from wsproto_tools.cli.examples import add_examples

        add_examples(command, cmd_name)
        if isinstance(command, click.Group):
            for sub_name, sub_command in command.commands.items():
                add_examples(sub_command, f"{cmd_name} {sub_name}")
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if args and name not in COMMANDS and not name.startswith("-"):
            from wsproto_tools.cli.params import did_you_mean

            ctx.fail(f"no such command {name!r}{did_you_mean(name, sorted(COMMANDS))}")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; how it ended becomes a line and a status (:func:`end`)."""
        try:
            return super().invoke(ctx)
        except (CommandExit, WspError, OSError, UnicodeDecodeError, KeyboardInterrupt) as error:
            # through click as its own Exit: CliRunner and main() get the status
            raise click.exceptions.Exit(end(error)) from None
        except Exception as error:
            if not _interrupted(error):
                raise
            # Ctrl-C or SIGTERM while a module was being imported: Python wraps the
            # KeyboardInterrupt (e.g. "Error calling __set_name__"); still 130
            raise click.exceptions.Exit(end(KeyboardInterrupt())) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _interrupted(error: BaseException) -> bool:
    """Whether ``error`` was caused by a KeyboardInterrupt (its cause chain)."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="wsp")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """wsp: build, run and debug real-time WebSocket systems.

    Exit status: 0 ok; 1 the job ran and found problems; 2 usage error;
    3 bad input; 4 connection or network error; 5 authentication refused;
    130 interrupted.
    """
    ctx.obj = Environment()


def main(argv: list[str] | None = None) -> NoReturn:
    """Console-script entry point: the only place the process exits."""
    from wsproto_tools.cli.env import stop_on_sigterm

    stop_on_sigterm()
    try:
        status = cli.main(args=argv, prog_name="wsp", standalone_mode=False)
    except (click.ClickException, click.Abort, KeyboardInterrupt, BrokenPipeError) as error:
        # click's usage errors, and what happened outside a command
        status = end(error)
    sys.exit(status if isinstance(status, int) else 0)


if __name__ == "__main__":
    main()
