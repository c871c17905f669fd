from collections.abc import Callable
from typing import Any

def configure(message_cls: type, slots: tuple[Any, ...], frame_error: type) -> None: ...
def scan(
    data: bytes,
    start: int,
    client: bool,
    decompress: Callable[[bytes], bytes] | None,
    max_payload: int,
    max_message: int,
    on_failure: Callable[[int, bytes, int, Any], Any],
) -> tuple[list[Any], int, bool]: ...
