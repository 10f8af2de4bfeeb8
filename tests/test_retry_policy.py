"""The submit-status classification table: complete, decided, overridable."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.codec.constants import CommandStatus
from smppgw.esme.retry_policy import (
    DEFAULT_STATUS_CLASSES,
    DEFAULT_UNKNOWN_STATUS_CLASS,
    StatusClass,
    StatusPolicy,
    UnknownPolicy,
    classify,
)

TRANSIENT = {
    CommandStatus.ESME_RMSSQFUL,
    CommandStatus.ESME_RSYSERR,
    CommandStatus.ESME_RX_T_APPN,
    CommandStatus.ESME_RDELIVERYFAILURE,
    CommandStatus.ESME_RUNKNOWNERR,
    CommandStatus.ESME_RSUBMITFAIL,
    CommandStatus.ESME_RINVBNDSTS,
}


def test_every_named_status_is_in_the_table() -> None:
    named = {int(member) for member in CommandStatus.__members__.values()}
    assert set(DEFAULT_STATUS_CLASSES) == named


def test_only_ok_is_ok_and_only_throttled_is_throttled() -> None:
    by_class: dict[StatusClass, set[int]] = {c: set() for c in StatusClass}
    for status, cls in DEFAULT_STATUS_CLASSES.items():
        by_class[cls].add(status)
    assert by_class[StatusClass.OK] == {0x00}
    assert by_class[StatusClass.THROTTLED] == {0x58}
    assert by_class[StatusClass.TRANSIENT] == {int(s) for s in TRANSIENT}


@pytest.mark.parametrize(
    "status",
    [
        CommandStatus.ESME_RINVSRCADR,
        CommandStatus.ESME_RINVDSTADR,
        CommandStatus.ESME_RINVMSGLEN,
        CommandStatus.ESME_RINVDCS,
        CommandStatus.ESME_RINVTLVVAL,
        CommandStatus.ESME_RMISSINGTLV,
        CommandStatus.ESME_RINVPASWD,
        CommandStatus.ESME_RINVBALANCE,
        CommandStatus.ESME_RX_P_APPN,
        CommandStatus.ESME_RX_R_APPN,
        CommandStatus.ESME_RPROHIBITED,
    ],
)
def test_invalid_content_and_account_refusals_are_permanent(status: CommandStatus) -> None:
    assert classify(status) is StatusClass.PERMANENT


def test_the_spec_spelling_of_queue_full_is_the_same_entry() -> None:
    assert classify(CommandStatus.ESME_RMSGQFUL) is StatusClass.TRANSIENT
    assert classify(0x14) is StatusClass.TRANSIENT


@given(st.integers(0, 0xFFFFFFFF).filter(lambda v: v not in DEFAULT_STATUS_CLASSES))
def test_an_unnamed_vendor_status_takes_the_unknown_default(value: int) -> None:
    assert DEFAULT_UNKNOWN_STATUS_CLASS is StatusClass.TRANSIENT
    assert classify(value) is StatusClass.TRANSIENT
    assert classify(CommandStatus(value)) is StatusClass.TRANSIENT
    assert classify(value, unknown=StatusClass.PERMANENT) is StatusClass.PERMANENT
    assert StatusPolicy(unknown=StatusClass.PERMANENT).classify(value) is StatusClass.PERMANENT


def test_configured_overrides_win_over_the_table() -> None:
    overrides = {
        int(CommandStatus.ESME_RSUBMITFAIL): StatusClass.PERMANENT,
        int(CommandStatus.ESME_RINVBALANCE): StatusClass.TRANSIENT,
        0x400: StatusClass.THROTTLED,  # a vendor's own throttling code
    }
    policy = StatusPolicy(overrides)
    assert policy.classify(CommandStatus.ESME_RSUBMITFAIL) is StatusClass.PERMANENT
    assert policy.classify(CommandStatus.ESME_RINVBALANCE) is StatusClass.TRANSIENT
    assert policy.classify(0x400) is StatusClass.THROTTLED
    assert policy.classify(CommandStatus.ESME_RSYSERR) is StatusClass.TRANSIENT  # untouched
    for status, expected in overrides.items():
        assert classify(status, overrides) is expected
    # The defaults themselves are unchanged by building a policy.
    assert DEFAULT_STATUS_CLASSES[int(CommandStatus.ESME_RSUBMITFAIL)] is StatusClass.TRANSIENT


def test_an_override_cannot_turn_an_accepted_submit_into_a_retry() -> None:
    overrides = {0: StatusClass.TRANSIENT}
    assert classify(CommandStatus.ESME_ROK, overrides) is StatusClass.OK
    assert StatusPolicy(overrides).classify(0) is StatusClass.OK


@given(
    st.dictionaries(st.integers(0, 0x500), st.sampled_from(StatusClass), max_size=20),
    st.integers(0, 0x600),
)
def test_policy_object_and_function_agree(overrides: dict[int, StatusClass], status: int) -> None:
    assert StatusPolicy(overrides).classify(status) is classify(status, overrides)


def test_default_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        DEFAULT_STATUS_CLASSES[0x58] = StatusClass.PERMANENT  # type: ignore[index]


def test_unknown_outcome_policies() -> None:
    assert [p.value for p in UnknownPolicy] == ["resubmit_once", "never", "always"]
