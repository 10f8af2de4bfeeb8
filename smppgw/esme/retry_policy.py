"""What to do with a submit_sm_resp status: the classification table, as data.

A negative submit_sm_resp means the SMSC did *not* accept the message (SMPP v3.4 section 4.4.2:
the message_id is only meaningful when command_status is ESME_ROK), so resubmitting after any
negative status can never duplicate a message; classifying a status as retryable costs only time
and a token. Losing a message the SMSC would have taken a moment later costs the message. That
asymmetry decides the doubtful cases below in favour of a bounded retry.

The table covers every status of the provider's "Submit Responses" table
(:class:`~smppgw.codec.constants.CommandStatus`). Deployments override single entries through
configuration (``status_overrides``), so a vendor's own meaning of a code wins without a release.

Baseline: Kannel (``gw/smsc/smsc_smpp.c``, ``smpp_status_to_smscconn_failure_reason``) treats
exactly ESME_RMSGQFUL, ESME_RTHROTTLED, ESME_RX_T_APPN and ESME_RSYSERR as temporary and every
other status as a rejection; this table agrees and adds the decisions documented per entry.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from smppgw.codec.constants import CommandStatus

__all__ = [
    "DEFAULT_STATUS_CLASSES",
    "DEFAULT_UNKNOWN_STATUS_CLASS",
    "StatusClass",
    "StatusPolicy",
    "UnknownPolicy",
    "classify",
]


class StatusClass(enum.Enum):
    """How the bind manager reacts to a submit response status."""

    OK = "ok"
    """Accepted: the message_id identifies the message at the SMSC."""
    THROTTLED = "throttled"
    """Too fast for the server: pause that server and requeue the part first in line. Never
    counts as a failed attempt and never fails the message."""
    TRANSIENT = "transient"
    """Not accepted now, probably later: retry after ``retry_delay``, up to ``max_attempts``."""
    PERMANENT = "permanent"
    """Resending the same PDU will be refused again: fail the part."""


class UnknownPolicy(enum.Enum):
    """What to do with a submit whose response never came (timeout, link lost).

    The SMSC may or may not have accepted such a submit. Resubmitting risks a duplicate SMS;
    not resubmitting risks a lost one. Whatever the policy, the outcome is reported (the
    observer's ``submit_unknown``) and a resubmitted part is flagged ``possible_duplicate``.
    """

    RESUBMIT_ONCE = "resubmit_once"
    """Resubmit once (default): a single lost response costs at most one duplicate; if the
    resubmission is also unanswered the part is reported UNKNOWN."""
    NEVER = "never"
    """Never resubmit: the part is reported UNKNOWN at once (at-most-once toward the SMSC)."""
    ALWAYS = "always"
    """Resubmit until a response comes, up to ``max_attempts`` attempts in all."""


_T = StatusClass.TRANSIENT
_P = StatusClass.PERMANENT

# Keys are plain ints so that vendor codes and config overrides share one key space.
_TABLE: dict[int, StatusClass] = {
    CommandStatus.ESME_ROK: StatusClass.OK,
    CommandStatus.ESME_RTHROTTLED: StatusClass.THROTTLED,
    # --- transient ---------------------------------------------------------------------
    # Queue full: the SMSC is overloaded; the message itself is fine (Kannel: temporary).
    CommandStatus.ESME_RMSSQFUL: _T,
    # System error: the SMSC's own fault, typically short-lived (Kannel: temporary).
    CommandStatus.ESME_RSYSERR: _T,
    # "ESME Receiver Temporary App Error": temporary by definition (SMPP v3.4 5.1.3).
    CommandStatus.ESME_RX_T_APPN: _T,
    # "Transaction delivery failure": in SMPP v3.4 a data_sm transaction-mode failure to reach
    # the handset; for a store-and-forward submit the provider uses it as a network-side
    # failure that can clear (absent subscriber, congested route). Bounded retry.
    CommandStatus.ESME_RDELIVERYFAILURE: _T,
    # "Unknown error": nothing says a retry is futile, and it cannot duplicate. Bounded retry.
    CommandStatus.ESME_RUNKNOWNERR: _T,
    # "Submitting a message has failed": generic, says nothing about the message; many SMSCs
    # return it for internal routing hiccups. Bounded retry; override to PERMANENT if a
    # vendor uses it for content rejections.
    CommandStatus.ESME_RSUBMITFAIL: _T,
    # "Incorrect binding status": the *bind* was not in a state to submit (e.g. being
    # unbound by the SMSC); the message is fine and goes out on another bind.
    CommandStatus.ESME_RINVBNDSTS: _T,
    # --- permanent: the PDU itself is wrong (length, command, flags, addresses, coding) -----
    CommandStatus.ESME_RINVMSGLEN: _P,
    CommandStatus.ESME_RINVCMDLEN: _P,
    CommandStatus.ESME_RINVCMDID: _P,
    CommandStatus.ESME_RINVPRTFLG: _P,
    CommandStatus.ESME_RINVREGDLVFLG: _P,
    CommandStatus.ESME_RINVSRCADR: _P,
    CommandStatus.ESME_RINVDSTADR: _P,
    CommandStatus.ESME_RINVMSGID: _P,
    CommandStatus.ESME_RINVSERTYP: _P,
    CommandStatus.ESME_RINVNUMDESTS: _P,
    CommandStatus.ESME_RINVDLNAME: _P,
    CommandStatus.ESME_RINVDESTFLAG: _P,
    CommandStatus.ESME_RINVSUBREP: _P,
    CommandStatus.ESME_RINVESMCLASS: _P,
    CommandStatus.ESME_RCNTSUBDL: _P,
    CommandStatus.ESME_RINVSRCTON: _P,
    CommandStatus.ESME_RINVSRCNPI: _P,
    CommandStatus.ESME_RINVDSTTON: _P,
    CommandStatus.ESME_RINVDSTNPI: _P,
    CommandStatus.ESME_RINVREPFLAG: _P,
    CommandStatus.ESME_RINVNUMMSGS: _P,
    CommandStatus.ESME_RINVSCHED: _P,
    CommandStatus.ESME_RINVEXPIRY: _P,
    CommandStatus.ESME_RINVDFTMSGID: _P,
    CommandStatus.ESME_RINVTLVSTREAM: _P,
    CommandStatus.ESME_RTLVNOTALLWD: _P,
    CommandStatus.ESME_RINVTLVLEN: _P,
    CommandStatus.ESME_RMISSINGTLV: _P,
    CommandStatus.ESME_RINVTLVVAL: _P,
    CommandStatus.ESME_RINVDCS: _P,
    CommandStatus.ESME_RINVSRCADDRSUBUNIT: _P,
    CommandStatus.ESME_RINVSTDADDRSUBUNIR: _P,
    # --- permanent: the account may not do this (credentials, rights, credit) --------------
    # A retry within minutes will not change an account setting; a top-up (RINVBALANCE) is a
    # human action, after which the application resubmits.
    CommandStatus.ESME_RALYBND: _P,
    CommandStatus.ESME_RBINDFAIL: _P,
    CommandStatus.ESME_RINVPASWD: _P,
    CommandStatus.ESME_RINVSYSID: _P,
    CommandStatus.ESME_RINVSYSTYP: _P,
    CommandStatus.ESME_RSERTYPUNAUTH: _P,
    CommandStatus.ESME_RPROHIBITED: _P,
    CommandStatus.ESME_RSERTYPUNAVAIL: _P,
    CommandStatus.ESME_RSERTYPDENIED: _P,
    CommandStatus.ESME_RINVBALANCE: _P,
    # --- permanent: rejections by definition ------------------------------------------------
    CommandStatus.ESME_RX_P_APPN: _P,
    CommandStatus.ESME_RX_R_APPN: _P,
    # Answers to cancel_sm / replace_sm / query_sm; should a submit get one, nothing suggests
    # the same PDU would fare better.
    CommandStatus.ESME_RCANCELFAIL: _P,
    CommandStatus.ESME_RREPLACEFAIL: _P,
    CommandStatus.ESME_RQUERYFAIL: _P,
}

DEFAULT_STATUS_CLASSES: Final[Mapping[int, StatusClass]] = MappingProxyType(_TABLE)
"""The default class of every status in the provider's table (read-only)."""

DEFAULT_UNKNOWN_STATUS_CLASS: Final = StatusClass.TRANSIENT
"""The class of a status the table does not name (a vendor code). TRANSIENT: a negative
response cannot have been accepted, so a bounded retry risks no duplicate, while failing at once
could lose a message the SMSC would take a moment later. Override per code in configuration."""


def classify(
    status: int,
    overrides: Mapping[int, StatusClass] | None = None,
    *,
    unknown: StatusClass = DEFAULT_UNKNOWN_STATUS_CLASS,
) -> StatusClass:
    """Classify a response's command_status.

    Args:
        status: the command_status (a :class:`CommandStatus` or any vendor int).
        overrides: per-status classes from configuration; they win over the default table.
        unknown: the class of a status neither ``overrides`` nor the table names.

    Returns:
        The :class:`StatusClass` to act on; ESME_ROK is always OK (an override cannot turn an
        accepted submit into a retry, which would send a duplicate).
    """
    key = int(status)
    if key == CommandStatus.ESME_ROK:
        return StatusClass.OK
    if overrides is not None and key in overrides:
        return overrides[key]
    return _TABLE.get(key, unknown)


@dataclass(frozen=True, slots=True)
class StatusPolicy:
    """The default table with configured overrides, frozen into one lookup (ESME_ROK stays OK)."""

    overrides: Mapping[int, StatusClass] = field(default_factory=dict)
    unknown: StatusClass = DEFAULT_UNKNOWN_STATUS_CLASS
    _merged: Mapping[int, StatusClass] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        merged = dict(_TABLE)
        merged.update({int(k): v for k, v in self.overrides.items()})
        merged[int(CommandStatus.ESME_ROK)] = StatusClass.OK
        object.__setattr__(self, "_merged", MappingProxyType(merged))

    def classify(self, status: int) -> StatusClass:
        """Classify ``status`` with the overrides applied (see :func:`classify`)."""
        return self._merged.get(int(status), self.unknown)
