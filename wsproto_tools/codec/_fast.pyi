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
        fallback: Callable[..., Any],
        default_limits: Any,
        small_body: Callable[[Any], int],
    ) -> None: ...
    def decode(
        self, data: bytes, *, version: int | None = None, limits: Any = ..., cipher: Any = None
    ) -> Any: ...

def pack_v2(
    code: int, flags: int, sequence: int, session_id: int = 0, timestamp: int = 0
) -> bytes: ...
