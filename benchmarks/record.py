"""What ``wsp serve --record`` costs: the echo benchmark with and without recording.

Run: ``python benchmarks/record.py`` (``--quick`` for a short run). The tests of
``benchmarks/echo.py`` (its functions, imported): (a) awaited echo request round
trips and (b) pipelined publish -> delivery, each against two wsp servers in
child processes, configured as echo.py's, one of them recording every session
to pcapng in a temporary directory (``record_dir``, what ``--record DIR`` sets).
Both run in the same run, in paired blocks that take turns to go first; the
ratio is recorded / not recorded (target >= 0.9x: recording costs at most 10 %).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile

from echo import (
    alternate,
    child,
    load,
    row,
    serve_wsp,
    wsp_client,
    wsp_pipelined,
    wsp_round_trips,
)

SIZES = (64, 1024)


def _size(directory: str) -> tuple[int, int]:
    """(files, bytes) in ``directory``."""
    names = os.listdir(directory)
    return len(names), sum(os.path.getsize(os.path.join(directory, n)) for n in names)


async def main(quick: bool) -> None:
    trips = 1000
    piped = 10_000
    rounds = 5 if quick else 15
    print(
        f"record benchmark: loopback, servers in child processes, python "
        f"{sys.version.split()[0]}, {os.cpu_count()} cores, load {load()}; "
        f"{rounds} rounds of paired blocks ({trips:,} round trips, {piped:,} messages) on "
        f"one connection per server, recording and plain taking turns to go first; rates "
        f"are each side's median, the ratio is the median of the paired ratios (quartiles "
        f"in brackets)"
    )
    with tempfile.TemporaryDirectory(prefix="wsp-record-bench-") as directory:
        script = os.path.abspath(__file__)
        async with (
            child("wsp", "--record", directory, script=script) as rp,
            child("wsp", script=script) as pp,
        ):
            print(
                f"{'size':>6} {'test':<34} {'recorded':>12} {'plain':>12} {'ratio':>7} "
                f"{'quartiles':<11} target"
            )
            for size in SIZES:
                payload = os.urandom(size)
                async with wsp_client(rp) as recorded, wsp_client(pp) as plain:
                    ours = wsp_round_trips(recorded, payload, trips)
                    theirs = wsp_round_trips(plain, payload, trips)
                    await alternate(1, ours, theirs)  # warm-up
                    row(
                        size,
                        "(a) awaited round trips /s",
                        await alternate(rounds, ours, theirs),
                        ">= 0.9x",
                    )
                async with (
                    wsp_client(rp, queue_size=piped + 10) as recorded,
                    wsp_client(pp, queue_size=piped + 10) as plain,
                ):
                    topic = f"bench-{os.urandom(6).hex()}"
                    ours = wsp_pipelined(recorded, await recorded.subscribe(topic), payload, piped)
                    theirs = wsp_pipelined(plain, await plain.subscribe(topic), payload, piped)
                    await alternate(1, ours, theirs)  # warm-up
                    row(
                        size,
                        "(b) pipelined deliveries /s",
                        await alternate(rounds, ours, theirs),
                        ">= 0.9x",
                    )
        files, size_ = _size(directory)
        print(f"recorded: {files} files, {size_:,} bytes of pcapng")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run")
    parser.add_argument("--role", choices=["wsp"], help=argparse.SUPPRESS)
    parser.add_argument("--record", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "wsp":
        asyncio.run(serve_wsp(record_dir=args.record))
    else:
        asyncio.run(main(args.quick))
