"""The gate that holds a connection's output until what it acknowledges is stored."""

from __future__ import annotations

import asyncio

from wsproto_tools.server.gate import Gate


async def test_output_leaves_in_order_once_its_barriers_and_all_before_are_done() -> None:
    written: list[bytes] = []
    failed: list[BaseException] = []
    gate = Gate(written.extend, failed.append)
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    gate.pass_([first], [b"ack 1"])
    gate.pass_([second], [b"ack 2"])
    gate.pass_([], [b"heartbeat"])  # behind what is held, though it waits for nothing
    assert written == [] and len(gate) == 3
    second.set_result(None)
    await asyncio.sleep(0)
    assert written == []  # the first is still on its way
    first.set_result(None)
    await asyncio.sleep(0)
    assert written == [b"ack 1", b"ack 2", b"heartbeat"] and not gate.holding
    gate.pass_([], [b"direct"])  # nothing held: written at once
    assert written[-1] == b"direct" and not failed


async def test_a_failed_barrier_ends_the_gate_and_releases_a_waiting_reader() -> None:
    written: list[bytes] = []
    failed: list[BaseException] = []
    gate = Gate(written.extend, failed.append)
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(4)]
    for i, future in enumerate(futures):
        gate.pass_([future], [b"%d" % i])
    lower = gate.below(2)
    assert lower is not None and not lower.done()
    futures[0].set_result(None)
    futures[1].set_exception(OSError("not stored"))
    await asyncio.sleep(0)
    assert written == [b"0"] and isinstance(failed[0], OSError)
    assert lower.done() and gate.failed
    futures[2].set_result(None)
    await asyncio.sleep(0)
    assert written == [b"0"]  # nothing after a failure
