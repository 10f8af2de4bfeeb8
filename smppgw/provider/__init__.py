"""smppgw.provider: what is particular to the provider, kept out of the generic SMPP layers.

Its receipts' error codes and refusal words (:mod:`smppgw.provider.dlr_errors`) and its DLT
optional parameters (:mod:`smppgw.provider.dlt`). Standard library and :mod:`smppgw.codec`
only; the ESME library and the gateway build on it. The DLT tags stay named in
:class:`smppgw.codec.Tag` so that a decoded PDU prints them by name, but what they mean and how
they are filled is here.
"""

from smppgw.provider.dlr_errors import (
    DLR_ERROR_CODES,
    REJECTION_WORDS,
    DlrErrorCode,
    is_rejection,
    lookup_dlr_error,
)
from smppgw.provider.dlt import DltIds, dlt_ids, dlt_tlvs

__all__ = [
    "DLR_ERROR_CODES",
    "REJECTION_WORDS",
    "DlrErrorCode",
    "DltIds",
    "dlt_ids",
    "dlt_tlvs",
    "is_rejection",
    "lookup_dlr_error",
]
