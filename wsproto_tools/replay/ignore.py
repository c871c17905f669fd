"""Ignore rules of the replay diff: what is not compared (docs/replay.md, "Diff").

A rule is one string:

* ``PATH`` -- a field path into a message's normal form (:mod:`.diff`), in every
  message: ``header.timestamp``, ``payload.ts``, ``payload.items.*.price``.
  Segments are separated by dots; ``*`` stands for any one key or list index,
  ``**`` for any number of them (``**.ts``: a ``ts`` at any depth). A rule
  ignores the field and everything under it.
* ``TYPE:PATH`` -- the same, in messages of one type only: a wsp type name
  (``Deliver:payload.data.ts``, exact case) or, for messages that are not wsp,
  their opcode (``text:payload.ts``, ``binary:payload``).
* ``TYPE`` -- messages of that type are not compared at all (only counted, like
  the engine's own traffic).
* ``[TYPE:]count`` -- the number of such messages varies: missing and extra ones
  are not differences (the matched ones are still compared);
  ``[TYPE:]order`` -- their order varies: reordered ones are not differences.
* ``close``, ``close.code``, ``close.reason`` -- the server's close frame;
  ``handshake.subprotocol`` -- the subprotocol the server selected.

:data:`DEFAULT_IGNORES` are the values the replayer rewrites (they can never be
equal); :data:`RELATIVE_FIELDS` are compared relative to the first offset of
their topic (and epochs by their rank), since a fresh server numbers them anew.
``defaults=False`` turns both off.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_IGNORES",
    "HEADER_FIELDS",
    "RELATIVE_FIELDS",
    "IgnoreRule",
    "IgnoreRules",
    "parse_rule",
    "parse_rules",
    "read_ignore_file",
]

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wsproto_tools.codec.schema import TYPES, Batch, Flags, PayloadKind, payload_fields
from wsproto_tools.exceptions import ConfigError

#: The header fields of a wsp message's normal form (``flags`` is an object of booleans).
HEADER_FIELDS = ("sequence", "session_id", "timestamp", "flags")
_FLAG_NAMES = tuple(str(flag.name).lower() for flag in Flags if flag)

#: Values the replayer rewrites (docs/replay.md, "Rewriting"): ignored unless
#: ``defaults=False``. The engine's own traffic (Acknowledge, Heartbeat,
#: WindowUpdate) is never compared, only counted.
DEFAULT_IGNORES: tuple[str, ...] = (
    "header.sequence",
    "header.session_id",
    "header.timestamp",
    "header.flags.encrypted",
    "header.flags.ack_requested",
    "Challenge:payload.nonce",
    "HandshakeResponse:payload.session_id",
    "HandshakeResponse:payload.resume_token",
    "HandshakeResponse:payload.server_nonce",
    "HandshakeResponse:payload.server_proof",
)

#: Fields compared relative to their topic (unless ``defaults=False``): offsets
#: minus the first offset seen on the topic (and epoch) in the same connection,
#: epochs as their rank among the topic's epochs (0 for the first).
RELATIVE_FIELDS: tuple[str, ...] = (
    "Deliver:payload.offset",
    "Deliver:payload.epoch",
    "Subscribed:payload.next_offset",
    "Subscribed:payload.epoch",
    "ContinuityLost:payload.requested_offset",
    "ContinuityLost:payload.first_available",
    "ContinuityLost:payload.epoch",
)

_NON_WSP = ("text", "binary", "close")
_TYPE_NAMES = frozenset(spec.name for spec in TYPES.values()) | {"Unknown"}
_ROOTS = ("opcode", "header", "type", "payload", "*", "**")
_PSEUDO = ("count", "order")


@dataclass(frozen=True, slots=True)
class IgnoreRule:
    """One parsed rule: ``scope`` (a type name or opcode, None for all), the path
    segments (empty for a whole-type rule), and where it came from (``"default"``,
    ``"ignore"`` or ``"learned"``)."""

    text: str
    scope: str | None
    segments: tuple[str, ...]
    origin: str = "ignore"

    @property
    def kind(self) -> str:
        """``"field"``, ``"type"`` (whole messages), ``"count"``, ``"order"``,
        ``"close"`` or ``"handshake"``."""
        if not self.segments:
            return "type"
        first = self.segments[0]
        if first in _PSEUDO or first in ("close", "handshake"):
            return first
        return "field"

    def applies_to(self, type_name: str) -> bool:
        return self.scope is None or self.scope == type_name

    def matches(self, path: Sequence[str | int]) -> bool:
        """True when ``path`` is the rule's field or lies under it."""
        return _match(self.segments, 0, tuple(str(p) for p in path), 0, prefix=True)


def _match(segs: tuple[str, ...], i: int, path: tuple[str, ...], j: int, *, prefix: bool) -> bool:
    while True:
        if i == len(segs):
            return prefix or j == len(path)
        seg = segs[i]
        if seg == "**":
            return any(_match(segs, i + 1, path, k, prefix=prefix) for k in range(j, len(path) + 1))
        if j == len(path) or (seg != "*" and seg != path[j]):
            return False
        i += 1
        j += 1


def _bad(text: str, problem: str) -> ConfigError:
    return ConfigError(f"ignore rule {text!r}: {problem}")


def _check_scoped_payload(text: str, scope: str, segments: tuple[str, ...]) -> None:
    spec = next((s for s in TYPES.values() if s.name == scope), None)
    if spec is None or len(segments) < 2 or segments[1] in ("*", "**"):
        return
    if spec.kind is PayloadKind.MSGPACK:
        names = [name for name, _ in payload_fields(spec.cls)]
    elif spec.kind is PayloadKind.TEXT:
        names = ["text"]
    else:
        names = ["data"]
    if segments[1] not in names:
        raise _bad(
            text,
            f"{scope} has no field {segments[1]!r} (payload fields: {', '.join(names) or 'none'})",
        )


def parse_rule(text: str, origin: str = "ignore") -> IgnoreRule:
    """Parse one rule; :class:`ConfigError` names the rule and what is wrong with it."""
    rule = text.strip()
    if not rule:
        raise _bad(text, "empty")
    scope: str | None = None
    path = rule
    head, sep, tail = rule.partition(":")
    if sep and "." not in head:
        scope, path = head.strip(), tail.strip()
        if scope not in _TYPE_NAMES and scope not in _NON_WSP:
            raise _bad(
                text,
                f"{scope!r} is no message type (a wsp type such as Response, "
                "Deliver, TextData, or text/binary for other messages)",
            )
        if scope == Batch.__name__:
            raise _bad(text, "a Batch's items are compared as messages of their own types")
        if not path:
            raise _bad(text, "nothing after ':' (write the type alone to ignore its messages)")
    elif rule in _TYPE_NAMES:
        return IgnoreRule(rule, rule, (), origin)
    segments = tuple(path.split("."))
    if any(not seg.strip() or seg != seg.strip() for seg in segments):
        raise _bad(text, "a path is dot-separated names, none empty")
    first = segments[0]
    if first in _PSEUDO:
        if len(segments) > 1:
            raise _bad(text, f"{first!r} stands alone ([TYPE:]{first})")
    elif first in ("close", "handshake"):
        allowed = ("code", "reason") if first == "close" else ("subprotocol",)
        if scope is not None:
            raise _bad(text, f"{first} is the connection's, not a message type's")
        if len(segments) > 2 or (len(segments) == 2 and segments[1] not in allowed):
            raise _bad(text, f"{first} has {', '.join(first + '.' + a for a in allowed)}")
        if first == "handshake" and len(segments) == 1:
            raise _bad(text, "write handshake.subprotocol")
    elif first not in _ROOTS:
        raise _bad(
            text,
            "a path starts with header, payload, type or opcode (payload.ts, "
            "header.timestamp), or use a message type (Deliver:payload.ts)",
        )
    elif first == "header" and len(segments) > 1:
        second = segments[1]
        if second not in (*HEADER_FIELDS, "*", "**"):
            raise _bad(text, f"the header has {', '.join(HEADER_FIELDS)}, not {second!r}")
        if second == "flags" and len(segments) > 2 and segments[2] not in (*_FLAG_NAMES, "*"):
            raise _bad(text, f"header.flags has {', '.join(_FLAG_NAMES)}")
    elif first == "payload" and scope is not None:
        _check_scoped_payload(text, scope, segments)
    return IgnoreRule(rule, scope, segments, origin)


def parse_rules(rules: Iterable[str], origin: str = "ignore") -> list[IgnoreRule]:
    """Parse rules (duplicates kept once, in order)."""
    out: list[IgnoreRule] = []
    seen: set[str] = set()
    for text in rules:
        rule = parse_rule(text, origin)
        if rule.text not in seen:
            seen.add(rule.text)
            out.append(rule)
    return out


def read_ignore_file(path: str | Path) -> list[str]:
    """The rules of an ignore file: one a line; ``#`` starts a comment; blank lines are
    skipped. Each rule is checked: :class:`ConfigError` names the file, line and rule."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"ignore file {str(path)!r}: cannot read it ({error})") from None
    rules: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        rule = line.split("#", 1)[0].strip()
        if not rule:
            continue
        try:
            parse_rule(rule)
        except ConfigError as error:
            raise ConfigError(f"{path} line {lineno}: {error}") from None
        rules.append(rule)
    return rules


@dataclass(slots=True)
class IgnoreRules:
    """The rules in force: the defaults (unless ``defaults`` is false), ``--ignore``
    rules and learned ones. Build it with :meth:`of`."""

    rules: list[IgnoreRule] = field(default_factory=list)
    defaults: bool = True
    #: Memo of what the diff derives from the rules per message type.
    cache: dict[tuple[str, str], object] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(
        cls, ignore: Iterable[str] = (), learned: Iterable[str] = (), *, defaults: bool = True
    ) -> IgnoreRules:
        rules = parse_rules(DEFAULT_IGNORES, "default") if defaults else []
        rules += parse_rules(ignore, "ignore")
        rules += parse_rules(sorted(set(learned)), "learned")
        return cls(rules, defaults)

    def texts(self, origin: str) -> list[str]:
        return [rule.text for rule in self.rules if rule.origin == origin]

    def fields_for(self, type_name: str, *, user_only: bool = False) -> list[IgnoreRule]:
        """The field rules that apply to messages of ``type_name``."""
        return [
            r
            for r in self.rules
            if r.kind == "field"
            and r.applies_to(type_name)
            and not (user_only and r.origin == "default")
        ]

    def _has(self, kind: str, type_name: str) -> bool:
        key = (kind, type_name)
        found = self.cache.get(key)
        if found is None:
            found = self.cache[key] = any(
                r.kind == kind and r.applies_to(type_name) for r in self.rules
            )
        return bool(found)

    def whole(self, type_name: str) -> bool:
        """True when messages of ``type_name`` are not compared at all."""
        return self._has("type", type_name)

    def count_varies(self, type_name: str) -> bool:
        """True when missing or extra messages of ``type_name`` are noise."""
        return self._has("count", type_name)

    def order_varies(self, type_name: str) -> bool:
        """True when reordered messages of ``type_name`` are noise."""
        return self._has("order", type_name)

    def connection(self, name: str) -> bool:
        """True when ``close.code``, ``close.reason`` or ``handshake.subprotocol``
        (``name``) is ignored (``close`` ignores both close fields)."""
        root = name.split(".")[0]
        return any(
            r.kind == root and (len(r.segments) == 1 or ".".join(r.segments) == name)
            for r in self.rules
        )
