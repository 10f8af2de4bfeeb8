"""Phone numbers and sender ids as the provider accepts them.

The provider's "Number Format" section: every number is E.164 *without* a leading ``+`` and
without the international access code (``00``), with no spaces, brackets or dashes; e.g. a US
number is ``14155550101`` and a UK number ``447700900123``. E.164 allows at most 15 digits and
a country code never starts with 0; we also require at least 8 digits, the shortest complete
international number in use, so that a national number sent by mistake is refused here rather
than billed and lost.

A sender (SMPP source_addr) is either alphanumeric (at most 11 characters, GSM 03.40 section
9.1.2.5: 11 characters fit the 7-bit packed TP-OA field) or numeric (at most 15 digits).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from smppgw.codec.constants import Npi, Ton
from smppgw.codec.errors import SmppError

__all__ = [
    "MAX_ALPHANUMERIC_SENDER",
    "MAX_DIGITS",
    "MIN_DIGITS",
    "NumberError",
    "Sender",
    "SenderKind",
    "validate_msisdn",
    "validate_sender",
]

MIN_DIGITS = 8
MAX_DIGITS = 15  # ITU-T E.164 section 6.1
MAX_ALPHANUMERIC_SENDER = 11

_DIGITS = re.compile(r"[0-9]+")
# Letters and digits, with spaces, dots and dashes after the first character and no trailing
# space: what operators accept as a sender name.
_ALNUM = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 .\-]*[A-Za-z0-9.])?")


class NumberError(SmppError, ValueError):
    """A number or sender that is not in the accepted format.

    Attributes:
        field: the request field that holds the bad value (``to``, ``from``...).
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def validate_msisdn(value: str, *, field: str = "to") -> str:
    """Check that ``value`` is an E.164 number in the provider's format.

    Args:
        value: the number as given by the client.
        field: the request field name, used in the error message.

    Returns:
        ``value`` unchanged (it is already canonical when valid).

    Raises:
        NumberError: naming ``field`` and what is wrong (``+`` or ``00`` prefix, a space or
            other non-digit, too few or too many digits).
    """
    if not value:
        raise NumberError(field, "must not be empty")
    if value.startswith("+"):
        raise NumberError(field, f"must not start with '+' (E.164 digits only), got {value!r}")
    if _DIGITS.fullmatch(value) is None:
        raise NumberError(field, f"must contain digits only (no spaces, () or -), got {value!r}")
    if value.startswith("0"):
        # Covers the 00 international prefix too: no E.164 country code starts with 0.
        raise NumberError(field, f"must start with the country code, not 0 or 00, got {value!r}")
    if not MIN_DIGITS <= len(value) <= MAX_DIGITS:
        raise NumberError(field, f"must have {MIN_DIGITS}..{MAX_DIGITS} digits, got {len(value)}")
    return value


class SenderKind(enum.Enum):
    """How a sender id is put on the wire."""

    ALPHANUMERIC = "alphanumeric"
    """A name such as ``ACMEIN``: source_addr_ton 5 (alphanumeric), npi 0."""
    INTERNATIONAL = "international"
    """An E.164 number: ton 1 (international), npi 1 (ISDN/E.164)."""
    SHORT_CODE = "short_code"
    """A numeric id too short to be E.164 (a short code): ton 3 (network specific), npi 0."""


@dataclass(frozen=True, slots=True)
class Sender:
    """A validated sender id with the source_addr TON/NPI it needs."""

    value: str
    kind: SenderKind

    @property
    def ton(self) -> Ton:
        """The source_addr_ton for this sender."""
        return _TON[self.kind]

    @property
    def npi(self) -> Npi:
        """The source_addr_npi for this sender."""
        return Npi.ISDN if self.kind is SenderKind.INTERNATIONAL else Npi.UNKNOWN


_TON = {
    SenderKind.ALPHANUMERIC: Ton.ALPHANUMERIC,
    SenderKind.INTERNATIONAL: Ton.INTERNATIONAL,
    SenderKind.SHORT_CODE: Ton.NETWORK_SPECIFIC,
}


def validate_sender(value: str, *, field: str = "from") -> Sender:
    """Check a sender id and classify it.

    Args:
        value: the sender as given: all digits (a number or short code) or a name.
        field: the request field name, used in the error message.

    Returns:
        The :class:`Sender` with its kind (which fixes TON/NPI).

    Raises:
        NumberError: an empty value, a numeric sender over 15 digits or with a ``+``, or a name
            over 11 characters or with characters other than letters, digits, space, ``.``
            and ``-``.
    """
    if not value:
        raise NumberError(field, "must not be empty")
    if value.startswith("+") and _DIGITS.fullmatch(value[1:]):
        raise NumberError(field, f"must not start with '+' (E.164 digits only), got {value!r}")
    if _DIGITS.fullmatch(value):
        if len(value) > MAX_DIGITS:
            raise NumberError(
                field, f"a numeric sender has at most {MAX_DIGITS} digits, got {len(value)}"
            )
        if len(value) >= MIN_DIGITS and not value.startswith("0"):
            return Sender(value, SenderKind.INTERNATIONAL)
        return Sender(value, SenderKind.SHORT_CODE)
    if len(value) > MAX_ALPHANUMERIC_SENDER:
        raise NumberError(
            field,
            f"an alphanumeric sender has at most {MAX_ALPHANUMERIC_SENDER} characters, "
            f"got {len(value)}",
        )
    if _ALNUM.fullmatch(value) is None:
        raise NumberError(
            field,
            f"an alphanumeric sender may hold letters, digits, space, '.' and '-' only, "
            f"got {value!r}",
        )
    return Sender(value, SenderKind.ALPHANUMERIC)
