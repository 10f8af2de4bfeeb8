"""E.164 numbers and sender ids as the provider's "Number Format" section defines them."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.codec.constants import Npi, Ton
from smppgw.esme.numbers import NumberError, SenderKind, validate_msisdn, validate_sender


@pytest.mark.parametrize("number", ["14155550101", "447700900123", "91892126900", "12345678"])
def test_provider_examples_and_bounds_are_valid(number: str) -> None:
    assert validate_msisdn(number) == number


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("", "must not be empty"),
        ("+14155550101", "must not start with '+' (E.164 digits only), got '+14155550101'"),
        ("0014155550101", "must start with the country code, not 0 or 00, got '0014155550101'"),
        ("07700900123", "must start with the country code, not 0 or 00, got '07700900123'"),
        ("1 415 555 0101", "must contain digits only (no spaces, () or -), got '1 415 555 0101'"),
        ("1(415)5550101", "must contain digits only (no spaces, () or -), got '1(415)5550101'"),
        ("1-415-555-0101", "must contain digits only (no spaces, () or -), got '1-415-555-0101'"),
        ("1234567", "must have 8..15 digits, got 7"),
        ("1234567890123456", "must have 8..15 digits, got 16"),
        ("٤٤٧٧٠٠٩٠٠١٢٣", "must contain digits only"),  # Arabic-Indic digits are not ASCII
    ],
)
def test_invalid_numbers_name_the_field_and_the_problem(number: str, problem: str) -> None:
    with pytest.raises(NumberError) as info:
        validate_msisdn(number, field="messages[3].to")
    assert str(info.value).startswith(f"messages[3].to: {problem}")
    assert info.value.field == "messages[3].to"


@given(st.from_regex(r"[1-9][0-9]{7,14}", fullmatch=True))
def test_every_e164_digit_string_is_accepted(number: str) -> None:
    assert validate_msisdn(number) == number


@given(st.text(max_size=20))
def test_validation_accepts_exactly_the_e164_digit_strings(value: str) -> None:
    expected = value.isascii() and value.isdigit() and 8 <= len(value) <= 15 and value[0] != "0"
    try:
        validate_msisdn(value)
    except NumberError:
        assert not expected
    else:
        assert expected


@pytest.mark.parametrize(
    ("sender", "kind", "ton", "npi"),
    [
        ("ACMEIN", SenderKind.ALPHANUMERIC, Ton.ALPHANUMERIC, Npi.UNKNOWN),
        ("Acme Ltd.", SenderKind.ALPHANUMERIC, Ton.ALPHANUMERIC, Npi.UNKNOWN),
        ("A1-B2", SenderKind.ALPHANUMERIC, Ton.ALPHANUMERIC, Npi.UNKNOWN),
        ("ABCDEFGHIJK", SenderKind.ALPHANUMERIC, Ton.ALPHANUMERIC, Npi.UNKNOWN),
        ("14155550101", SenderKind.INTERNATIONAL, Ton.INTERNATIONAL, Npi.ISDN),
        ("123456789012345", SenderKind.INTERNATIONAL, Ton.INTERNATIONAL, Npi.ISDN),
        ("56789", SenderKind.SHORT_CODE, Ton.NETWORK_SPECIFIC, Npi.UNKNOWN),
        ("0800123456", SenderKind.SHORT_CODE, Ton.NETWORK_SPECIFIC, Npi.UNKNOWN),
    ],
)
def test_senders_are_classified_with_their_ton_and_npi(
    sender: str, kind: SenderKind, ton: Ton, npi: Npi
) -> None:
    result = validate_sender(sender)
    assert (result.value, result.kind, result.ton, result.npi) == (sender, kind, ton, npi)


@pytest.mark.parametrize(
    ("sender", "problem"),
    [
        ("", "from: must not be empty"),
        ("ABCDEFGHIJKL", "from: an alphanumeric sender has at most 11 characters, got 12"),
        ("1234567890123456", "from: a numeric sender has at most 15 digits, got 16"),
        ("+14155550101", "from: must not start with '+'"),
        ("ACME!", "from: an alphanumeric sender may hold letters, digits, space, '.' and '-'"),
        (" ACME", "from: an alphanumeric sender may hold"),
        ("ACME ", "from: an alphanumeric sender may hold"),
        ("ÄCME", "from: an alphanumeric sender may hold"),
    ],
)
def test_invalid_senders_are_refused(sender: str, problem: str) -> None:
    with pytest.raises(NumberError, match="^" + re.escape(problem)):
        validate_sender(sender)
