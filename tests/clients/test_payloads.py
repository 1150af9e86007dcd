"""The message lists and the comparison the real-client tests rely on (no servers)."""

from __future__ import annotations

from .payloads import BIG_SIZE, CASES, PING_PONG, describe_mismatch, echo_messages


def test_messages_cover_the_required_payloads() -> None:
    messages = echo_messages()
    assert len(set(messages)) == len(messages), "messages must be distinct to count them"
    joined = "".join(messages)
    for needle in ["😀", "\u2028", "\u2029", '{"a":[1,2]}', '["x"]', '"', "'", "\\"]:
        assert needle in joined
    for needle in ["%", "%41", "</script>", "<!--"]:
        assert needle in messages, f"{needle!r} is not sent on its own"
    assert all(chr(c) in joined for c in range(0x20))
    assert any(len(m.encode("utf-8")) == BIG_SIZE for m in messages[:PING_PONG])
    assert sum(len(m.encode("utf-8")) >= BIG_SIZE for m in messages) >= 3
    assert messages[:PING_PONG] == [payload for _, payload in CASES]


def test_describe_mismatch_finds_every_kind_of_difference() -> None:
    sent = ["a", "b", "c", "d"]
    assert describe_mismatch(sent, list(sent)) is None
    lost = describe_mismatch(sent, ["a", "b", "d"])
    assert lost and "missing 1: #2 'c'" in lost
    doubled = describe_mismatch(sent, ["a", "b", "b", "c", "d"])
    assert doubled and "duplicated 1: 'b' x2" in doubled
    swapped = describe_mismatch(sent, ["a", "c", "b", "d"])
    assert swapped and "different order" in swapped
    alien = describe_mismatch(sent, ["a", "b", "c", "d", "e"])
    assert alien and "never sent but received 1: 'e'" in alien
    altered = describe_mismatch(["x" * 5000], ["x" * 4999])
    assert altered and "first difference at index 0" in altered
