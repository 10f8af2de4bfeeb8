"""Typed errors of the codec.

Every error raised while decoding carries the :class:`CommandStatus` a peer should be answered
with (in a generic_nack or in the response to the offending request), so a session never has to
guess. Random bytes fed to :func:`smppgw.codec.decode` raise only :class:`DecodeError`.
"""

from __future__ import annotations

from .constants import CommandStatus

__all__ = [
    "DecodeError",
    "EncodeError",
    "FrameTooLargeError",
    "InvalidCommandIdError",
    "InvalidCommandLengthError",
    "InvalidFieldError",
    "InvalidTlvError",
    "SmppError",
]


class SmppError(Exception):
    """Root of every error smppgw raises."""


class DecodeError(SmppError):
    """Bytes that are not a valid PDU.

    Attributes:
        status: the command_status to answer the peer with.
        sequence_number: the offending PDU's sequence_number when the header could be read
            (so the generic_nack can echo it), else 0.
        command_id: the offending PDU's command_id when it could be read, else None.
    """

    default_status = CommandStatus.ESME_RSYSERR

    def __init__(
        self,
        message: str,
        *,
        status: CommandStatus | None = None,
        sequence_number: int = 0,
        command_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status if status is not None else self.default_status
        self.sequence_number = sequence_number
        self.command_id = command_id


class InvalidCommandLengthError(DecodeError):
    """command_length out of bounds or disagreeing with the body (ESME_RINVCMDLEN)."""

    default_status = CommandStatus.ESME_RINVCMDLEN


class FrameTooLargeError(InvalidCommandLengthError):
    """command_length above the configured maximum; refused before any body is buffered."""


class InvalidCommandIdError(DecodeError):
    """A command_id this codec does not know (ESME_RINVCMDID)."""

    default_status = CommandStatus.ESME_RINVCMDID


class InvalidFieldError(DecodeError):
    """A mandatory field is malformed: C-string too long or unterminated, sm_length mismatch."""

    default_status = CommandStatus.ESME_RINVCMDLEN


class InvalidTlvError(DecodeError):
    """The optional-parameter part is malformed (ESME_RINVTLVSTREAM)."""

    default_status = CommandStatus.ESME_RINVTLVSTREAM


class EncodeError(SmppError, ValueError):
    """A PDU whose fields cannot be put on the wire (a value out of range, a string too long)."""
