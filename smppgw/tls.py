"""TLS settings for SMPP sessions: verification on by default, TLS 1.0 or better accepted.

The provider accepts "TLS1.0 or better"; the minimum is configurable so an operator can raise it.
"""

from __future__ import annotations

import ssl
import warnings
from dataclasses import dataclass
from typing import Final

__all__ = ["TLS_VERSIONS", "TlsSettings"]

TLS_VERSIONS: Final[dict[str, ssl.TLSVersion]] = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


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

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    verify: bool = True
    minimum_version: str = "TLSv1"

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
