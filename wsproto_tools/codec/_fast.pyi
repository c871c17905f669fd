from collections.abc import Callable
from typing import Any

class FastDecoder:
    def __init__(
        self,
        classes: dict[int, type],
        batch_byte: int,
        message_cls: type,
        message_slots: tuple[Any, ...],
        flags: tuple[Any, ...],
        binary_cls: type,
        text_cls: type,
        batch_cls: type,
        payload_slots: tuple[Any, ...],
        msgpack_payload: Callable[[type, bytes, Any], Any],
        specs: dict[type, tuple[tuple[bytes, int, bool, Any, Any], ...]],
    ) -> None: ...
    def decode(self, data: bytes, limits: Any, max_batch_items: int, small: int) -> Any: ...
