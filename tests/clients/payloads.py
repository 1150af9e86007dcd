"""What the real clients send, and how a received list is compared with it.

The Python side owns the messages: it writes them into the job file of the
Node / Chromium script, and compares what the script says arrived with its
own list. The JavaScript side only drives sockjs-client and records.
"""

from __future__ import annotations

from collections import Counter

BIG_SIZE = 64 * 1024


def _big_ascii() -> str:
    """Exactly 64 KiB; every 16-byte block names its own index, so a cut or shift shows where."""
    block_count = BIG_SIZE // 16
    text = "".join(f"{i:07d}|abcdefgh" for i in range(block_count))
    assert len(text.encode("utf-8")) == BIG_SIZE
    return text


def _big_mixed() -> str:
    """At least 64 KiB of UTF-8 made of everything awkward below, numbered per repetition."""
    unit = 'é😀\u2028\u2029"\'\\\x00\x1f\x7f%41%</script><!--{"a":[1]}\ufeff\u200c\uffff'
    parts: list[str] = []
    size = 0
    i = 0
    while size < BIG_SIZE:
        part = f"[{i}]{unit}"
        parts.append(part)
        size += len(part.encode("utf-8"))
        i += 1
    return "".join(parts)


# (name, payload): each is sent once as is, then again inside numbered messages.
CASES: list[tuple[str, str]] = [
    ("plain", "hello"),
    ("emoji", "emoji 😀🎉 family 👩\u200d👩\u200d👧 flag 🇫🇷 check ✓"),
    ("U+2028", "\u2028"),
    ("U+2029", "\u2029"),
    ("line-separators-inside", "a\u2028b\u2029c"),
    ("json-object", '{"a":[1,2]}'),
    ("json-array", '["x"]'),
    ("json-string", '"x"'),
    ("quotes", "double \" single ' back ` mixed \"'\"'"),
    ("backslashes", '\\ \\\\ \\n \\u0041 \\" \\'),
    ("controls", "".join(chr(c) for c in range(0x20))),
    ("controls-embedded", "a\x00b\nc\rd\te\x1bf\x7fg"),
    ("percent", "%"),
    ("percent-41", "%41"),
    ("percent-mixed", "100% %41%42 %%41 %zz %"),
    ("form-lookalike", "d=%41&c=x+y"),
    ("script-close", "</script>"),
    ("html-comment", "<!--"),
    ("html-mixed", "<!--<script>var x = 1;</script>-->"),
    ("server-escaped", "\u200c\u200f\u2060\ufeff\ufff0\uffff"),
    ("big-ascii-64KiB", _big_ascii()),
    ("big-mixed-64KiB", _big_mixed()),
]

# How many leading messages go one at a time (each after the previous echo).
PING_PONG = len(CASES)
# Numbered messages sent back to back after that.
BURST = 60


def echo_messages() -> list[str]:
    """Every case alone, then BURST numbered messages; the last one is unique."""
    messages = [payload for _, payload in CASES]
    small = [(name, payload) for name, payload in CASES if len(payload) < 1024]
    for n in range(BURST - 2):
        name, payload = small[n % len(small)]
        messages.append(f"{n:03d} {name}: {payload}")
        if n == BURST // 2:
            messages.append(f"{n:03d}b big-ascii-64KiB: " + CASES[-2][1])
    messages.append(f"{BURST - 1:03d} last")
    return messages


def broadcast_messages(token: str) -> list[str]:
    """Turns of the broadcast check: alternately sent by each client."""
    return [
        f"{token} 0 hello",
        f'{token} 1 😀 \u2028 "q" \\ </script>',
        f"{token} 2 %41 <!-- \x00\x1f",
        f'{token} 3 {{"a":[1,2]}}',
    ]


def _short(value: str, limit: int = 100) -> str:
    text = repr(value)
    if len(text) > limit:
        text = text[:limit] + f"...' ({len(value)} chars)"
    return text


def describe_mismatch(sent: list[str], received: list[str]) -> str | None:
    """None when received == sent; otherwise what is missing, extra, duplicated or out of order."""
    if received == sent:
        return None
    lines = [f"sent {len(sent)} messages, received {len(received)}"]
    first = next(
        (i for i, (a, b) in enumerate(zip(sent, received, strict=False)) if a != b),
        min(len(sent), len(received)),
    )
    expected = _short(sent[first]) if first < len(sent) else "(nothing more)"
    got = _short(received[first]) if first < len(received) else "(nothing more)"
    lines.append(f"first difference at index {first}: sent {expected}, received {got}")
    want, have = Counter(sent), Counter(received)
    missing = [m for m in sent if have[m] < want[m]]
    duplicated = [m for m in want if have[m] > want[m]]
    unexpected = [m for m in have if m not in want]
    if missing:
        index = {m: sent.index(m) for m in missing}
        shown = ", ".join(f"#{index[m]} {_short(m, 60)}" for m in missing[:8])
        lines.append(f"missing {len(missing)}: {shown}")
    if duplicated:
        shown = ", ".join(f"{_short(m, 60)} x{have[m]}" for m in duplicated[:8])
        lines.append(f"duplicated {len(duplicated)}: {shown}")
    if unexpected:
        shown = ", ".join(_short(m, 60) for m in unexpected[:8])
        lines.append(f"never sent but received {len(unexpected)}: {shown}")
    if not (missing or duplicated or unexpected):
        lines.append("the same messages arrived, in a different order")
    return "\n".join(lines)
