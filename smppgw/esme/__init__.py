"""smppgw.esme: the asyncio ESME library (standard library, :mod:`smppgw.codec` and
:mod:`smppgw.provider` only).

One bind is a :class:`Session`; many binds over several servers, with a throughput budget per
server, failover and resubmission, are a :class:`BindManager`. :func:`submit_text` sends a text
through either in one call (coding, splitting, DLT ids, receipt request) and
:class:`ReceiptTracker` matches the receipts that come back on any bind to what was sent.
Everything here is also importable from its module; the names below are the public API.
"""

from smppgw.esme.bind_settings import (
    BindManagerError,
    BindManagerSettings,
    BindSettingsError,
    ManagerStoppedError,
    ServerSettings,
)
from smppgw.esme.bind_state import (
    BindState,
    BindStatus,
    CircuitState,
    OnPart,
    OnSend,
    PartResult,
    PartStatus,
    ServerRate,
    SessionFactory,
    SessionLike,
)
from smppgw.esme.binds import BindManager
from smppgw.esme.messages import Coding, PduSubmitter, TextResult, submit_text, text_parts
from smppgw.esme.numbers import NumberError, Sender, SenderKind, validate_msisdn, validate_sender
from smppgw.esme.observe import NULL_OBSERVER, NullObserver, Observer, RecordingObserver
from smppgw.esme.ratelimit import AdaptiveRate, RateLimitSettingsError, TokenBucket
from smppgw.esme.receipts import (
    FINAL_STATES,
    Dlr,
    dlr_from_pdu,
    id_candidates,
    is_receipt,
    normalize_message_id,
    user_data,
)
from smppgw.esme.retry_policy import StatusClass, StatusPolicy, UnknownPolicy, classify
from smppgw.esme.session import (
    BindError,
    BindType,
    ConnectError,
    InboundHandler,
    LinkLostError,
    NotSentError,
    Origin,
    ResponseTimeoutError,
    Session,
    SessionClosedError,
    SessionError,
    SessionSettings,
    inbound_origin,
)
from smppgw.esme.slots import SlotGrant, SlotSource
from smppgw.esme.tls import TlsSettings
from smppgw.esme.tracker import OnMessage, OnReceipt, ReceiptMatch, ReceiptTracker

__all__ = [
    "FINAL_STATES",
    "NULL_OBSERVER",
    "AdaptiveRate",
    "BindError",
    "BindManager",
    "BindManagerError",
    "BindManagerSettings",
    "BindSettingsError",
    "BindState",
    "BindStatus",
    "BindType",
    "CircuitState",
    "Coding",
    "ConnectError",
    "Dlr",
    "InboundHandler",
    "LinkLostError",
    "ManagerStoppedError",
    "NotSentError",
    "NullObserver",
    "NumberError",
    "Observer",
    "OnMessage",
    "OnPart",
    "OnReceipt",
    "OnSend",
    "Origin",
    "PartResult",
    "PartStatus",
    "PduSubmitter",
    "RateLimitSettingsError",
    "ReceiptMatch",
    "ReceiptTracker",
    "RecordingObserver",
    "ResponseTimeoutError",
    "Sender",
    "SenderKind",
    "ServerRate",
    "ServerSettings",
    "Session",
    "SessionClosedError",
    "SessionError",
    "SessionFactory",
    "SessionLike",
    "SessionSettings",
    "SlotGrant",
    "SlotSource",
    "StatusClass",
    "StatusPolicy",
    "TextResult",
    "TlsSettings",
    "TokenBucket",
    "UnknownPolicy",
    "classify",
    "dlr_from_pdu",
    "id_candidates",
    "inbound_origin",
    "is_receipt",
    "normalize_message_id",
    "submit_text",
    "text_parts",
    "user_data",
    "validate_msisdn",
    "validate_sender",
]
