"""TLS settings for SMPP sessions: verification on by default, TLS 1.0 or better accepted.

The provider accepts "TLS1.0 or better"; the minimum is configurable so an operator can raise it.
A failed handshake is explained in words (:meth:`TlsSettings.explain_failure`): OpenSSL's reason
when the server sent an alert, and when it only dropped the connection, the version it speaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from smppgw.esme.settings import setting

__all__ = ["TLS_VERSIONS", "TlsSettings", "is_handshake_failure"]

TLS_VERSIONS: Final[dict[str, ssl.TLSVersion]] = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
_VERSION_NAMES: Final = tuple(TLS_VERSIONS)

# OpenSSL reasons meaning the two sides share no protocol version.
_VERSION_REASONS: Final = frozenset(
    {
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "UNSUPPORTED_PROTOCOL",
        "NO_PROTOCOLS_AVAILABLE",
        "VERSION_TOO_LOW",
        "VERSION_TOO_HIGH",
    }
)


def is_handshake_failure(exc: BaseException) -> bool:
    """Whether an error opening a TLS connection came from the handshake, after TCP connected.

    A refused or unreachable TCP connect raises ConnectionRefusedError or another OSError; a
    reset or abort can only come once connected, so during the handshake.
    """
    return isinstance(exc, ssl.SSLError | ConnectionResetError | ConnectionAbortedError)


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """How to open a TLS session.

    Attributes:
        ca_file: CA bundle to verify the server with; None uses the system trust store.
        cert_file, key_file: a client certificate, when the server asks for one.
        server_name: the name to verify and send as SNI; None uses the host connected to.
        verify: verify the server's certificate and name (on by default).
        minimum_version: the lowest protocol version offered.
    """

    ca_file: str | None = setting(None, path=True)
    cert_file: str | None = setting(None, path=True)
    key_file: str | None = setting(None, path=True)
    server_name: str | None = None
    verify: bool = True
    minimum_version: str = setting("TLSv1", key="min_version", choices=_VERSION_NAMES)

    @classmethod
    def problems(cls, values: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Every problem of settings made of ``values`` (field: value), as (field, problem)."""
        if (values.get("cert_file") is None) != (values.get("key_file") is None):
            return [("cert_file", "cert_file and key_file go together")]
        return []

    def context(self) -> ssl.SSLContext:
        """A client SSLContext for these settings.

        Raises:
            ValueError: an unknown ``minimum_version``.
            OSError / ssl.SSLError: unreadable certificate or key files.
        """
        if self.minimum_version not in TLS_VERSIONS:
            raise ValueError(
                f"tls minimum_version {self.minimum_version!r}: one of {', '.join(TLS_VERSIONS)}"
            )
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        minimum = TLS_VERSIONS[self.minimum_version]
        if minimum < ssl.TLSVersion.TLSv1_2:
            # OpenSSL's default security level refuses TLS < 1.2; the provider allows 1.0.
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            # Python deprecates TLS 1.0/1.1; the provider still accepts them, so they stay
            # selectable, deliberately.
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = minimum
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def explain_failure(
        self,
        exc: BaseException,
        host: str,
        port: int,
        timeout: float,  # noqa: ASYNC109 - bounds the one probe connection
    ) -> str:
        """Why a handshake failed, in words (``unsupported protocol version: ...``).

        A server that drops the connection without a TLS alert (a reset) says nothing: then one
        more connection, offering every version and verifying nothing, asks it which version
        it speaks, and the answer is compared with ``minimum_version``.
        """
        if isinstance(exc, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {exc.verify_message}"
        if isinstance(exc, ssl.SSLError):
            reason = exc.reason or ""
            if reason in _VERSION_REASONS:
                return f"unsupported protocol version (min_version {self.minimum_version})"
            if reason == "WRONG_VERSION_NUMBER":  # the answer is not TLS at all
                return "the server does not speak TLS (a plain port?)"
            return reason.lower().replace("_", " ") if reason else str(exc)
        spoken = None
        if self.minimum_version != "TLSv1":
            spoken = await self._version_spoken(host, port, timeout)
        if spoken in TLS_VERSIONS and TLS_VERSIONS[spoken] < TLS_VERSIONS[self.minimum_version]:
            return (
                f"unsupported protocol version: the server speaks {spoken}, "
                f"min_version is {self.minimum_version}"
            )
        return "the server closed the connection during the handshake"

    async def _version_spoken(self, host: str, port: int, timeout: float) -> str | None:  # noqa: ASYNC109
        """The TLS version the server negotiates when offered all of them (None: no answer)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only the version is read; nothing is sent
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(
                    host, port, ssl=context, server_hostname=self.server_name or host
                )
        except (OSError, TimeoutError):
            return None
        ssl_object = writer.get_extra_info("ssl_object")
        version = ssl_object.version() if isinstance(ssl_object, ssl.SSLObject) else None
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(timeout):
                await writer.wait_closed()
        return version
