from typing import Any

class AckTracker:
    def __init__(
        self,
        highest_sent: dict[tuple[int, bool], int],
        latencies: list[float],
        sequenced: frozenset[type],
        acknowledge_cls: type,
        batch_cls: type,
        max_entries: int,
    ) -> None: ...
    def feed(self, message: Any, client: bool, ts: float) -> None: ...
    @property
    def unacked(self) -> int: ...
    @property
    def retransmissions(self) -> int: ...
