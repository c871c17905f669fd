from collections.abc import Callable
from typing import Any

class LineWriter:
    def __init__(
        self,
        opcode_heads: dict[int, bytes],
        type_names: dict[int, str],
        type_codes: dict[type, int],
        flag_lists: tuple[bytes, ...],
        simple_fn: Callable[[type], tuple[tuple[str, bytes], ...] | None],
        binary_cls: type,
        text_cls: type,
        batch_cls: type,
        payload_json: Callable[[Any], str],
        with_hex: bool = ...,
        limit: int = ...,
        max_payload: int = ...,
    ) -> None: ...
    def write(self, item: Any) -> bool: ...
    def append(self, data: bytes) -> None: ...
    def take(self) -> bytes: ...
    def write_to(self, write: Callable[[memoryview], object]) -> None: ...
    @property
    def size(self) -> int: ...
