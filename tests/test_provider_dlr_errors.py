"""The provider's delivery-receipt error codes, looked up as a receipt's ``err:`` field is.

``PROVIDER_TABLE`` is the "Error Codes" table of the provider's SMPP document, as printed
(code, status word, description; 778 comes before 777 there). Every row must come back from a
lookup with the documented words, however the receipt writes the code, and codes the document
does not list must not.
"""

from __future__ import annotations

import pytest

from smppgw.codec import DeliverSm, EsmClass, MessageState
from smppgw.codec.receipt import receipt_info, stat_to_message_state
from smppgw.esme.receipts import dlr_from_pdu
from smppgw.provider import DLR_ERROR_CODES, is_rejection, lookup_dlr_error

PROVIDER_TABLE = """\
000 DELIVRD Delivered to SIM.
001 INVALID-SUB Unidentified subscriber.
002 INVALID-SUB Illegal subscriber
003 ABSENT-SUB Unidentified subscriber.
004 HANDSET-ERR Illegal equipment
005 BARRED SMS is prohibited.
006 HANDSET-ERR MS does not support SMS.
007 HANDSET-ERR MS is receiving an error.
008 NET-ERR Facility not supported.
009 MEMEXEC Handset memory is full.
010 ABSENT-SUB Absent subscriber
011 FAILED SMSC system failure
012 NET-ERR Gateway mobile switching error
013 MOB-OFF Mobile handset switched off
014 FAILED SMS is undelivered due to roaming limitations.
015 INVALID-SUB Unidentified subscriber
016 HANDSET-BUSY Subscriber is busy.
017 NET-ERR Resources cannot be used at the GMSC level.
018 SERIES-BLK Series blocked
019 NET-ERR Submission error or invalid input data
020 BARRED CUG reject
021 EXPIRED SMS timeout
034 UNDELIV Unknown Error
045 FAILED Unknown Error
099 UNDELIV Unknown Error
400 SERIES-BLOCK Series has been temporarily or permanently blocked.
401 NO-CREDITS Credit exhausted.
402 NO-ACCOUNT Invalid account.
403 SERVER-ERR Unknown Error
404 INV-NUMBER Invalid destination number
405 SERVER-ERR ESME client error
406 SERVER-ERR ESME client error
407 SPAM Sent illegal content
408 DNDNUMB Number registered in the DND database.
430 SERVER-ERR Unknown Error
431 SERVER-ERR Unknown Error
432 SERVER-ERR Unknown Error
433 SERVER-ERR Unknown Error
450 BLACKLST Number blocklisted to receive messages
451 SNDR-BLOCK Sender ID has been blocked.
452 TEMPLATE-NOT-FOUND No matching templates
453 INV-TEMPLATE Message rejected as template not allotted for ESME
454 INV-SENDER Message rejected as sender ID not allotted for ESME
455 NOT-OPTIN Message rejected as number not in optin list
456 OPTOUT-REJ Rejected as a number optout to receive messages
457 PROMO-TMOUT Promotional time exceeded
458 REJECTED Unknown Error
459 NOTALLOWED Country is not allowed to send SMS.
460 DUPLICATE Same content was sent.
461 UNDELIV Unknown Error
462 FAILED Unknown Error
463 THROTTLED Maximum Sent Limit is Reached
778 REJ-MULTIPART All message parts are not delivered to the handset.
777 DLT-REJECTED Invalid sender ID or invalid template
780 DLT-INV-TMID Invalid DLT Telemarketer ID
781 DLT-INV-ENTITY Invalid Entity DLT ID
782 DLT-INV-TM-ID Invalid DLT Template ID
783 DLT-TM-VAR-EXECEED Template variable exceeded 30 characters.
784 DLT-ENTITY-NOT-FOUND Entity ID not found
785 DLT-TM-BLACKLST Template ID is blacklisted.
786 DLT-ENTITY-BLACKLST Entity ID is blacklisted.
787 DLT-HEADER-INACTIVE Sender Inactive
788 DLT-TM-INACTIVE Template is inactive.
789 DLT-SENDER-NOT-REG-TM Sender is not registered for the template.
790 INV-PROVISION Sender Invalid Provision
791 INV-SERVICE Invalid Service Type
792 INV-SCHEDULE Invalid Schedule
"""

ROWS = [tuple(line.split(" ", 2)) for line in PROVIDER_TABLE.splitlines()]


@pytest.mark.parametrize(("text", "status", "description"), ROWS)
def test_every_documented_code_looks_up_to_its_status_and_description(
    text: str, status: str, description: str
) -> None:
    for key in (text, int(text), text.lstrip("0") or "0", f" {text} "):
        row = lookup_dlr_error(key)
        assert row is not None, key
        assert (row.status, row.description) == (status, description)
        assert row.text == text  # the three digits a receipt carries


def test_codes_the_document_does_not_list_look_up_to_nothing() -> None:
    documented = {int(text) for text, _, _ in ROWS}
    for code in range(1000):
        if code not in documented:
            assert lookup_dlr_error(code) is None, code
    for key in ("", "abc", "-1", "1000", "0x15"):
        assert lookup_dlr_error(key) is None, key


def test_the_table_keeps_the_document_s_rows_in_its_order() -> None:
    assert [(row.text, row.status, row.description) for row in DLR_ERROR_CODES] == ROWS


@pytest.mark.parametrize(
    ("stat", "state"),
    [
        ("DLT-REJECTED", MessageState.REJECTED),
        ("DLT-INV-TMID", MessageState.REJECTED),
        ("DNDNUMB", MessageState.REJECTED),
        ("SPAM", MessageState.REJECTED),
        ("NO-CREDITS", MessageState.REJECTED),
        ("ABSENT-SUB", MessageState.UNDELIVERABLE),
        ("NET-ERR", MessageState.UNDELIVERABLE),
        ("DELIVRD", MessageState.DELIVERED),
    ],
)
def test_the_providers_refusal_words_make_a_receipt_rejected(
    stat: str, state: MessageState
) -> None:
    """Refusals (the message was never attempted) are the provider's words, not SMPP's: the
    codec maps them to REJECTED only when told which they are."""
    assert stat_to_message_state(stat, rejection=is_rejection) is state
    info = receipt_info(f"id:7 stat:{stat} err:000".encode(), (), rejection=is_rejection)
    assert info.state is state


async def test_a_dlt_refusal_reaches_the_library_as_a_final_rejected_receipt() -> None:
    dlr = dlr_from_pdu(
        DeliverSm(esm_class=EsmClass.DELIVERY_RECEIPT, short_message=b"id:7 stat:DLT-REJECTED"),
        received_at=0.0,
    )
    assert dlr is not None
    assert (dlr.state, dlr.final) == (MessageState.REJECTED, True)
