"""The WebSocket wire (RFC 6455, RFC 7692), sans-I/O.

Frames (:mod:`.frames`), close payloads (:mod:`.close`), message reassembly
with violation checks (:mod:`.messages`), permessage-deflate contexts
(:mod:`.deflate`) and the opening handshake (:mod:`.handshake`). Used by the
transports, the capture decoder and the fuzzer alike.
"""

from wsproto_tools.ws.close import encode_close, is_valid_close_code, parse_close
from wsproto_tools.ws.deflate import DeflateContext, DeflateParams
from wsproto_tools.ws.frames import FrameParser, Opcode, RawFrame, apply_mask, encode_frame
from wsproto_tools.ws.handshake import (
    HttpHead,
    UpgradeRequest,
    UpgradeResponse,
    accept_key,
    build_request,
    build_response,
    looks_like_http,
    parse_http_head,
)
from wsproto_tools.ws.messages import VIOLATIONS, MessageAssembler, WsMessage

__all__ = [
    "VIOLATIONS",
    "DeflateContext",
    "DeflateParams",
    "FrameParser",
    "HttpHead",
    "MessageAssembler",
    "Opcode",
    "RawFrame",
    "UpgradeRequest",
    "UpgradeResponse",
    "WsMessage",
    "accept_key",
    "apply_mask",
    "build_request",
    "build_response",
    "encode_close",
    "encode_frame",
    "is_valid_close_code",
    "looks_like_http",
    "parse_close",
    "parse_http_head",
]
