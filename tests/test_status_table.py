"""The provider's "Submit Responses" table: every status it lists is known by its number and
name, says the documented words, and is classified by the built-in table (not by the fallback
for statuses the table does not name).

``PROVIDER_TABLE`` is that table of the provider's SMPP document, as printed.
"""

from __future__ import annotations

import pytest

from smppgw.codec.constants import CommandStatus
from smppgw.esme.retry_policy import StatusClass, classify

PROVIDER_TABLE = """\
0x00000000 ESME_ROK No Error
0x00000001 ESME_RINVMSGLEN Message too long
0x00000002 ESME_RINVCMDLEN Command length is invalid.
0x00000003 ESME_RINVCMDID Command ID is invalid or not supported.
0x00000004 ESME_RINVBNDSTS Incorrect binding status for the given command
0x00000005 ESME_RALYBND Already bound
0x00000006 ESME_RINVPRTFLG Invalid Priority Flag
0x00000007 ESME_RINVREGDLVFLG Invalid registered delivery flag
0x00000008 ESME_RSYSERR System error
0x0000000A ESME_RINVSRCADR Invalid source address
0x0000000B ESME_RINVDSTADR Invalid destination address
0x0000000C ESME_RINVMSGID Message ID is invalid.
0x0000000D ESME_RBINDFAIL Bind failed
0x0000000E ESME_RINVPASWD Invalid password
0x0000000F ESME_RINVSYSID Invalid System ID
0x00000011 ESME_RCANCELFAIL Cancellation message failed.
0x00000013 ESME_RREPLACEFAIL Message replacement failed
0x00000014 ESME_RMSSQFUL Message queue is full.
0x00000015 ESME_RINVSERTYP Invalid service type
0x00000033 ESME_RINVNUMDESTS Invalid number of destinations
0x00000034 ESME_RINVDLNAME Invalid distribution list name
0x00000040 ESME_RINVDESTFLAG Invalid destination flag
0x00000042 ESME_RINVSUBREP Invalid submit with replace request
0x00000043 ESME_RINVESMCLASS Invalid ESM class set
0x00000044 ESME_RCNTSUBDL Invalid submission to the distribution list
0x00000045 ESME_RSUBMITFAIL Submitting a message has failed.
0x00000048 ESME_RINVSRCTON Invalid source address type of number (TON)
0x00000049 ESME_RINVSRCNPI Invalid source address numbering plan (NPI)
0x00000050 ESME_RINVDSTTON Invalid destination address type of number (TON)
0x00000051 ESME_RINVDSTNPI Invalid destination address numbering plan (NPI)
0x00000053 ESME_RINVSYSTYP Invalid system type
0x00000054 ESME_RINVREPFLAG Invalid replace_if_present flag
0x00000055 ESME_RINVNUMMSGS Invalid number of messages
0x00000058 ESME_RTHROTTLED Throttling error
0x00000061 ESME_RINVSCHED Invalid scheduled delivery time
0x00000062 ESME_RINVEXPIRY Invalid validity period value
0x00000063 ESME_RINVDFTMSGID A predefined message was not found.
0x00000064 ESME_RX_T_APPN ESME Receiver temporary error
0x00000065 ESME_RX_P_APPN ESME Receiver permanent error
0x00000066 ESME_RX_R_APPN ESME Receiver reject message error
0x00000067 ESME_RQUERYFAIL Message query request failed.
0x000000C0 ESME_RINVTLVSTREAM Error in the optional part of the PDU body
0x000000C1 ESME_RTLVNOTALLWD TLV is not allowed.
0x000000C2 ESME_RINVTLVLEN Invalid parameter length
0x000000C3 ESME_RMISSINGTLV Expected TLV missing
0x000000C4 ESME_RINVTLVVAL Invalid TLV value
0x000000FE ESME_RDELIVERYFAILURE Transaction delivery failure
0x000000FF ESME_RUNKNOWNERR Unknown error
0x00000100 ESME_RSERTYPUNAUTH ESME is not authorised to use specified service types.
0x00000101 ESME_RPROHIBITED ESME is prohibited from using specified operations.
0x00000102 ESME_RSERTYPUNAVAIL A specified service type is unavailable.
0x00000103 ESME_RSERTYPDENIED A specified service type is denied.
0x00000104 ESME_RINVDCS Invalid data coding scheme
0x00000105 ESME_RINVSRCADDRSUBUNIT Invalid source address subunit
0x00000106 ESME_RINVSTDADDRSUBUNIR Invalid destination address subunit
0x0000040B ESME_RINVBALANCE Insufficient credits to send a message
"""

ROWS = [tuple(line.split(" ", 2)) for line in PROVIDER_TABLE.splitlines()]

# What the gateway does with each answer to a submit (README, "[retry]").
TRANSIENT = {
    "ESME_RMSSQFUL",
    "ESME_RSYSERR",
    "ESME_RX_T_APPN",
    "ESME_RDELIVERYFAILURE",
    "ESME_RUNKNOWNERR",
    "ESME_RSUBMITFAIL",
    "ESME_RINVBNDSTS",
}


def expected_class(name: str) -> StatusClass:
    if name == "ESME_ROK":
        return StatusClass.OK
    if name == "ESME_RTHROTTLED":
        return StatusClass.THROTTLED
    return StatusClass.TRANSIENT if name in TRANSIENT else StatusClass.PERMANENT


@pytest.mark.parametrize(("number", "name", "description"), ROWS)
def test_every_documented_status_is_known_by_number_and_name(
    number: str, name: str, description: str
) -> None:
    status = CommandStatus(int(number, 16))
    assert CommandStatus[name] is status
    assert status.description == description


@pytest.mark.parametrize(("number", "name", "description"), ROWS)
def test_every_documented_status_is_classified_by_the_table(
    number: str, name: str, description: str
) -> None:
    value = int(number, 16)
    # Whatever the class of unnamed statuses, a documented one keeps its own.
    for fallback in StatusClass:
        assert classify(value, unknown=fallback) is expected_class(name), (name, fallback)
