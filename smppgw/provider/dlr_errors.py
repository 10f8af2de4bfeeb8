"""The provider's delivery-receipt error codes (its "Error Codes" table), as data.

A receipt's ``err:`` field carries one of these three-digit codes and its ``stat:`` the status
word. The table is copied row for row, in the document's order (778 precedes 777 there); status
words repeat (several codes are ``INVALID-SUB`` or ``NET-ERR``). The provider notes that codes
"may vary depending on the region and operator", so lookups of unknown codes return None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["DLR_ERROR_CODES", "REJECTION_WORDS", "DlrErrorCode", "is_rejection", "lookup_dlr_error"]


@dataclass(frozen=True, slots=True)
class DlrErrorCode:
    """One row: the numeric code, the status word and the provider's description."""

    code: int
    status: str
    description: str

    @property
    def text(self) -> str:
        """The code as the three digits a receipt carries (``"021"``)."""
        return f"{self.code:03d}"


DLR_ERROR_CODES: Final[tuple[DlrErrorCode, ...]] = (
    DlrErrorCode(0, "DELIVRD", "Delivered to SIM."),
    DlrErrorCode(1, "INVALID-SUB", "Unidentified subscriber."),
    DlrErrorCode(2, "INVALID-SUB", "Illegal subscriber"),
    DlrErrorCode(3, "ABSENT-SUB", "Unidentified subscriber."),
    DlrErrorCode(4, "HANDSET-ERR", "Illegal equipment"),
    DlrErrorCode(5, "BARRED", "SMS is prohibited."),
    DlrErrorCode(6, "HANDSET-ERR", "MS does not support SMS."),
    DlrErrorCode(7, "HANDSET-ERR", "MS is receiving an error."),
    DlrErrorCode(8, "NET-ERR", "Facility not supported."),
    DlrErrorCode(9, "MEMEXEC", "Handset memory is full."),
    DlrErrorCode(10, "ABSENT-SUB", "Absent subscriber"),
    DlrErrorCode(11, "FAILED", "SMSC system failure"),
    DlrErrorCode(12, "NET-ERR", "Gateway mobile switching error"),
    DlrErrorCode(13, "MOB-OFF", "Mobile handset switched off"),
    DlrErrorCode(14, "FAILED", "SMS is undelivered due to roaming limitations."),
    DlrErrorCode(15, "INVALID-SUB", "Unidentified subscriber"),
    DlrErrorCode(16, "HANDSET-BUSY", "Subscriber is busy."),
    DlrErrorCode(17, "NET-ERR", "Resources cannot be used at the GMSC level."),
    DlrErrorCode(18, "SERIES-BLK", "Series blocked"),
    DlrErrorCode(19, "NET-ERR", "Submission error or invalid input data"),
    DlrErrorCode(20, "BARRED", "CUG reject"),
    DlrErrorCode(21, "EXPIRED", "SMS timeout"),
    DlrErrorCode(34, "UNDELIV", "Unknown Error"),
    DlrErrorCode(45, "FAILED", "Unknown Error"),
    DlrErrorCode(99, "UNDELIV", "Unknown Error"),
    DlrErrorCode(400, "SERIES-BLOCK", "Series has been temporarily or permanently blocked."),
    DlrErrorCode(401, "NO-CREDITS", "Credit exhausted."),
    DlrErrorCode(402, "NO-ACCOUNT", "Invalid account."),
    DlrErrorCode(403, "SERVER-ERR", "Unknown Error"),
    DlrErrorCode(404, "INV-NUMBER", "Invalid destination number"),
    DlrErrorCode(405, "SERVER-ERR", "ESME client error"),
    DlrErrorCode(406, "SERVER-ERR", "ESME client error"),
    DlrErrorCode(407, "SPAM", "Sent illegal content"),
    DlrErrorCode(408, "DNDNUMB", "Number registered in the DND database."),
    DlrErrorCode(430, "SERVER-ERR", "Unknown Error"),
    DlrErrorCode(431, "SERVER-ERR", "Unknown Error"),
    DlrErrorCode(432, "SERVER-ERR", "Unknown Error"),
    DlrErrorCode(433, "SERVER-ERR", "Unknown Error"),
    DlrErrorCode(450, "BLACKLST", "Number blocklisted to receive messages"),
    DlrErrorCode(451, "SNDR-BLOCK", "Sender ID has been blocked."),
    DlrErrorCode(452, "TEMPLATE-NOT-FOUND", "No matching templates"),
    DlrErrorCode(453, "INV-TEMPLATE", "Message rejected as template not allotted for ESME"),
    DlrErrorCode(454, "INV-SENDER", "Message rejected as sender ID not allotted for ESME"),
    DlrErrorCode(455, "NOT-OPTIN", "Message rejected as number not in optin list"),
    DlrErrorCode(456, "OPTOUT-REJ", "Rejected as a number optout to receive messages"),
    DlrErrorCode(457, "PROMO-TMOUT", "Promotional time exceeded"),
    DlrErrorCode(458, "REJECTED", "Unknown Error"),
    DlrErrorCode(459, "NOTALLOWED", "Country is not allowed to send SMS."),
    DlrErrorCode(460, "DUPLICATE", "Same content was sent."),
    DlrErrorCode(461, "UNDELIV", "Unknown Error"),
    DlrErrorCode(462, "FAILED", "Unknown Error"),
    DlrErrorCode(463, "THROTTLED", "Maximum Sent Limit is Reached"),
    DlrErrorCode(778, "REJ-MULTIPART", "All message parts are not delivered to the handset."),
    DlrErrorCode(777, "DLT-REJECTED", "Invalid sender ID or invalid template"),
    DlrErrorCode(780, "DLT-INV-TMID", "Invalid DLT Telemarketer ID"),
    DlrErrorCode(781, "DLT-INV-ENTITY", "Invalid Entity DLT ID"),
    DlrErrorCode(782, "DLT-INV-TM-ID", "Invalid DLT Template ID"),
    DlrErrorCode(783, "DLT-TM-VAR-EXECEED", "Template variable exceeded 30 characters."),
    DlrErrorCode(784, "DLT-ENTITY-NOT-FOUND", "Entity ID not found"),
    DlrErrorCode(785, "DLT-TM-BLACKLST", "Template ID is blacklisted."),
    DlrErrorCode(786, "DLT-ENTITY-BLACKLST", "Entity ID is blacklisted."),
    DlrErrorCode(787, "DLT-HEADER-INACTIVE", "Sender Inactive"),
    DlrErrorCode(788, "DLT-TM-INACTIVE", "Template is inactive."),
    DlrErrorCode(789, "DLT-SENDER-NOT-REG-TM", "Sender is not registered for the template."),
    DlrErrorCode(790, "INV-PROVISION", "Sender Invalid Provision"),
    DlrErrorCode(791, "INV-SERVICE", "Invalid Service Type"),
    DlrErrorCode(792, "INV-SCHEDULE", "Invalid Schedule"),
)

_BY_CODE: Final[dict[int, DlrErrorCode]] = {row.code: row for row in DLR_ERROR_CODES}


def lookup_dlr_error(code: int | str) -> DlrErrorCode | None:
    """The row for a code given as a number or as digits (``21``, ``"021"``); None if unknown."""
    if isinstance(code, str):
        digits = code.strip()
        if not digits.isdigit():
            return None
        return _BY_CODE.get(int(digits))
    return _BY_CODE.get(code)


REJECTION_WORDS: Final = frozenset(
    {
        "DLT-REJECTED",
        "SPAM",
        "DNDNUMB",
        "BLACKLST",
        "SNDR-BLOCK",
        "NOTALLOWED",
        "DUPLICATE",
        "NOT-OPTIN",
        "OPTOUT-REJ",
        "TEMPLATE-NOT-FOUND",
        "INV-TEMPLATE",
        "INV-SENDER",
        "NO-CREDITS",
        "NO-ACCOUNT",
        "THROTTLED",
    }
)
"""The status words of the table that name a refusal (the message was never attempted), not a
failure to deliver it."""


def is_rejection(word: str) -> bool:
    """Whether a receipt's stat word (upper case) is one of the provider's refusals: a word of
    :data:`REJECTION_WORDS` or any ``DLT-`` word (the DLT scrutiny refused it). For
    :func:`smppgw.codec.receipt.stat_to_message_state`'s ``rejection``."""
    return word in REJECTION_WORDS or word.startswith("DLT-")
