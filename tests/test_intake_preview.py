"""The intake's preview op and the transliterate flag, through the socket, with the codec's
text rules (the coding, the parts and each part's characters as the dispatcher cuts them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_config import ENV, minimal
from test_intake import Client, FakeBackend, connect, settings

from smppgw.codec.constants import DataCoding, EsmClass
from smppgw.codec.udh import parse_udh
from smppgw.gateway.config import parse_config
from smppgw.gateway.daemon import build_parts
from smppgw.gateway.intake import IntakeDefaults, IntakeServer

TO = "14155550101"
CURLY_150 = "It\u2019s" + " ok" * 48 + "!!"  # 150 characters, one typographic apostrophe


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
async def server(tmp_path: Path, backend: FakeBackend) -> AsyncIterator[IntakeServer]:
    async with IntakeServer(backend, settings(tmp_path / "s.sock")) as srv:
        yield srv


@pytest.fixture
async def client(server: IntakeServer) -> AsyncIterator[Client]:
    c = await connect(server)
    yield c
    await c.close()


async def preview(client: Client, **fields: Any) -> dict[str, Any]:
    return await client.call({"op": "preview", "to": TO, **fields})


def texts(reply: dict[str, Any]) -> list[str]:
    return [part["text"] for part in reply["split"]]


# --- the split, character-exact -----------------------------------------------------------


async def test_a_gsm_text_fits_160_septets_in_one_part_and_is_cut_153_per_part_beyond(
    client: Client,
) -> None:
    single = await preview(client, text="a" * 160)
    assert (single["coding"], single["parts"]) == ("gsm", 1)
    assert single["split"] == [{"text": "a" * 160, "chars": 160, "septets": 160}]

    text = "".join(chr(ord("a") + i % 26) for i in range(161))
    reply = await preview(client, text=text, req=7)
    assert reply == {
        "ok": True,
        "req": 7,
        "coding": "gsm",
        "parts": 2,
        "split": [
            {"text": text[:153], "chars": 153, "septets": 153},
            {"text": text[153:], "chars": 8, "septets": 8},
        ],
    }


async def test_a_gsm_extension_character_is_never_split_across_parts(client: Client) -> None:
    """The euro sign is two septets (escape 0x1B, then 0x65). At septets 153 and 154 of a
    text it would straddle the part boundary; it moves whole to the next part, which leaves
    the first part one septet short."""
    text = "a" * 152 + "\u20ac" + "b" * 10
    reply = await preview(client, text=text)
    assert (reply["coding"], reply["parts"]) == ("gsm", 2)
    assert reply["split"] == [
        {"text": "a" * 152, "chars": 152, "septets": 152},
        {"text": "\u20ac" + "b" * 10, "chars": 11, "septets": 12},
    ]
    # One septet earlier it fits: the euro sign ends the first part.
    reply = await preview(client, text="a" * 151 + "\u20ac" + "b" * 10)
    assert [p["septets"] for p in reply["split"]] == [153, 10]
    assert texts(reply) == ["a" * 151 + "\u20ac", "b" * 10]


async def test_a_ucs2_text_fits_70_characters_in_one_part_and_is_cut_67_per_part_beyond(
    client: Client,
) -> None:
    single = await preview(client, text="\u0436" * 70)
    assert (single["coding"], single["parts"]) == ("ucs2", 1)
    assert single["split"] == [{"text": "\u0436" * 70, "chars": 70, "octets": 140}]

    reply = await preview(client, text="\u0436" * 71)
    assert (reply["coding"], reply["parts"]) == ("ucs2", 2)
    assert reply["split"] == [
        {"text": "\u0436" * 67, "chars": 67, "octets": 134},
        {"text": "\u0436" * 4, "chars": 4, "octets": 8},
    ]


async def test_a_surrogate_pair_is_never_split_across_ucs2_parts(client: Client) -> None:
    """An emoji outside the BMP is two UTF-16 code units. As units 67 and 68 it would
    straddle the boundary; it moves whole to the second part, which then starts with it."""
    emoji = "\U0001f600"
    text = "\u0436" * 66 + emoji + "\u0436" * 10
    reply = await preview(client, text=text)
    assert (reply["coding"], reply["parts"]) == ("ucs2", 2)
    assert reply["split"] == [
        {"text": "\u0436" * 66, "chars": 66, "octets": 132},
        {"text": emoji + "\u0436" * 10, "chars": 11, "octets": 24},
    ]


async def test_a_latin1_text_fits_140_octets_in_one_part_and_is_cut_134_per_part_beyond(
    client: Client,
) -> None:
    single = await preview(client, text="\u00e9" * 140, coding="latin1")
    assert (single["coding"], single["parts"]) == ("latin1", 1)
    assert single["split"] == [{"text": "\u00e9" * 140, "chars": 140, "octets": 140}]
    reply = await preview(client, text="\u00e9" * 141, coding="latin1")
    assert (reply["coding"], reply["parts"]) == ("latin1", 2)
    assert reply["split"] == [
        {"text": "\u00e9" * 134, "chars": 134, "octets": 134},
        {"text": "\u00e9" * 7, "chars": 7, "octets": 7},
    ]


async def test_a_hex_payload_is_previewed_as_binary_octets(client: Client) -> None:
    payload = bytes(range(141))
    reply = await preview(client, hex=payload.hex())
    assert (reply["coding"], reply["parts"]) == ("binary", 2)
    assert reply["split"] == [
        {"hex": payload[:134].hex(), "octets": 134},
        {"hex": payload[134:].hex(), "octets": 7},
    ]
    assert "transliterated" not in reply


async def test_the_preview_split_is_the_user_data_the_dispatcher_sends(
    client: Client, backend: FakeBackend
) -> None:
    """Preview and dispatch cut a text with the same codec functions: the characters of each
    previewed part are those of each submit_sm, UDH aside."""
    text = "a" * 150 + "\u20ac" * 3 + "\u00e0" * 200
    reply = await preview(client, text=text)
    assert (await client.call({"op": "submit", "to": TO, "text": text}))["ok"]
    (stored,) = backend.messages.values()
    sent = build_parts("m1", stored)
    assert len(sent) == reply["parts"] == stored.parts == 3
    for pdu, part in zip(sent, reply["split"], strict=True):
        assert pdu.esm_class & EsmClass.UDHI
        _, data = parse_udh(pdu.short_message)
        assert len(data) == part["septets"]
    assert "".join(texts(reply)) == text


# --- what it would cost transliterated ----------------------------------------------------


async def test_one_curly_apostrophe_costs_three_ucs2_parts_and_transliterated_one_gsm_part(
    client: Client,
) -> None:
    assert len(CURLY_150) == 150
    reply = await preview(client, text=CURLY_150)
    assert (reply["coding"], reply["parts"]) == ("ucs2", 3)
    assert [p["chars"] for p in reply["split"]] == [67, 67, 16]
    assert reply["transliterated"] == {
        "coding": "gsm",
        "parts": 1,
        "text": CURLY_150.replace("\u2019", "'"),
    }


async def test_no_transliterated_alternative_when_transliteration_changes_nothing(
    client: Client,
) -> None:
    for text in ("plain GSM text", "\u0436 stays Cyrillic"):
        reply = await preview(client, text=text)
        assert reply["ok"]
        assert "transliterated" not in reply


async def test_a_too_long_preview_says_what_the_transliterated_text_would_cost(
    client: Client,
) -> None:
    text = "\u201cquoted\u201d " + "a" * 700  # 710 characters: 11 UCS-2 parts, 5 in GSM
    reply = await preview(client, text=text)
    submit = await client.call({"op": "submit", "to": TO, "text": text})
    assert submit == {
        "ok": False,
        "error": "too_long",
        "message": "text: needs 11 parts as ucs2, max_parts is 10",
    }
    assert reply == {
        **submit,
        "transliterated": {"coding": "gsm", "parts": 5, "text": '"quoted" ' + "a" * 700},
    }


# --- judged as a submit, storing nothing --------------------------------------------------


async def test_a_preview_stores_nothing(client: Client, backend: FakeBackend) -> None:
    assert (await preview(client, text="hello"))["ok"]
    batch = await client.call(
        {"op": "preview", "messages": [{"to": TO, "text": "one"}, {"to": TO, "text": "two"}]}
    )
    assert (batch["accepted"], batch["rejected"]) == (2, 0)
    assert backend.messages == {}
    assert backend.commits == []
    assert (await client.call({"op": "submit", "to": TO, "text": "hello"}))["ok"]
    assert len(backend.messages) == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"to": "+14155550101", "text": "hi"},  # invalid_number
        {"to": TO, "from": "TOO-LONG-SENDER-ID", "text": "hi"},  # invalid_number
        {"to": TO, "text": "a" * 161, "max_parts": 1},  # too_long
        {"to": TO, "text": "\u0436", "coding": "gsm"},  # not representable
        {"to": TO, "text": "hi", "flash": True, "coding": "latin1"},
        {"to": TO, "text": "hi", "hex": "00"},
        {"to": TO, "text": "hi", "validity": 0},
        {"to": TO, "text": "hi", "colour": "red"},  # unknown_field
        {"text": "hi"},  # to: required
    ],
)
async def test_a_preview_is_refused_with_the_error_submit_gives(
    client: Client, backend: FakeBackend, fields: dict[str, Any]
) -> None:
    submitted = await client.call({"op": "submit", **fields, "req": 1})
    previewed = await client.call({"op": "preview", **fields, "req": 1})
    assert submitted["ok"] is False
    assert previewed == submitted
    batch = {"messages": [fields, {"to": TO, "text": "fine"}]}
    submitted = await client.call({"op": "submit", **batch})
    previewed = await client.call({"op": "preview", **batch})
    assert previewed["results"][0] == submitted["results"][0]
    assert previewed["results"][0]["ok"] is False
    assert (previewed["accepted"], previewed["rejected"]) == (1, 1)
    assert previewed["results"][1]["split"] == [{"text": "fine", "chars": 4, "septets": 4}]


async def test_a_preview_batch_is_bounded_like_a_submit_batch(client: Client) -> None:
    reply = await client.call({"op": "preview", "messages": []})
    assert (reply["ok"], reply["error"]) == (False, "invalid_request")


# --- the transliterate flag ---------------------------------------------------------------


async def test_the_transliterate_flag_stores_the_gsm_text_in_fewer_parts(
    client: Client, backend: FakeBackend
) -> None:
    plain = await client.call({"op": "submit", "to": TO, "text": CURLY_150})
    flagged = await client.call(
        {"op": "submit", "to": TO, "text": CURLY_150, "transliterate": True}
    )
    assert (plain["parts"], flagged["parts"]) == (3, 1)
    first, second = backend.messages.values()
    assert (first.data_coding, first.parts, first.text) == (DataCoding.UCS2, 3, CURLY_150)
    assert (second.data_coding, second.parts) == (DataCoding.DEFAULT, 1)
    assert second.text == CURLY_150.replace("\u2019", "'")


async def test_a_preview_with_the_transliterate_flag_shows_the_transliterated_cost(
    client: Client,
) -> None:
    reply = await preview(client, text=CURLY_150, transliterate=True)
    assert (reply["coding"], reply["parts"]) == ("gsm", 1)
    assert texts(reply) == [CURLY_150.replace("\u2019", "'")]
    assert "transliterated" not in reply


async def test_a_text_that_transliteration_empties_is_refused(client: Client) -> None:
    reply = await client.call(
        {"op": "submit", "to": TO, "text": "\u200b\ufeff", "transliterate": True}
    )
    assert reply == {
        "ok": False,
        "error": "invalid_request",
        "message": "text: nothing is left after transliteration",
    }


async def test_defaults_transliterate_applies_unless_a_message_says_false(
    tmp_path: Path, backend: FakeBackend
) -> None:
    config = settings(
        tmp_path / "s.sock", defaults=IntakeDefaults(sender="ACME", transliterate=True)
    )
    async with IntakeServer(backend, config) as srv:
        client = await connect(srv)
        try:
            assert (await client.call({"op": "submit", "to": TO, "text": CURLY_150}))["ok"]
            off = {"op": "submit", "to": TO, "text": CURLY_150, "transliterate": False}
            assert (await client.call(off))["ok"]
        finally:
            await client.close()
    first, second = backend.messages.values()
    assert (first.data_coding, first.parts) == (DataCoding.DEFAULT, 1)
    assert (second.data_coding, second.parts) == (DataCoding.UCS2, 3)


def test_defaults_transliterate_is_read_from_the_config() -> None:
    assert parse_config(minimal(), environ=ENV).intake.defaults.transliterate is False
    config = parse_config(minimal(defaults={"transliterate": True}), environ=ENV)
    assert config.intake.defaults.transliterate is True
