"""Payload data sets for the compression cases (areas 12 and 13).

Autobahn|Testsuite ships five files (a JSON document, a bitmap, a German
novel, an HTML page and a PDF). wsp generates five synthetic data sets of the
same kinds and similar sizes instead, deterministically from ``--seed``, so
that they compress like the real thing: structured text with repeated keys,
an image with smooth regions and noise, natural-language text, markup, and a
mix of text and already-compressed binary streams.
"""

from __future__ import annotations

__all__ = ["DATASETS", "Dataset", "dataset_bytes"]

import functools
import itertools
import json
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    title: str
    binary: bool
    size: int


#: The data sets of cases 12.1 to 12.5, in that order (13.x uses ``json``).
DATASETS: tuple[Dataset, ...] = (
    Dataset("json", "Large JSON document", False, 194_056),
    Dataset("bitmap", "Bitmap picture, 512x512 grey levels", True, 263_222),
    Dataset("prose", "Human-readable prose (sent as binary)", True, 222_218),
    Dataset("html", "Large HTML page", False, 630_784),
    Dataset("pdf", "A larger PDF-like document", True, 1_063_578),
)

_SYLLABLES = (
    "ge",
    "hen",
    "ist",
    "der",
    "die",
    "das",
    "und",
    "ein",
    "mit",
    "sch",
    "wer",
    "den",
    "ich",
    "nicht",
    "auf",
    "be",
    "so",
    "zu",
    "ver",
    "ter",
    "lich",
    "keit",
    "ung",
    "an",
)


class _Words:
    """A Zipf-weighted vocabulary drawn once per data set."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.vocabulary = [
            "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(900)
        ]
        self.cum_weights = list(
            itertools.accumulate(1.0 / (rank + 1) for rank in range(len(self.vocabulary)))
        )

    def __call__(self, count: int) -> list[str]:
        return self.rng.choices(self.vocabulary, cum_weights=self.cum_weights, k=count)


def _prose(rng: random.Random, size: int, words: _Words | None = None) -> bytes:
    words = words or _Words(rng)
    lines: list[str] = []
    total = 0
    while total < size:
        line = " ".join(words(rng.randint(4, 14))).capitalize() + rng.choice(
            (".", ",", "!", "?", ";")
        )
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines).encode()[:size]


def _json(rng: random.Random, size: int) -> bytes:
    words = _Words(rng)
    items = []
    total = 0
    index = 0
    while total < size:
        item = {
            "id": index,
            "name": " ".join(words(2)).title(),
            "active": rng.random() < 0.5,
            "score": round(rng.uniform(0, 1000), 3),
            "tags": words(rng.randint(0, 4)),
            "city": rng.choice(("Köln", "Zürich", "Malmö", "São Paulo", "Kraków", "Åre")),
        }
        text = json.dumps(item)  # ASCII: any slice is valid UTF-8
        items.append(text)
        total += len(text.encode()) + 2
        index += 1
    data = ("[\n" + ",\n".join(items) + "\n]").encode()
    return _cut_utf8(data, size)


def _html(rng: random.Random, size: int) -> bytes:
    words = _Words(rng)
    parts = ["<!DOCTYPE html>\n<html><head><title>Report</title></head><body>\n"]
    total = len(parts[0])
    while total < size:
        text = " ".join(words(rng.randint(5, 30)))
        cls = rng.choice(("row", "cell", "note", "item"))
        chunk = (
            f'<div class="{cls}"><p>{text}</p><a href="/p/{rng.randint(1, 9999)}">more</a></div>\n'
        )
        parts.append(chunk)
        total += len(chunk)
    return _cut_utf8("".join(parts).encode(), size)


def _bitmap(rng: random.Random, size: int) -> bytes:
    width = 512
    header = b"BM" + size.to_bytes(4, "little") + bytes(4) + (1078).to_bytes(4, "little")
    header += bytes(1078 - len(header))
    noise = rng.randbytes(width * width)
    rows = []
    for y in range(width):
        row = bytes(
            (
                (x * 3 + y * 5) // 8
                + (64 if (x // 64 + y // 64) % 2 else 0)
                + (noise[y * width + x] & 0x0F)
            )
            & 0xFF
            for x in range(width)
        )
        rows.append(row)
    return (header + b"".join(rows))[:size]


def _pdf(rng: random.Random, size: int) -> bytes:
    words = _Words(rng)
    parts = [b"%PDF-1.4\n"]
    total = len(parts[0])
    obj = 1
    while total < size:
        if rng.random() < 0.5:
            body = _prose(rng, rng.randint(500, 4000), words)
        else:
            body = rng.randbytes(rng.randint(500, 8000))  # an already-compressed stream
        chunk = (
            f"{obj} 0 obj\n<< /Length {len(body)} >>\nstream\n".encode()
            + body
            + b"\nendstream\nendobj\n"
        )
        parts.append(chunk)
        total += len(chunk)
        obj += 1
    return b"".join(parts)[:size]


def _cut_utf8(data: bytes, size: int) -> bytes:
    """Cut to at most ``size`` bytes on a code point boundary, pad with spaces."""
    cut = data[:size].decode("utf-8", "ignore").encode()
    return cut + b" " * (size - len(cut))


_MAKERS = {"json": _json, "bitmap": _bitmap, "prose": _prose, "html": _html, "pdf": _pdf}


@functools.lru_cache(maxsize=8)
def dataset_bytes(name: str, seed: int) -> bytes:
    """The bytes of data set ``name`` for ``seed`` (cached; deterministic)."""
    spec = next(d for d in DATASETS if d.name == name)
    rng = random.Random(f"{name}:{seed}")
    return _MAKERS[name](rng, spec.size)
