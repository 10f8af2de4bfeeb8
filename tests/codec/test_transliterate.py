"""Typographic characters become GSM 03.38, and nothing else changes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smppgw.codec.constants import DataCoding
from smppgw.codec.split import count_parts
from smppgw.codec.text import choose_coding, is_gsm
from smppgw.codec.transliterate import TRANSLITERATIONS, transliterate

GSM_TEXT = st.text(alphabet=st.characters(codec="utf-8").filter(is_gsm), max_size=200)
TYPOGRAPHIC = st.sampled_from(sorted(TRANSLITERATIONS))


def test_every_replacement_is_gsm_and_every_replaced_character_is_not() -> None:
    for character, replacement in TRANSLITERATIONS.items():
        assert not is_gsm(character), repr(character)
        assert is_gsm(replacement), repr(replacement)


def test_a_typographic_text_fits_one_gsm_part_instead_of_three_ucs2_parts() -> None:
    # We've received your order - it ships "tomorrow"... with the typographic characters.
    text = "We\u2019ve received your order \u2013 it ships \u201ctomorrow\u201d\u2026 Thanks! " * 2
    assert len(text) == 114
    assert choose_coding(text) is DataCoding.UCS2
    assert count_parts(text, DataCoding.UCS2) == 2
    plain = transliterate(text)
    assert plain == 'We\'ve received your order - it ships "tomorrow"... Thanks! ' * 2
    assert choose_coding(plain) is DataCoding.DEFAULT
    assert count_parts(plain, DataCoding.DEFAULT) == 1


@given(st.lists(st.one_of(GSM_TEXT, TYPOGRAPHIC)).map("".join))
def test_gsm_text_with_typographic_characters_becomes_gsm(text: str) -> None:
    assert is_gsm(transliterate(text))


@given(st.text(max_size=300))
def test_it_is_idempotent_and_leaves_other_characters_alone(text: str) -> None:
    once = transliterate(text)
    assert transliterate(once) == once
    kept = [c for c in text if c not in TRANSLITERATIONS]
    assert [c for c in once if c not in set("'\"-.* ")] == [
        c for c in kept if c not in set("'\"-.* ")
    ]


def test_non_gsm_letters_are_not_touched() -> None:
    assert transliterate("नमस्ते \u2018ji\u2019 \u2014 привет") == "नमस्ते 'ji' - привет"
