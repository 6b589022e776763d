"""The oracle's store and outbox encoding, without a chain: what a crash must not undo or repeat."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain import messages as m
from oracle.bank import bank_reference_hash, business_day_number, end_to_end_id, instruction_id
from oracle.outbox import decode_message, encode_message
from oracle.store import OracleStore, StoreInUse


@pytest.fixture
def store(tmp_path: Path) -> Iterator[OracleStore]:
    opened = OracleStore(tmp_path / "oracle")
    yield opened
    opened.close()


def test_evidence_is_kept_byte_for_byte_under_its_sha256(store: OracleStore) -> None:
    data = b"<Document>statement</Document>"
    digest = store.keep(data, kind="bank-file", source="bank", name="camt053.xml", refs={"seq": 3})
    assert digest == hashlib.sha256(data).hexdigest()
    record, original = store.evidence(digest.upper()) or (None, b"")
    assert original == data
    assert record is not None and record.kind == "bank-file" and record.refs == {"seq": 3}


def test_keeping_the_same_evidence_twice_keeps_one_entry(store: OracleStore) -> None:
    first = store.keep(b"same", kind="k", source="s", name="a")
    second = store.keep(b"same", kind="k", source="s", name="b")
    assert first == second
    assert len(store.evidence_index()) == 1


def test_unknown_evidence_is_none(store: OracleStore) -> None:
    assert store.evidence("00" * 32) is None


def test_a_failed_transaction_moves_no_cursor_and_parks_nothing(store: OracleStore) -> None:
    with pytest.raises(RuntimeError), store.transaction() as db:
        OracleStore.move_cursor(db, "bank:files", "7")
        OracleStore.park(db, "k", feed="bank_feed", reason="r", detail={})
        raise RuntimeError("crash before commit")
    assert store.cursor("bank:files", "0") == "0"
    assert store.parked() == []


def test_cursors_and_parked_reports_survive_reopening(tmp_path: Path) -> None:
    first = OracleStore(tmp_path / "oracle")
    with first.transaction() as db:
        OracleStore.move_cursor(db, "bank:files", "12")
        OracleStore.park(db, "entry:X", feed="bank_feed", reason="why", detail={"a": 1})
        OracleStore.park(db, "entry:X", feed="bank_feed", reason="again", detail={})
    first.close()
    again = OracleStore(tmp_path / "oracle")
    assert again.cursor("bank:files", "0") == "12"
    assert [(p["key"], p["reason"], p["detail"]) for p in again.parked()] == [
        ("entry:X", "why", {"a": 1})
    ]
    again.close()


@given(
    agreement=st.binary(min_size=32, max_size=32),
    amount=st.integers(0, 2**128 - 1),
    reference=st.binary(min_size=32, max_size=32),
    paid_at=st.integers(0, 2**64 - 1),
)
def test_a_queued_report_decodes_to_the_same_payload(
    agreement: bytes, amount: int, reference: bytes, paid_at: int
) -> None:
    funding = m.FundingReport(agreement, amount, reference, paid_at)
    decoded = decode_message(m.FundingReport, encode_message(funding))
    assert decoded == funding and decoded.abi_hash() == funding.abi_hash()


def test_address_payloads_round_trip() -> None:
    attestation = m.LicenceAttestation(
        merchant="0x000000000000000000000000000000000000dEaD",
        status=m.LicenceStatus.ACTIVE,
        licensed_since=1,
        flags=2,
        checked_at=3,
        response_hash=b"\x07" * 32,
    )
    assert decode_message(m.LicenceAttestation, encode_message(attestation)) == attestation


def test_identifiers_are_derived_from_the_event_and_fit_iso_20022() -> None:
    ident = instruction_id(b"\x01" * 32, 5)
    assert ident != instruction_id(b"\x01" * 32, 6) != instruction_id(b"\x02" * 32, 5)
    assert len(end_to_end_id(ident)) == 35 and end_to_end_id(ident).startswith("YF")
    assert bank_reference_hash("YFB1") == hashlib.sha256(b"YFB1").digest()
    assert business_day_number(date(1970, 1, 2)) == 1


def test_a_second_oracle_cannot_open_the_same_data_directory(store: OracleStore) -> None:
    with pytest.raises(StoreInUse, match="another oracle"):
        OracleStore(store.data_dir)
