"""The response diff of ``wsp replay``: what a replayed connection answered against the
recording (docs/replay.md, "Diff").

Both sides are :class:`~wsproto_tools.replay.outcome.ConnOutcome`. Each server
message becomes a *normal form*, a JSON-able tree (:func:`normal_form`):

* a wsp message: ``{"opcode": "binary", "header": {"sequence", "session_id",
  "timestamp", "flags": {"compressed", "encrypted", "ack_requested"}}, "type":
  "Response", "payload": {...}}`` -- payload fields by their schema names; a
  ``data`` field (Response, Deliver, Publish, Request, BinaryData) and
  TextData's ``text`` hold the parsed JSON when they are JSON, so that paths
  reach into it (``payload.data.ts``); other bytes are hex strings. A Batch is
  compared as its items (how messages are batched depends on timing).
* any other message: ``{"opcode": "text", "payload": ...}`` -- the parsed JSON of
  the payload, else the text (``binary``: the hex of the bytes).

Messages are matched keyed first -- a Response by its request id, a Deliver by
topic, epoch rank and offset relative to the topic's first, Subscribed and
ContinuityLost by topic, Challenge and HandshakeResponse by type, an Error by
code and the sequence it refers to (then by code) -- and the others by position
among the messages of the same opcode and type. Then a :class:`ConnDiff` says
what is missing, extra, changed (the paths that differ after the ignore rules of
:mod:`.ignore`, with a unified diff of the JSON or a hex diff), reordered
(within a topic's deliveries, and among the other messages), whether the close
or the handshake changed, and the latencies. :class:`ReplayReport` gathers the
connections; :meth:`ReplayReport.to_json` is the ``--json`` document.

The engine's own traffic (Acknowledge, Heartbeat, WindowUpdate; on a session the
engine played, a Challenge or HandshakeResponse only one side has) is counted,
never compared. :func:`learn_noise` turns the differences between runs against
the same target into ignore rules (Diffy's idea).
"""

from __future__ import annotations

__all__ = [
    "ENGINE_TYPES",
    "IGNORED",
    "MAX_DIFF_LINES",
    "Change",
    "CloseChange",
    "ConnDiff",
    "HandshakeChange",
    "HandshakeFailure",
    "LatencyStats",
    "MessageRef",
    "Reorder",
    "ReplayReport",
    "build_report",
    "diff_connection",
    "hexdump",
    "learn_noise",
    "normal_form",
]

import bisect
import difflib
import json
import math
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from wsproto_tools.codec.schema import (
    PAYLOAD_CLASSES,
    Batch,
    BinaryData,
    Challenge,
    ContinuityLost,
    Deliver,
    Error,
    Flags,
    HandshakeResponse,
    Kind,
    Message,
    Payload,
    Response,
    Sealed,
    Subscribed,
    TextData,
    Unknown,
    payload_fields,
)
from wsproto_tools.replay.cassette import CassetteMessage
from wsproto_tools.replay.ignore import (
    DEFAULT_IGNORES,
    RELATIVE_FIELDS,
    IgnoreRule,
    IgnoreRules,
)
from wsproto_tools.replay.outcome import ConnOutcome

#: Server messages of the engine's own bookkeeping: counted, never compared.
ENGINE_TYPES = ("Acknowledge", "Heartbeat", "WindowUpdate")
_OPENING_TYPES = (Challenge.__name__, HandshakeResponse.__name__)
#: A change keeps at most this many diff lines (``truncated`` says when it kept fewer).
MAX_DIFF_LINES = 300
#: Pretty JSON longer than this (lines) is diffed path by path instead of line by line.
_MAX_JSON_LINES = 4000
#: Bytes shown in a hex diff at most (each side).
_MAX_HEX_BYTES = 64 * 1024
#: Bytes longer than this show in a JSON diff abbreviated (their hex diff follows).
_SHORT_BYTES = 32
_FLAGS = tuple((str(flag.name).lower(), int(flag)) for flag in Flags if flag)
_FIELDS = {cls: payload_fields(cls) for cls in PAYLOAD_CLASSES}


class _Bytes(str):
    """Bytes in a normal form: a hex string that remembers the bytes (for hex diffs)."""

    raw: bytes

    def __new__(cls, data: bytes) -> _Bytes:
        self = super().__new__(cls, data.hex())
        self.raw = data
        return self


_NOT_JSON = object()


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _parse_json(text: str) -> Any:
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _json_or_text(text: str) -> Any:
    value = _parse_json(text)
    return text if value is _NOT_JSON else value


def _json_or_bytes(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _Bytes(data)
    value = _parse_json(text)
    return _Bytes(data) if value is _NOT_JSON else value


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return _Bytes(value)
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def _payload_tree(payload: Payload) -> dict[str, Any]:
    if isinstance(payload, TextData):
        return {"text": _json_or_text(payload.text)}
    if isinstance(payload, BinaryData):
        return {"data": _json_or_bytes(payload.data)}
    if isinstance(payload, Sealed):
        return {"encrypted": True, "data": _Bytes(payload.data)}
    if isinstance(payload, Unknown):
        return {"code": payload.code, "data": _Bytes(payload.data)}
    if isinstance(payload, Batch):
        return {"messages": [_wsp_tree(item) for item in payload.messages]}
    out: dict[str, Any] = {}
    fields = _FIELDS.get(type(payload))
    if fields is None:
        fields = payload_fields(type(payload))
    for name, fspec in fields:
        value = getattr(payload, name)
        if value is None:
            continue
        if fspec.kind is Kind.BYTES:
            out[name] = _json_or_bytes(value) if name == "data" else _Bytes(value)
        elif fspec.kind is Kind.STR_UINT_MAP:
            out[name] = {str(k): v for k, v in value}
        elif fspec.kind is Kind.DELTA_OPS:
            out[name] = [
                _Bytes(op) if isinstance(op, bytes) else [op.offset, op.length] for op in value
            ]
        else:
            out[name] = _plain(value)
    return out


def _wsp_tree(msg: Message) -> dict[str, Any]:
    bits = int(msg.flags)
    flags = {name: bool(bits & value) for name, value in _FLAGS}
    return {
        "opcode": "binary",
        "header": {
            "sequence": msg.sequence,
            "session_id": msg.session_id,
            "timestamp": msg.timestamp,
            "flags": flags,
        },
        "type": msg.type_name,
        "payload": _payload_tree(msg.payload),
    }


def normal_form(message: CassetteMessage) -> dict[str, Any]:
    """The JSON-able tree a message is compared as (absolute offsets; a Batch whole)."""
    if message.wsp is not None:
        return _wsp_tree(message.wsp)
    if message.opcode == "close":
        return {
            "opcode": "close",
            "payload": {"code": message.close_code, "reason": message.close_reason},
        }
    if message.text is not None:
        return {"opcode": message.opcode, "payload": _json_or_text(message.text)}
    return {"opcode": message.opcode, "payload": _json_or_bytes(message.payload())}


# ----------------------------------------------------------------- items and keys


@dataclass(frozen=True, slots=True)
class MessageRef:
    """One side's message: ``index`` in ``ConnOutcome.received`` (``item`` within a
    Batch), its time, type (wsp type name, else the opcode) and key (``id=7``,
    ``topic=prices +3``; None when matched by position)."""

    index: int
    item: int | None
    t: float
    type: str
    key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "item": self.item,
            "t": self.t,
            "type": self.type,
            "key": self.key,
        }

    def label(self) -> str:
        where = f"#{self.index}" + (f".{self.item}" if self.item is not None else "")
        return f"{where} {self.type}" + (f" {self.key}" if self.key else "")


@dataclass(slots=True)
class _Item:
    ref: MessageRef
    opcode: str
    tree: dict[str, Any]
    key: tuple[Any, ...] | None
    alt_key: tuple[Any, ...] | None
    stream: str
    sealed: bool

    @property
    def type(self) -> str:
        return self.ref.type


class _Numbering:
    """Per-outcome numbering of topics: each topic's epochs ranked in order (0 for the
    lowest) and, per (topic, epoch), the lowest offset any message gave -- what
    relative offsets count from, so that a uniformly shifted stream compares equal
    and a reordered one is seen as reordered."""

    def __init__(self, messages: Iterable[Message]) -> None:
        epochs: dict[str, set[int]] = defaultdict(set)
        self.anchors: dict[tuple[str, int], int] = {}
        for msg in messages:
            p = msg.payload
            if isinstance(p, Deliver):
                offsets: tuple[int, ...] = (p.offset,)
            elif isinstance(p, Subscribed):
                offsets = (p.next_offset,)
            elif isinstance(p, ContinuityLost):
                offsets = (p.requested_offset, p.first_available)
            else:
                continue
            epochs[p.topic].add(p.epoch)
            key = (p.topic, p.epoch)
            self.anchors[key] = min(self.anchors.get(key, offsets[0]), *offsets)
        self.ranks = {
            topic: {e: n for n, e in enumerate(sorted(seen))} for topic, seen in epochs.items()
        }

    def rank(self, topic: str, epoch: int) -> int:
        return self.ranks[topic][epoch]

    def relative(self, topic: str, epoch: int, offset: int) -> int:
        return offset - self.anchors[(topic, epoch)]


def _flat(messages: Iterable[Message]) -> Iterator[Message]:
    for msg in messages:
        if isinstance(msg.payload, Batch):
            yield from _flat(msg.payload.messages)
        else:
            yield msg


def _keyed(
    payload: Payload, tree: dict[str, Any], numbering: _Numbering, relative: bool
) -> tuple[tuple[Any, ...] | None, tuple[Any, ...] | None, str | None, str]:
    """(key, alternative key, printable key, ordering stream) of a wsp payload; the
    offsets and epochs in ``tree`` become relative when ``relative``."""
    fields = tree["payload"]
    if isinstance(payload, Response):
        return ("Response", payload.id), None, f"id={payload.id}", ""
    if isinstance(payload, Deliver):
        rank = numbering.rank(payload.topic, payload.epoch)
        offset = numbering.relative(payload.topic, payload.epoch, payload.offset)
        if relative:
            fields["epoch"], fields["offset"] = rank, offset
        label = f"topic={payload.topic} +{offset}" + (f" epoch#{rank}" if rank else "")
        return ("Deliver", payload.topic, rank, offset), None, label, f"Deliver:{payload.topic}"
    if isinstance(payload, Subscribed | ContinuityLost):
        rank = numbering.rank(payload.topic, payload.epoch)
        if relative:
            fields["epoch"] = rank
        names = (
            ("next_offset",)
            if isinstance(payload, Subscribed)
            else ("requested_offset", "first_available")
        )
        for name in names:
            offset = numbering.relative(payload.topic, payload.epoch, getattr(payload, name))
            if relative:
                fields[name] = offset
        name = type(payload).__name__
        return (name, payload.topic), None, f"topic={payload.topic}", ""
    if isinstance(payload, Challenge | HandshakeResponse):
        return (type(payload).__name__,), None, None, ""
    if isinstance(payload, Error):
        return (
            ("Error", payload.code, payload.ref_sequence),
            ("Error", payload.code),
            f"code={payload.code} ref={payload.ref_sequence}",
            "",
        )
    return None, None, None, ""


def _items(outcome: ConnOutcome, relative: bool, engine: Counter[str]) -> list[_Item]:
    numbering = _Numbering(_flat(m.wsp for m in outcome.received if m.wsp is not None))
    items: list[_Item] = []

    def add(index: int, item: int | None, t: float, msg: Message) -> None:
        if isinstance(msg.payload, Batch):
            for n, inner in enumerate(msg.payload.messages):
                add(index, n if item is None else item, t, inner)
            return
        name = msg.type_name
        if name in ENGINE_TYPES and outcome.engine:
            engine[name] += 1
            return
        tree = _wsp_tree(msg)
        key, alt, label, stream = _keyed(msg.payload, tree, numbering, relative)
        items.append(
            _Item(
                MessageRef(index, item, t, name, label),
                "binary",
                tree,
                key,
                alt,
                stream,
                isinstance(msg.payload, Sealed),
            )
        )

    for index, message in enumerate(outcome.received):
        if message.opcode in ("ping", "pong"):
            continue
        if message.wsp is not None:
            add(index, None, message.t, message.wsp)
            continue
        items.append(
            _Item(
                MessageRef(index, None, message.t, message.opcode),
                message.opcode,
                normal_form(message),
                None,
                None,
                "",
                False,
            )
        )
    return items


#: longest unkeyed run aligned by content; longer ones are paired by position only
ALIGN_LIMIT = 4096


def _aligned(recorded: list[_Item], rec: list[int], replayed: list[_Item],
             rep: list[int]) -> list[tuple[int, int]]:
    """Pairs of unkeyed messages of one kind: equal runs aligned by content (so a lost
    or an added message is missing or extra, not a shift that changes every message
    after it), the rest paired by position within each changed stretch."""
    if len(rec) > ALIGN_LIMIT or len(rep) > ALIGN_LIMIT:
        return list(zip(rec, rep, strict=False))

    def prints(items: list[_Item], indices: list[int]) -> list[str]:
        return [json.dumps(items[n].tree, sort_keys=True, default=str) for n in indices]

    matcher = difflib.SequenceMatcher(None, prints(recorded, rec), prints(replayed, rep),
                                      autojunk=False)
    out: list[tuple[int, int]] = []
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag in ("equal", "replace"):
            out.extend(zip(rec[a0:a1], rep[b0:b1], strict=False))
    return out


def _match(recorded: list[_Item], replayed: list[_Item]) -> list[tuple[int, int]]:
    """Matched (recorded index, replayed index) pairs of the item lists."""
    pairs: list[tuple[int, int]] = []
    used_rec: set[int] = set()
    used_rep: set[int] = set()
    for attr in ("key", "alt_key"):
        wanted: dict[Any, list[int]] = defaultdict(list)
        for j, item in enumerate(replayed):
            key = getattr(item, attr)
            if key is not None and j not in used_rep:
                wanted[key].append(j)
        taken: Counter[Any] = Counter()
        for i, item in enumerate(recorded):
            key = getattr(item, attr)
            if key is None or i in used_rec:
                continue
            candidates = wanted.get(key, ())
            if taken[key] < len(candidates):
                j = candidates[taken[key]]
                taken[key] += 1
                pairs.append((i, j))
                used_rec.add(i)
                used_rep.add(j)
    by_group_rep: dict[tuple[str, str], list[int]] = defaultdict(list)
    for j, item in enumerate(replayed):
        if item.key is None:
            by_group_rep[(item.opcode, item.type)].append(j)
    by_group_rec: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, item in enumerate(recorded):
        if item.key is None:
            by_group_rec[(item.opcode, item.type)].append(i)
    for group, rec_indices in by_group_rec.items():
        rep_indices = by_group_rep.get(group, [])
        for i, j in _aligned(recorded, rec_indices, replayed, rep_indices):
            pairs.append((i, j))
            used_rec.add(i)
            used_rep.add(j)
    # An encrypted message (no key to read it, so no key to match it by) takes the
    # next unmatched message of its type on the other side, in order.
    for sealed_side, other_side, used_sealed, used_other, flip in (
        (recorded, replayed, used_rec, used_rep, False),
        (replayed, recorded, used_rep, used_rec, True),
    ):
        free: dict[str, deque[int]] = defaultdict(deque)
        for n, item in enumerate(other_side):
            if n not in used_other:
                free[item.type].append(n)
        for n, item in enumerate(sealed_side):
            if item.sealed and n not in used_sealed and free.get(item.type):
                m = free[item.type].popleft()
                used_sealed.add(n)
                used_other.add(m)
                pairs.append((m, n) if flip else (n, m))
    pairs.sort()
    return pairs


def _longest_increasing(values: Sequence[int]) -> set[int]:
    """Positions of one longest strictly increasing subsequence of ``values``."""
    tails: list[int] = []  # values
    tail_pos: list[int] = []  # positions of those values
    previous = [-1] * len(values)
    for pos, value in enumerate(values):
        k = bisect.bisect_left(tails, value)
        if k == len(tails):
            tails.append(value)
            tail_pos.append(pos)
        else:
            tails[k] = value
            tail_pos[k] = pos
        previous[pos] = tail_pos[k - 1] if k else -1
    keep: set[int] = set()
    pos = tail_pos[-1] if tail_pos else -1
    while pos >= 0:
        keep.add(pos)
        pos = previous[pos]
    return keep


# ---------------------------------------------------------------------- comparing


#: What an ignored list item is compared as (so that the indices after it stay put).
IGNORED = "<ignored>"

_State = tuple[tuple[str, ...], int]  # a rule's segments and how many of them matched


def _closure(states: Iterable[_State]) -> tuple[list[_State], bool]:
    """The states with each ``**`` also skipped; True when one of them is complete."""
    out: list[_State] = []
    done = False
    for segs, i in states:
        while True:
            if i == len(segs):
                done = True
                break
            out.append((segs, i))
            if segs[i] != "**":
                break
            i += 1
    return out, done


def _advance(states: list[_State], key: str) -> tuple[list[_State], bool]:
    moved: list[_State] = []
    for segs, i in states:
        seg = segs[i]
        if seg == "**":
            moved.append((segs, i))
        elif seg == "*" or seg == key:
            moved.append((segs, i + 1))
    return _closure(moved)


_END: dict[str, Any] = {}  # a trie leaf: everything from here on is ignored


def _trie(rules: Sequence[IgnoreRule]) -> dict[str, Any] | None:
    """The rules as a trie of path segments, or None when one has a wildcard."""
    root: dict[str, Any] = {}
    for rule in rules:
        segs = rule.segments
        if "*" in segs or "**" in segs:
            return None
        node = root
        for seg in segs[:-1]:
            node = node.setdefault(seg, {})
            if node is _END:
                break
        else:
            node[segs[-1]] = _END
    return root


def _prune_trie(tree: Any, node: dict[str, Any]) -> Any:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            child = node.get(key)
            if child is None:
                out[key] = value
            elif child is not _END:
                out[key] = _prune_trie(value, child)
        return out
    if isinstance(tree, list):
        kept = []
        for n, value in enumerate(tree):
            child = node.get(str(n))
            if child is None:
                kept.append(value)
            else:
                kept.append(IGNORED if child is _END else _prune_trie(value, child))
        return kept
    return tree


class _Pruner:
    """Prunes trees by a set of rules: a trie walk when no rule has a wildcard."""

    def __init__(self, rules: Sequence[IgnoreRule]) -> None:
        self.rules = rules
        self.trie = _trie(rules)

    def __call__(self, tree: Any) -> Any:
        if not self.rules:
            return tree
        if self.trie is not None:
            return _prune_trie(tree, self.trie)
        return _prune(tree, self.rules)


def _prune(tree: Any, rules: Sequence[IgnoreRule]) -> Any:
    """``tree`` without the fields the rules match (list items become :data:`IGNORED`)."""
    states, done = _closure((rule.segments, 0) for rule in rules)
    return IGNORED if done else _prune_states(tree, states)


def _prune_states(tree: Any, states: list[_State]) -> Any:
    if not states:
        return tree  # no rule reaches below here
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            below, done = _advance(states, key)
            if not done:
                out[key] = _prune_states(value, below)
        return out
    if isinstance(tree, list):
        kept = []
        for n, value in enumerate(tree):
            below, done = _advance(states, str(n))
            kept.append(IGNORED if done else _prune_states(value, below))
        return kept
    return tree


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values: ``true`` is not ``1``, ``1`` is ``1.0``, hex is not text."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return isinstance(a, _Bytes) is isinstance(b, _Bytes) and str(a) == str(b)
    return type(a) is type(b) and bool(a == b)


def _differences(a: Any, b: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[tuple[str | int, ...]] = []
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append((*path, key))
            else:
                out += _differences(a[key], b[key], (*path, key))
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = []
        for n in range(max(len(a), len(b))):
            if n >= len(a) or n >= len(b):
                out.append((*path, n))
            else:
                out += _differences(a[n], b[n], (*path, n))
        return out
    if isinstance(a, dict | list) or isinstance(b, dict | list) or not _same(a, b):
        return [path]
    return []


def _dotted(path: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in path)


def _pattern(path: Sequence[str | int]) -> str:
    """A path as an ignore rule's path: list indices (and keys a rule cannot spell)
    become ``*``."""
    return ".".join(
        "*"
        if isinstance(p, int) or not p or "." in p or p != p.strip() or "#" in p or p == "**"
        else p
        for p in path
    )


def _get(tree: Any, path: Sequence[str | int]) -> Any:
    for p in path:
        found = (isinstance(tree, dict) and p in tree) or (
            isinstance(tree, list) and isinstance(p, int) and p < len(tree)
        )
        if found:
            tree = tree[p]
        else:
            return None
    return tree


def hexdump(data: bytes, limit: int = _MAX_HEX_BYTES) -> list[str]:
    """``data`` as hexdump lines of 76 characters: offset, 16 bytes in hex, their
    printable ASCII (a diff line with its sign fits 80 columns indented by 2)."""
    lines = []
    for offset in range(0, min(len(data), limit), 16):
        chunk = data[offset : offset + 16]
        hexed = " ".join(f"{b:02x}" for b in chunk[:8])
        if len(chunk) > 8:
            hexed += "  " + " ".join(f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{offset:08x} {hexed:<48} |{text}|")
    if len(data) > limit:
        lines.append(f"... {len(data) - limit} more bytes")
    return lines


def _display(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {key: _display(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [_display(value) for value in tree]
    if isinstance(tree, _Bytes) and len(tree.raw) > _SHORT_BYTES:
        return f"<{len(tree.raw)} bytes: {tree[: 2 * _SHORT_BYTES]}…>"
    return tree


def _pretty(tree: Any) -> list[str]:
    return json.dumps(_display(tree), indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def _diff_lines(a: Any, b: Any, paths: list[tuple[str | int, ...]]) -> tuple[str, list[str]]:
    binary = [p for p in paths if isinstance(_get(a, p), _Bytes) and isinstance(_get(b, p), _Bytes)]
    lines: list[str] = []
    kind = "hex" if len(binary) == len(paths) else "json"
    if kind == "json":
        left, right = _pretty(a), _pretty(b)
        if len(left) + len(right) > 2 * _MAX_JSON_LINES:
            lines += ["--- recorded", "+++ replayed"]
            for path in paths[:50]:
                where = _dotted(path) or "(message)"
                lines.append(f"@@ {where} @@")
                for sign, tree in (("-", a), ("+", b)):
                    value = json.dumps(_display(_get(tree, path)), ensure_ascii=False)
                    lines.append(f"{sign}{value[:2000]}")
        else:
            lines += difflib.unified_diff(left, right, "recorded", "replayed", lineterm="")
    for path in binary:
        where = _dotted(path)
        rec, rep = _get(a, path).raw, _get(b, path).raw
        lines += difflib.unified_diff(
            hexdump(rec), hexdump(rep), f"recorded {where}", f"replayed {where}", lineterm="", n=2
        )
    return kind, lines


@dataclass(slots=True)
class Change:
    """A matched pair that differs: the differing ``paths`` (dotted, after the ignore
    rules), ``kind`` ``"json"`` (a unified diff of the pretty JSON, hex diffs of
    binary fields after it) or ``"hex"`` (only binary differs: hex diffs), and the
    diff lines (at most :data:`MAX_DIFF_LINES`; ``truncated`` when cut)."""

    recorded: MessageRef
    replayed: MessageRef
    paths: list[str]
    kind: str
    diff: list[str]
    truncated: bool = False
    patterns: list[str] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "recorded": self.recorded.to_json(),
            "replayed": self.replayed.to_json(),
            "paths": self.paths,
            "kind": self.kind,
            "diff": self.diff,
            "truncated": self.truncated,
        }


@dataclass(frozen=True, slots=True)
class Reorder:
    """A matched pair out of the recorded order (not in the longest run kept in order)."""

    recorded: MessageRef
    replayed: MessageRef

    def to_json(self) -> dict[str, Any]:
        return {"recorded": self.recorded.to_json(), "replayed": self.replayed.to_json()}


@dataclass(frozen=True, slots=True)
class CloseChange:
    """The server's close frame changed (code None: the server sent none)."""

    recorded_code: int | None
    recorded_reason: str
    replayed_code: int | None
    replayed_reason: str
    fields: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "recorded": {"code": self.recorded_code, "reason": self.recorded_reason},
            "replayed": {"code": self.replayed_code, "reason": self.replayed_reason},
            "fields": list(self.fields),
        }


@dataclass(frozen=True, slots=True)
class HandshakeFailure:
    """The handshake failed in the replay (it did not in the recording)."""

    error: str
    failure: str | None
    status: int | None

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "failure": self.failure, "status": self.status}


@dataclass(frozen=True, slots=True)
class HandshakeChange:
    """A value of the opening handshake changed (``field``: ``subprotocol``)."""

    field: str
    recorded: str | None
    replayed: str | None

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "recorded": self.recorded, "replayed": self.replayed}


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Response latencies of one side: how many, p50 and p99 in seconds (nearest rank;
    None without any)."""

    count: int
    p50: float | None
    p99: float | None

    @classmethod
    def of(cls, seconds: Iterable[float]) -> LatencyStats:
        values = sorted(seconds)
        if not values:
            return cls(0, None, None)

        def rank(p: float) -> float:
            return values[max(0, math.ceil(p / 100 * len(values)) - 1)]

        return cls(len(values), rank(50), rank(99))

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "p50": self.p50, "p99": self.p99}


@dataclass(slots=True)
class ConnDiff:
    """The differences of one connection, its counts and its latencies.

    ``counts``: ``recorded``/``replayed`` (messages received), ``compared_recorded``/
    ``compared_replayed`` (messages compared: Batch items count one each, engine
    traffic and whole-type ignores left out), ``matched``, ``engine_recorded``/
    ``engine_replayed`` (engine traffic, counted only), ``not_compared`` (messages
    of types ignored whole), ``hidden`` (differences that only ``--ignore`` or
    learned rules hid), ``unchecked`` (encrypted pairs: payloads not compared).
    """

    conn: int
    missing: list[MessageRef] = field(default_factory=list)
    extra: list[MessageRef] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    reordered: list[Reorder] = field(default_factory=list)
    close: CloseChange | None = None
    handshake_failed: HandshakeFailure | None = None
    handshake_changed: list[HandshakeChange] = field(default_factory=list)
    latency_recorded: LatencyStats = field(default_factory=lambda: LatencyStats(0, None, None))
    latency_replayed: LatencyStats = field(default_factory=lambda: LatencyStats(0, None, None))
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def differences(self) -> int:
        """Differences beyond noise (each message, the close and the handshake count one)."""
        return (
            len(self.missing)
            + len(self.extra)
            + len(self.changed)
            + len(self.reordered)
            + (self.close is not None)
            + (self.handshake_failed is not None)
            + len(self.handshake_changed)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "conn": self.conn,
            "differences": self.differences,
            "counts": dict(self.counts),
            "handshake_failed": (
                self.handshake_failed.to_json() if self.handshake_failed else None
            ),
            "handshake_changed": [c.to_json() for c in self.handshake_changed],
            "missing": [m.to_json() for m in self.missing],
            "extra": [m.to_json() for m in self.extra],
            "changed": [c.to_json() for c in self.changed],
            "reordered": [r.to_json() for r in self.reordered],
            "close": self.close.to_json() if self.close else None,
            "latency": {
                "recorded": self.latency_recorded.to_json(),
                "replayed": self.latency_replayed.to_json(),
            },
            "skipped": list(self.skipped),
        }


def _pruners(rules: IgnoreRules, type_name: str) -> tuple[_Pruner, _Pruner]:
    """The pruners of the default rules and of the others, for one message type."""
    cached = rules.cache.get(("pruners", type_name))
    if cached is None:
        fields = rules.fields_for(type_name)
        cached = rules.cache[("pruners", type_name)] = (
            _Pruner([r for r in fields if r.origin == "default"]),
            _Pruner([r for r in fields if r.origin != "default"]),
        )
    return cached  # type: ignore[return-value]


def _compare(a: _Item, b: _Item, rules: IgnoreRules) -> Change | bool:
    """The change of a matched pair; True when equal, False when only --ignore or
    learned rules make it equal."""
    ta, tb = a.tree, b.tree
    if a.sealed or b.sealed:  # no key to read one of them: the header only
        ta = {k: v for k, v in ta.items() if k != "payload"}
        tb = {k: v for k, v in tb.items() if k != "payload"}
    default_pruner, user_pruner = _pruners(rules, a.type)
    ta, tb = default_pruner(ta), default_pruner(tb)
    if not _differences(ta, tb):
        return True
    ta, tb = user_pruner(ta), user_pruner(tb)
    paths = _differences(ta, tb)
    if not paths:
        return False
    kind, lines = _diff_lines(ta, tb, paths)
    patterns = list(dict.fromkeys(_pattern(p) for p in paths))
    return Change(
        a.ref,
        b.ref,
        [_dotted(p) for p in paths],
        kind,
        lines[:MAX_DIFF_LINES],
        len(lines) > MAX_DIFF_LINES,
        patterns,
    )


def _rules_of(rules: IgnoreRules | Iterable[str] | None, defaults: bool) -> IgnoreRules:
    if isinstance(rules, IgnoreRules):
        return rules
    return IgnoreRules.of(rules or (), defaults=defaults)


def diff_connection(
    recorded: ConnOutcome,
    replayed: ConnOutcome,
    rules: IgnoreRules | Iterable[str] | None = None,
    *,
    defaults: bool = True,
) -> ConnDiff:
    """Compare what a connection answered in the replay with the recording.

    ``rules``: an :class:`IgnoreRules`, or ``--ignore`` rule strings (with the
    defaults unless ``defaults`` is false). A :class:`ConfigError` names a bad rule.
    """
    rules = _rules_of(rules, defaults)
    diff = ConnDiff(replayed.conn, skipped=list(replayed.skipped))
    diff.latency_recorded = LatencyStats.of(lat.seconds for lat in recorded.latencies)
    diff.latency_replayed = LatencyStats.of(lat.seconds for lat in replayed.latencies)
    engine_rec: Counter[str] = Counter()
    engine_rep: Counter[str] = Counter()
    rec_items = _items(recorded, rules.defaults, engine_rec)
    rep_items = _items(replayed, rules.defaults, engine_rep)
    counts = diff.counts = {
        "recorded": len(recorded.received),
        "replayed": len(replayed.received),
        "compared_recorded": 0,
        "compared_replayed": 0,
        "matched": 0,
        "engine_recorded": 0,
        "engine_replayed": 0,
        "not_compared": 0,
        "hidden": 0,
        "unchecked": 0,
    }
    if replayed.handshake_error is not None and recorded.handshake_error is None:
        diff.handshake_failed = HandshakeFailure(
            replayed.handshake_error, replayed.failure, replayed.status
        )
        counts["engine_recorded"] = sum(engine_rec.values())
        counts["compared_recorded"] = len(rec_items)
        return diff
    if (
        recorded.subprotocol is not None
        and replayed.subprotocol != recorded.subprotocol
        and not rules.connection("handshake.subprotocol")
    ):
        diff.handshake_changed.append(
            HandshakeChange("subprotocol", recorded.subprotocol, replayed.subprotocol)
        )
    # The session opening the engine played itself: compared when both sides hold it.
    if recorded.engine or replayed.engine:
        for name in _OPENING_TYPES:
            in_rec = any(item.type == name for item in rec_items)
            in_rep = any(item.type == name for item in rep_items)
            if in_rec != in_rep:
                engine_rec[name] += sum(item.type == name for item in rec_items)
                engine_rep[name] += sum(item.type == name for item in rep_items)
                rec_items = [item for item in rec_items if item.type != name]
                rep_items = [item for item in rep_items if item.type != name]
    whole = [item for item in rec_items + rep_items if rules.whole(item.type)]
    if whole:
        counts["not_compared"] = len(whole)
        rec_items = [item for item in rec_items if not rules.whole(item.type)]
        rep_items = [item for item in rep_items if not rules.whole(item.type)]
    counts["engine_recorded"] = sum(engine_rec.values())
    counts["engine_replayed"] = sum(engine_rep.values())
    counts["compared_recorded"] = len(rec_items)
    counts["compared_replayed"] = len(rep_items)

    pairs = _match(rec_items, rep_items)
    counts["matched"] = len(pairs)
    matched_rec = {i for i, _ in pairs}
    matched_rep = {j for _, j in pairs}
    for items, matched, out in (
        (rec_items, matched_rec, diff.missing),
        (rep_items, matched_rep, diff.extra),
    ):
        for n, item in enumerate(items):
            if n in matched:
                continue
            if rules.count_varies(item.type):
                counts["hidden"] += 1
            else:
                out.append(item.ref)
    for i, j in pairs:
        a, b = rec_items[i], rep_items[j]
        if a.sealed or b.sealed:
            counts["unchecked"] += 1
        result = _compare(a, b, rules)
        if isinstance(result, Change):
            diff.changed.append(result)
        elif result is False:
            counts["hidden"] += 1
    # Reordered: per stream (a topic's deliveries; the other messages), the pairs
    # outside one longest run that kept the recorded order.
    streams: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, j in pairs:
        streams[rec_items[i].stream].append((i, j))
    for stream_pairs in streams.values():
        keep = _longest_increasing([j for _, j in stream_pairs])
        for n, (i, j) in enumerate(stream_pairs):
            if n in keep:
                continue
            if rules.order_varies(rec_items[i].type):
                counts["hidden"] += 1
            else:
                diff.reordered.append(Reorder(rec_items[i].ref, rep_items[j].ref))
    diff.reordered.sort(key=lambda r: (r.recorded.index, r.recorded.item or 0))
    fields = tuple(
        name
        for name, a, b in (
            ("code", recorded.close_code, replayed.close_code),
            ("reason", recorded.close_reason, replayed.close_reason),
        )
        if a != b
    )
    if fields:
        shown = tuple(f for f in fields if not rules.connection(f"close.{f}"))
        if shown:
            diff.close = CloseChange(
                recorded.close_code,
                recorded.close_reason,
                replayed.close_code,
                replayed.close_reason,
                shown,
            )
        else:
            counts["hidden"] += 1
    return diff


# ------------------------------------------------------------------------ report


@dataclass(slots=True)
class ReplayReport:
    """Every connection's :class:`ConnDiff` and the rules they were compared under."""

    connections: list[ConnDiff]
    rules: IgnoreRules = field(default_factory=IgnoreRules.of)

    @property
    def differences(self) -> int:
        """Differences beyond noise, over all connections."""
        return sum(conn.differences for conn in self.connections)

    @property
    def failure(self) -> str | None:
        """``"refused"`` when the target refused the credentials of a connection,
        ``"unreachable"`` when no connection reached it at all, else None."""
        failed = [c.handshake_failed for c in self.connections]
        if any(f is not None and f.failure == "refused" for f in failed):
            return "refused"
        if failed and all(f is not None and f.failure == "unreachable" for f in failed):
            return "unreachable"
        return None

    def exit_status(self) -> int:
        """5 credentials refused, 4 target unreachable, 1 differences, 0 none beyond noise."""
        failure = self.failure
        if failure == "refused":
            return 5
        if failure == "unreachable":
            return 4
        return 1 if self.differences else 0

    def totals(self) -> dict[str, int]:
        """The sums over the connections (the ``totals`` object of :meth:`to_json`)."""
        out: Counter[str] = Counter()
        for conn in self.connections:
            out.update(conn.counts)
            out["missing"] += len(conn.missing)
            out["extra"] += len(conn.extra)
            out["changed"] += len(conn.changed)
            out["reordered"] += len(conn.reordered)
            out["close_changed"] += conn.close is not None
            out["handshake_failed"] += conn.handshake_failed is not None
            out["handshake_changed"] += len(conn.handshake_changed)
        keys = (
            "recorded",
            "replayed",
            "compared_recorded",
            "compared_replayed",
            "matched",
            "missing",
            "extra",
            "changed",
            "reordered",
            "close_changed",
            "handshake_failed",
            "handshake_changed",
            "engine_recorded",
            "engine_replayed",
            "not_compared",
            "hidden",
            "unchecked",
        )
        return {
            "connections": len(self.connections),
            "differences": self.differences,
            **{key: out[key] for key in keys},
        }

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document (docs/replay.md, "The JSON report")."""
        return {
            "differences": self.differences,
            "exit_status": self.exit_status(),
            "failure": self.failure,
            "totals": self.totals(),
            "ignored": self.rules.texts("ignore"),
            "learned": self.rules.texts("learned"),
            "default_ignores": list(DEFAULT_IGNORES) if self.rules.defaults else [],
            "relative": list(RELATIVE_FIELDS) if self.rules.defaults else [],
            "connections": [conn.to_json() for conn in self.connections],
        }


def build_report(
    pairs: Iterable[tuple[ConnOutcome, ConnOutcome]],
    *,
    ignore: Iterable[str] = (),
    learned: Iterable[str] = (),
    defaults: bool = True,
) -> ReplayReport:
    """The report of (recorded, replayed) outcome pairs under the ``--ignore`` rules,
    the learned ones and (unless ``defaults`` is false) the defaults."""
    rules = IgnoreRules.of(ignore, learned, defaults=defaults)
    return ReplayReport([diff_connection(rec, rep, rules) for rec, rep in pairs], rules)


def learn_noise(
    runs: Sequence[ConnOutcome], *, ignore: Iterable[str] = (), defaults: bool = True
) -> set[str]:
    """Ignore rules for what differs between runs of one connection against the same
    target: each later run is compared with the first; a differing field gives a
    type-scoped rule (``Response:payload.data.ts``, list indices as ``*``), a
    missing or extra message ``TYPE:count``, a reordered one ``TYPE:order``, a
    changed close ``close.code``/``close.reason``. Runs whose handshake failed
    teach nothing."""
    rules = IgnoreRules.of(ignore, defaults=defaults)
    learned: set[str] = set()
    for run in runs[1:]:
        diff = diff_connection(runs[0], run, rules)
        if diff.handshake_failed is not None or runs[0].handshake_error is not None:
            continue
        for change in diff.changed:
            learned.update(f"{change.recorded.type}:{pattern}" for pattern in change.patterns)
        learned.update(f"{ref.type}:count" for ref in diff.missing + diff.extra)
        learned.update(f"{r.recorded.type}:order" for r in diff.reordered)
        if diff.close is not None:
            learned.update(f"close.{name}" for name in diff.close.fields)
        learned.update(f"handshake.{c.field}" for c in diff.handshake_changed)
    return learned
