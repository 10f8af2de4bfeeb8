"""SMPP v3.4 protocol constants as open enums.

Every enum here is *open*: a value the spec or the provider does not name still decodes (as a
pseudo-member created on the fly by ``_missing_``) and encodes back unchanged, because SMSCs
extend these tables with vendor values. Sources: SMPP v3.4 issue 1.2, sections 5.1 and 5.3, and
the provider's "Submit Responses" error table.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Self

__all__ = [
    "RESPONSE_BIT",
    "CommandId",
    "CommandStatus",
    "DataCoding",
    "EsmClass",
    "MessageState",
    "Npi",
    "RegisteredDelivery",
    "Tag",
    "Ton",
]

RESPONSE_BIT = 0x80000000


class _OpenIntEnum(IntEnum):
    """An IntEnum that accepts values it does not name, keeping them as pseudo-members."""

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not isinstance(value, int):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_0x{value:08X}"
        member._value_ = value
        return member


class CommandId(_OpenIntEnum):
    """command_id values (SMPP v3.4 section 5.1.2.1)."""

    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103

    @property
    def is_response(self) -> bool:
        return bool(self & RESPONSE_BIT)


class CommandStatus(_OpenIntEnum):
    """command_status values: the provider's error table (a superset of SMPP v3.4 5.1.3).

    Descriptions are in :attr:`description`. Unknown vendor values are kept, not rejected.
    """

    ESME_ROK = 0x00000000
    ESME_RINVMSGLEN = 0x00000001
    ESME_RINVCMDLEN = 0x00000002
    ESME_RINVCMDID = 0x00000003
    ESME_RINVBNDSTS = 0x00000004
    ESME_RALYBND = 0x00000005
    ESME_RINVPRTFLG = 0x00000006
    ESME_RINVREGDLVFLG = 0x00000007
    ESME_RSYSERR = 0x00000008
    ESME_RINVSRCADR = 0x0000000A
    ESME_RINVDSTADR = 0x0000000B
    ESME_RINVMSGID = 0x0000000C
    ESME_RBINDFAIL = 0x0000000D
    ESME_RINVPASWD = 0x0000000E
    ESME_RINVSYSID = 0x0000000F
    ESME_RCANCELFAIL = 0x00000011
    ESME_RREPLACEFAIL = 0x00000013
    ESME_RMSSQFUL = 0x00000014
    ESME_RINVSERTYP = 0x00000015
    ESME_RINVNUMDESTS = 0x00000033
    ESME_RINVDLNAME = 0x00000034
    ESME_RINVDESTFLAG = 0x00000040
    ESME_RINVSUBREP = 0x00000042
    ESME_RINVESMCLASS = 0x00000043
    ESME_RCNTSUBDL = 0x00000044
    ESME_RSUBMITFAIL = 0x00000045
    ESME_RINVSRCTON = 0x00000048
    ESME_RINVSRCNPI = 0x00000049
    ESME_RINVDSTTON = 0x00000050
    ESME_RINVDSTNPI = 0x00000051
    ESME_RINVSYSTYP = 0x00000053
    ESME_RINVREPFLAG = 0x00000054
    ESME_RINVNUMMSGS = 0x00000055
    ESME_RTHROTTLED = 0x00000058
    ESME_RINVSCHED = 0x00000061
    ESME_RINVEXPIRY = 0x00000062
    ESME_RINVDFTMSGID = 0x00000063
    ESME_RX_T_APPN = 0x00000064
    ESME_RX_P_APPN = 0x00000065
    ESME_RX_R_APPN = 0x00000066
    ESME_RQUERYFAIL = 0x00000067
    ESME_RINVTLVSTREAM = 0x000000C0
    ESME_RTLVNOTALLWD = 0x000000C1
    ESME_RINVTLVLEN = 0x000000C2
    ESME_RMISSINGTLV = 0x000000C3
    ESME_RINVTLVVAL = 0x000000C4
    ESME_RDELIVERYFAILURE = 0x000000FE
    ESME_RUNKNOWNERR = 0x000000FF
    ESME_RSERTYPUNAUTH = 0x00000100
    ESME_RPROHIBITED = 0x00000101
    ESME_RSERTYPUNAVAIL = 0x00000102
    ESME_RSERTYPDENIED = 0x00000103
    ESME_RINVDCS = 0x00000104
    ESME_RINVSRCADDRSUBUNIT = 0x00000105
    # Spelled as in the provider's table (the spec's name is ESME_RINVDSTADDRSUBUNIT).
    ESME_RINVSTDADDRSUBUNIR = 0x00000106
    ESME_RINVBALANCE = 0x0000040B

    # The spec's spelling of 0x14 is ESME_RMSGQFUL; keep it as an alias so both names work.
    ESME_RMSGQFUL = 0x00000014
    ESME_RINVDSTADDRSUBUNIT = 0x00000106

    @property
    def description(self) -> str:
        return _STATUS_DESCRIPTIONS.get(int(self), "Unknown or vendor-specific error")


# The provider's "Error Description" column, verbatim.
_STATUS_DESCRIPTIONS: dict[int, str] = {
    0x00: "No Error",
    0x01: "Message too long",
    0x02: "Command length is invalid.",
    0x03: "Command ID is invalid or not supported.",
    0x04: "Incorrect binding status for the given command",
    0x05: "Already bound",
    0x06: "Invalid Priority Flag",
    0x07: "Invalid registered delivery flag",
    0x08: "System error",
    0x0A: "Invalid source address",
    0x0B: "Invalid destination address",
    0x0C: "Message ID is invalid.",
    0x0D: "Bind failed",
    0x0E: "Invalid password",
    0x0F: "Invalid System ID",
    0x11: "Cancellation message failed.",
    0x13: "Message replacement failed",
    0x14: "Message queue is full.",
    0x15: "Invalid service type",
    0x33: "Invalid number of destinations",
    0x34: "Invalid distribution list name",
    0x40: "Invalid destination flag",
    0x42: "Invalid submit with replace request",
    0x43: "Invalid ESM class set",
    0x44: "Invalid submission to the distribution list",
    0x45: "Submitting a message has failed.",
    0x48: "Invalid source address type of number (TON)",
    0x49: "Invalid source address numbering plan (NPI)",
    0x50: "Invalid destination address type of number (TON)",
    0x51: "Invalid destination address numbering plan (NPI)",
    0x53: "Invalid system type",
    0x54: "Invalid replace_if_present flag",
    0x55: "Invalid number of messages",
    0x58: "Throttling error",
    0x61: "Invalid scheduled delivery time",
    0x62: "Invalid validity period value",
    0x63: "A predefined message was not found.",
    0x64: "ESME Receiver temporary error",
    0x65: "ESME Receiver permanent error",
    0x66: "ESME Receiver reject message error",
    0x67: "Message query request failed.",
    0xC0: "Error in the optional part of the PDU body",
    0xC1: "TLV is not allowed.",
    0xC2: "Invalid parameter length",
    0xC3: "Expected TLV missing",
    0xC4: "Invalid TLV value",
    0xFE: "Transaction delivery failure",
    0xFF: "Unknown error",
    0x100: "ESME is not authorised to use specified service types.",
    0x101: "ESME is prohibited from using specified operations.",
    0x102: "A specified service type is unavailable.",
    0x103: "A specified service type is denied.",
    0x104: "Invalid data coding scheme",
    0x105: "Invalid source address subunit",
    0x106: "Invalid destination address subunit",
    0x40B: "Insufficient credits to send a message",
}


class Tag(_OpenIntEnum):
    """Optional parameter (TLV) tags, SMPP v3.4 section 5.3.2, plus the provider's DLT tags."""

    DEST_ADDR_SUBUNIT = 0x0005
    DEST_NETWORK_TYPE = 0x0006
    DEST_BEARER_TYPE = 0x0007
    DEST_TELEMATICS_ID = 0x0008
    SOURCE_ADDR_SUBUNIT = 0x000D
    SOURCE_NETWORK_TYPE = 0x000E
    SOURCE_BEARER_TYPE = 0x000F
    SOURCE_TELEMATICS_ID = 0x0010
    QOS_TIME_TO_LIVE = 0x0017
    PAYLOAD_TYPE = 0x0019
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D
    RECEIPTED_MESSAGE_ID = 0x001E
    MS_MSG_WAIT_FACILITIES = 0x0030
    PRIVACY_INDICATOR = 0x0201
    SOURCE_SUBADDRESS = 0x0202
    DEST_SUBADDRESS = 0x0203
    USER_MESSAGE_REFERENCE = 0x0204
    USER_RESPONSE_CODE = 0x0205
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    LANGUAGE_INDICATOR = 0x020D
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    CALLBACK_NUM_PRES_IND = 0x0302
    CALLBACK_NUM_ATAG = 0x0303
    NUMBER_OF_MESSAGES = 0x0304
    CALLBACK_NUM = 0x0381
    DPF_RESULT = 0x0420
    SET_DPF = 0x0421
    MS_AVAILABILITY_STATUS = 0x0422
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    DELIVERY_FAILURE_REASON = 0x0425
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427
    USSD_SERVICE_OP = 0x0501
    DISPLAY_TIME = 0x1201
    SMS_SIGNAL = 0x1203
    MS_VALIDITY = 0x1204
    ALERT_ON_MESSAGE_DELIVERY = 0x130C
    ITS_REPLY_TYPE = 0x1380
    ITS_SESSION_INFO = 0x1383
    # The provider's DLT tags, named here only so that a decoded PDU shows them by name; what
    # they carry and how to fill them is smppgw.provider.dlt.
    PE_ID = 0x1400
    TEMPLATE_ID = 0x1401
    TM_ID = 0x1402


class MessageState(_OpenIntEnum):
    """message_state TLV values (SMPP v3.4 section 5.2.28)."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8

    @property
    def is_final(self) -> bool:
        return self not in (MessageState.ENROUTE, MessageState.ACCEPTED, MessageState.UNKNOWN)


class Ton(_OpenIntEnum):
    """Type of number (SMPP v3.4 section 5.2.5)."""

    UNKNOWN = 0
    INTERNATIONAL = 1
    NATIONAL = 2
    NETWORK_SPECIFIC = 3
    SUBSCRIBER_NUMBER = 4
    ALPHANUMERIC = 5
    ABBREVIATED = 6


class Npi(_OpenIntEnum):
    """Numbering plan indicator (SMPP v3.4 section 5.2.6)."""

    UNKNOWN = 0
    ISDN = 1
    DATA = 3
    TELEX = 4
    LAND_MOBILE = 6
    NATIONAL = 8
    PRIVATE = 9
    ERMES = 10
    INTERNET = 14
    WAP_CLIENT_ID = 18


class DataCoding(_OpenIntEnum):
    """data_coding values (SMPP v3.4 section 5.2.19) the provider documents, plus common ones."""

    DEFAULT = 0x00  # GSM 03.38 at this provider
    IA5 = 0x01  # accepted by the provider, discouraged
    OCTET_UNSPECIFIED = 0x02
    LATIN_1 = 0x03
    OCTET_UNSPECIFIED_2 = 0x04
    JIS = 0x05
    CYRILLIC = 0x06
    LATIN_HEBREW = 0x07
    UCS2 = 0x08
    PICTOGRAM = 0x09
    ISO_2022_JP = 0x0A
    EXTENDED_KANJI = 0x0D
    KS_C_5601 = 0x0E
    GSM_FLASH = 0x10  # message class 0 with the default alphabet
    UCS2_FLASH = 0x18  # message class 0 with UCS-2


class EsmClass(IntFlag):
    """esm_class bits (SMPP v3.4 section 5.2.12). An IntFlag keeps any bit pattern."""

    DEFAULT = 0x00
    DATAGRAM_MODE = 0x01
    FORWARD_MODE = 0x02
    STORE_AND_FORWARD_MODE = 0x03
    DELIVERY_RECEIPT = 0x04
    SME_DELIVERY_ACK = 0x08
    USER_ACK = 0x10
    INTERMEDIATE_NOTIFICATION = 0x20
    UDHI = 0x40
    REPLY_PATH = 0x80

    TYPE_MASK = 0x3C


class RegisteredDelivery(IntFlag):
    """registered_delivery bits (SMPP v3.4 section 5.2.17)."""

    NONE = 0x00
    FINAL = 0x01  # receipt on final success or failure
    FAILURE = 0x02  # receipt on failure only
    SME_ACK_DELIVERY = 0x04
    SME_ACK_MANUAL = 0x08
    INTERMEDIATE = 0x10
