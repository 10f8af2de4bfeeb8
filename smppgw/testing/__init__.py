"""smppgw.testing: an SMSC simulator to run and test ESMEs against, on loopback.

Standard library, :mod:`smppgw.codec` and :mod:`smppgw.esme` only; its TLS ports make their
certificate with ``trustme`` (``smppgw[simulator]``).
"""
