"""A probe link: one connection speaking SMPP through the codec on plain asyncio streams,
independent of the session layer, so that every step of opening a bind can be timed and
named on its own."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import replace

from smppgw.codec import (
    DecodeError,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    Framer,
    GenericNack,
    Pdu,
    Unbind,
    UnbindResp,
    decode,
    encode,
)

__all__ = ["LinkClosedError", "Probe"]


class LinkClosedError(Exception):
    """The server closed the connection."""


class Probe:
    """One connection speaking SMPP through the codec: requests matched by sequence number,
    enquire_link, deliver_sm and unbind from the server answered, receipts collected."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        receipts: asyncio.Queue[tuple[str, DeliverSm]],
        server: str,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._receipts = receipts
        self._server = server
        self._framer = Framer()
        self._sequence = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._task = asyncio.get_running_loop().create_task(self._read())
        self.closed_at: float | None = None

    async def request(self, pdu: Pdu, timeout: float) -> Pdu:  # noqa: ASYNC109
        """Send ``pdu`` with the next sequence number and return its response.

        Raises:
            LinkClosedError: the server closed the connection before answering.
            TimeoutError: no response in ``timeout`` seconds.
        """
        sequence = next(self._sequence)
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        if self._task.done():
            raise LinkClosedError
        self._pending[sequence] = future
        self._writer.write(encode(replace(pdu, sequence_number=sequence)))
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._pending.pop(sequence, None)

    async def _read(self) -> None:
        try:
            while data := await self._reader.read(65536):
                for frame in self._framer.feed(data):
                    self._handle(decode(frame))
        except (OSError, DecodeError):
            pass
        finally:
            self.closed_at = time.monotonic()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(LinkClosedError())

    def _handle(self, pdu: Pdu) -> None:
        if isinstance(pdu, EnquireLink):
            self._writer.write(encode(EnquireLinkResp(sequence_number=pdu.sequence_number)))
        elif isinstance(pdu, DeliverSm):
            self._writer.write(encode(DeliverSmResp(sequence_number=pdu.sequence_number)))
            self._receipts.put_nowait((self._server, pdu))
        elif isinstance(pdu, Unbind):
            self._writer.write(encode(UnbindResp(sequence_number=pdu.sequence_number)))
        elif type(pdu).command_id & 0x80000000 or isinstance(pdu, GenericNack):
            future = self._pending.get(pdu.sequence_number)
            if future is not None and not future.done():
                future.set_result(pdu)

    async def close(self, timeout: float) -> None:  # noqa: ASYNC109
        """Unbind (if the link is up) and close, waiting at most ``timeout`` for each."""
        if not self._task.done():
            with contextlib.suppress(LinkClosedError, TimeoutError, OSError):
                await self.request(Unbind(), timeout)
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(timeout):
                await self._writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
