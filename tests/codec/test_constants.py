"""Protocol constants are open enums: values the codec does not name survive, with a name that
says so, and a status the provider's table does not describe reads as such."""

from __future__ import annotations

import pytest

from smppgw.codec import CommandId, CommandStatus


def test_an_unknown_command_id_is_kept_with_an_unknown_name() -> None:
    vendor = CommandId(0x00010200)
    assert vendor == 0x00010200
    assert isinstance(vendor, CommandId)
    assert vendor.name == "UNKNOWN_0x00010200"
    assert not vendor.is_response
    assert CommandId(0x80010200).is_response


def test_responses_are_the_command_ids_with_the_top_bit() -> None:
    assert CommandId.SUBMIT_SM_RESP.is_response
    assert not CommandId.SUBMIT_SM.is_response
    assert [c for c in CommandId if c.is_response] == [c for c in CommandId if c & 0x80000000]


def test_only_integers_become_pseudo_members() -> None:
    with pytest.raises(ValueError, match="is not a valid CommandStatus"):
        CommandStatus("0x58")  # type: ignore[arg-type]


def test_a_status_reads_the_provider_description_or_says_it_is_unknown() -> None:
    assert CommandStatus.ESME_ROK.description == "No Error"
    assert CommandStatus(0x00000401).description == "Unknown or vendor-specific error"
    assert CommandStatus(0x00000401).name == "UNKNOWN_0x00000401"
