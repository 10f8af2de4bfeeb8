"""Splitting a byte stream into PDUs (SMPP v3.4 section 3.2: command_length leads every PDU).

The framer checks ``16 <= command_length <= max_length`` as soon as the four length octets are
in, before buffering any body, so a peer cannot make us hold an arbitrary amount of memory. A
bad length leaves the stream unsynchronisable: the framer stays failed and the connection must
be closed (after a generic_nack with ESME_RINVCMDLEN).
"""

from __future__ import annotations

from .errors import FrameTooLargeError, InvalidCommandLengthError
from .pdu import DEFAULT_MAX_COMMAND_LENGTH, HEADER_LENGTH

__all__ = ["Framer"]


class Framer:
    """Accumulates received octets and hands out complete PDUs' octets.

    Args:
        max_length: the largest command_length accepted (default 64 KiB).
    """

    __slots__ = ("_buffer", "_error", "max_length")

    def __init__(self, max_length: int = DEFAULT_MAX_COMMAND_LENGTH) -> None:
        if max_length < HEADER_LENGTH:
            raise ValueError(f"max_length {max_length} is below the 16-octet header")
        self.max_length = max_length
        self._buffer = bytearray()
        self._error: InvalidCommandLengthError | None = None

    @property
    def buffered(self) -> int:
        """Octets held that do not yet make a complete PDU."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add received octets; return every PDU completed by them, in order.

        Raises:
            InvalidCommandLengthError: a command_length below 16 or above ``max_length``
                (:class:`FrameTooLargeError`). PDUs completed before the bad one are lost
                to the caller only if it does not catch this error; the framer then refuses
                further input with the same error.
        """
        if self._error is not None:
            raise self._error
        buf = self._buffer
        if buf:
            buf += data
            view: bytes | bytearray = buf
        else:
            # Fast path: nothing pending, read straight from the caller's buffer.
            view = data if isinstance(data, bytes) else bytes(data)
        frames: list[bytes] = []
        pos = 0
        end = len(view)
        max_length = self.max_length
        while end - pos >= 4:
            length = int.from_bytes(view[pos : pos + 4], "big")
            if length < HEADER_LENGTH or length > max_length:
                self._error = self._length_error(length)
                # Keep what was framed so far out of the buffer; report the failure.
                raise self._error
            if end - pos < length:
                break
            frames.append(bytes(view[pos : pos + length]))
            pos += length
        if buf:
            del buf[:pos]
        elif pos < end:
            buf += view[pos:]
        return frames

    def _length_error(self, length: int) -> InvalidCommandLengthError:
        if length > self.max_length:
            return FrameTooLargeError(
                f"command_length {length} exceeds the maximum of {self.max_length}"
            )
        return InvalidCommandLengthError(f"command_length {length} is below the 16-octet header")
