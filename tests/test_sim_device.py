"""The simulated device's mailbox, command by command, with any input.

Every opcode the full-profile device lists in its CEL is driven with valid-length
and random payloads: it answers a spec return code, never raises, never returns more
than payload_max, and on Success returns at least the catalogue's fixed output size
-- what a driver is entitled to expect of a device.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxlctl import mailbox as mb
from cxlctl.sim import make_devices
from cxlctl.sim.device.model import TypeThreeDevice

DEV = make_devices(["mixed"])[0].device
OPCODES = sorted(DEV.cel)


def fresh() -> TypeThreeDevice:
    return make_devices(["mixed"])[0].device


def test_the_full_profile_lists_every_handled_command() -> None:
    from cxlctl.sim.device.model import HANDLERS

    assert set(OPCODES) == set(HANDLERS)
    assert all(op in mb.BY_OPCODE for op in OPCODES)  # every one has a catalogue record


@pytest.mark.parametrize("opcode", OPCODES, ids=[f"{o:#06x}" for o in OPCODES])
def test_zeroed_input_of_the_right_size(opcode: int) -> None:
    cmd = mb.BY_OPCODE[opcode]
    dev = fresh()
    rc, out = dev.execute(opcode, bytes(cmd.size_in or 0))
    assert rc in set(mb.ReturnCode)
    assert len(out) <= dev.config.payload_max
    if rc == mb.ReturnCode.SUCCESS and cmd.size_out:
        assert len(out) >= cmd.size_out, cmd.name
    if rc == mb.ReturnCode.SUCCESS and cmd.has_decoder:
        cmd.decode(out)  # the device's own output decodes


@pytest.mark.parametrize("opcode", OPCODES, ids=[f"{o:#06x}" for o in OPCODES])
def test_wrong_fixed_input_length_is_invalid_payload_length(opcode: int) -> None:
    cmd = mb.BY_OPCODE[opcode]
    if cmd.size_in is None:
        pytest.skip("variable-length input")
    rc, out = fresh().execute(opcode, bytes(cmd.size_in + 1))
    assert (rc, out) == (mb.ReturnCode.INVALID_PAYLOAD_LENGTH, b"")


def test_an_opcode_outside_the_cel_is_unsupported() -> None:
    assert fresh().execute(0x7777, b"") == (mb.ReturnCode.UNSUPPORTED, b"")


@settings(max_examples=300, deadline=None)
@given(opcode=st.sampled_from(OPCODES), data=st.data())
def test_random_input_gets_a_spec_answer(opcode: int, data: st.DataObject) -> None:
    cmd = mb.BY_OPCODE[opcode]
    size = cmd.size_in if cmd.size_in is not None else data.draw(st.integers(0, 96))
    payload = data.draw(st.binary(min_size=size, max_size=size))
    dev = fresh()
    rc, out = dev.execute(opcode, payload)
    assert rc in set(mb.ReturnCode)
    assert len(out) <= dev.config.payload_max
    if rc != mb.ReturnCode.SUCCESS:
        assert out == b""
