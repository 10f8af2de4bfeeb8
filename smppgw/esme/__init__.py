"""smppgw.esme: the asyncio ESME library (standard library and :mod:`smppgw.codec` only).

One bind is a :class:`~smppgw.esme.session.Session`; many binds over several servers, with a
throughput budget per server, failover and resubmission, are a
:class:`~smppgw.esme.binds.BindManager`.
"""
