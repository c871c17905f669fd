"""Which decoded messages a user asked to see (``wsp decode`` filters)."""

from __future__ import annotations

__all__ = ["MessageFilter"]

import re
from dataclasses import dataclass

from wsproto_tools.capture.decoder import CapturedMessage
from wsproto_tools.capture.stats import opcode_name


@dataclass(frozen=True)
class MessageFilter:
    """All given conditions must hold; empty collections mean "any"."""

    conns: frozenset[int] = frozenset()
    direction: str | None = None
    opcodes: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    topic: str | None = None
    grep: re.Pattern[str] | None = None

    @property
    def active(self) -> bool:
        return bool(
            self.conns or self.direction or self.opcodes or self.types or self.topic
            or self.grep
        )

    def __call__(self, item: CapturedMessage) -> bool:
        if self.conns and item.conn not in self.conns:
            return False
        if self.direction and item.direction != self.direction:
            return False
        if self.opcodes and opcode_name(item.msg.opcode) not in self.opcodes:
            return False
        wsp = item.wsp if item.wsp is not None and not isinstance(item.wsp, str) else None
        if self.types and (wsp is None or wsp[1].type_name.lower() not in self.types):
            return False
        if self.topic is not None:
            topic = getattr(wsp[1].payload, "topic", None) if wsp is not None else None
            if topic != self.topic:
                return False
        if self.grep is not None:
            return self._grep(item, self.grep)
        return True

    @staticmethod
    def _grep(item: CapturedMessage, pattern: re.Pattern[str]) -> bool:
        msg = item.msg
        if msg.text is not None and pattern.search(msg.text):
            return True
        if msg.close_reason and pattern.search(msg.close_reason):
            return True
        wsp = item.wsp
        if wsp is not None and not isinstance(wsp, str) and pattern.search(repr(wsp[1].payload)):
            return True
        if msg.text is None and pattern.search(msg.payload.decode("latin-1")):
            return True
        return bool(pattern.search(msg.payload.hex()))
