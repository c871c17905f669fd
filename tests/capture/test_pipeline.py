"""The capture pipeline without the command line: any sink, and the parallel merge."""

from __future__ import annotations

import array
import io
from typing import Any

import pytest

from wsproto_tools.capture import CaptureDecoder, CapturedMessage, CaptureStats, PacketReader
from wsproto_tools.capture.parallel import Merger, jobs_for, merge_limits, pack_lines
from wsproto_tools.capture.pipeline import open_file, run_decoder
from wsproto_tools.exceptions import CaptureUnreadable

from .samples import CAPTURES, sample_messages


class ListSink:
    """A sink that keeps what it is given."""

    def __init__(self) -> None:
        self.stats = CaptureStats()
        self.violations = 0
        self.messages: list[CapturedMessage] = []
        self.warnings: list[tuple[int, str]] = []

    def events(self, events: list[Any]) -> None:
        for event in events:
            if type(event) is CapturedMessage:
                self.stats.add(event)
                self.messages.append(event)
                self.violations += bool(event.violations)

    def flush(self) -> None:
        pass

    def warning(self, number: int, message: str) -> None:
        self.warnings.append((number, message))


def test_run_decoder_into_any_sink() -> None:
    path = CAPTURES / "wsp-session-v2.pcap"
    stream, size = open_file(str(path))
    with stream:
        sink = ListSink()
        outcome = run_decoder(PacketReader(stream, sink.warning), sink, CaptureDecoder())
    assert size == path.stat().st_size
    assert [m.number for m in sink.messages] == [m.number for m in sample_messages(path)]
    summary = outcome.summary()
    assert summary["messages"] == len(sink.messages) > 0
    assert summary["format"] == "pcap"


def test_open_file_says_what_is_wrong(tmp_path: Any) -> None:
    with pytest.raises(CaptureUnreadable, match="is a directory, not a capture"):
        open_file(str(tmp_path))
    with pytest.raises(CaptureUnreadable, match=r"cannot open .*: No such file"):
        open_file(str(tmp_path / "missing.pcap"))


def _batch(watermark: int, numbers: list[int]) -> bytes:
    lines = b"".join(b"%d\n" % n for n in numbers)
    return pack_lines(watermark, array.array("Q", numbers).tobytes(), lines)


def test_merger_writes_lines_in_packet_order_once_it_is_known() -> None:
    out = io.StringIO()
    merger = Merger(2, out)
    merger.add(0, _batch(5, [1, 4, 5]))
    merger.drain()
    assert out.getvalue() == ""  # worker 1 may still have packet 1
    merger.add(1, _batch(3, [2, 3]))
    merger.drain()
    assert out.getvalue() == "1\n2\n3\n"  # 4 waits: worker 1 may have packet 4
    merger.done[1] = True
    merger.drain()
    assert out.getvalue() == "1\n2\n3\n4\n5\n"


def test_jobs_and_limits() -> None:
    assert jobs_for(0, 1, "F", "ndjson") == 1  # small: one process
    assert jobs_for(3, 1, "-", "ndjson") == 1  # a stream cannot be shared
    assert jobs_for(3, 1, "F", "table") == 1  # the table is not merged
    assert jobs_for(3, 1, "F", "stats") == 3
    assert merge_limits({"a": 1, "b": {"x": 1}}, {"a": 2, "b": {"x": 2, "y": 1}}) == {
        "a": 3, "b": {"x": 3, "y": 1}
    }
