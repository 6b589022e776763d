"""The ISO 20022 messages: exact amounts, round trips, schema validity, and refusals.

Every built message is checked again here against its XSD with xmlschema directly, so a bug in
the module's own validation could not hide an invalid message. Refusals must say what is wrong.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from oracle import iso20022 as iso

CUSTODY = "CUST-91350111498229274M"
AGREEMENT_REMITTANCE = "YUFU-AGR:0x" + "3f" * 32
END_TO_END = "YF" + "0123456789abcdef" * 2 + "0"  # 35 characters, as the oracle makes them
CREATED = datetime(2026, 11, 25, 9, 30, 15, tzinfo=iso.CHINA_TIME)
DAY = date(2026, 11, 25)

TRANSFER = iso.CreditTransfer(
    message_id=END_TO_END,
    created_at=CREATED,
    debtor=iso.Party("Yufu custody", CUSTODY),
    creditor=iso.Party("福州健身有限公司", "6222020200112233445"),
    amount_fen=12_345,
    end_to_end_id=END_TO_END,
    remittance="YUFU-RELEASE:0x" + "ab" * 32,
    requested_date=DAY,
)
CREDIT = iso.Entry(
    bank_reference="YFB2026112500000001",
    account=CUSTODY,
    credit=True,
    amount_fen=500_000,
    booked_at=CREATED,
    value_date=DAY,
    end_to_end_id="order-0001",
    counterparty=iso.Party("Zhang San", "6222000011112222"),
    remittance=AGREEMENT_REMITTANCE,
)
DEBIT = iso.Entry(
    bank_reference="YFB2026112500000002",
    account=CUSTODY,
    credit=False,
    amount_fen=12_345,
    booked_at=CREATED + timedelta(hours=1),
    value_date=DAY,
    end_to_end_id=END_TO_END,
    counterparty=iso.Party("福州健身有限公司", "6222020200112233445"),
    remittance="YUFU-RELEASE:0x" + "ab" * 32,
)
BARE = iso.Entry(
    bank_reference="YFB2026112500000003",
    account=CUSTODY,
    credit=False,
    amount_fen=1,
    booked_at=CREATED,
    value_date=DAY,
    end_to_end_id=None,
    counterparty=None,
    remittance=None,
)
NOTIFICATION = iso.Notification("YFBN000000000001", CREATED, CUSTODY, (CREDIT,))
STATEMENT = iso.Statement(
    message_id="YFBS000000000002",
    statement_id=f"{CUSTODY}-20261125",
    created_at=CREATED,
    account=CUSTODY,
    business_day=DAY,
    opening_balance_fen=-100,
    closing_balance_fen=-100 + 500_000 - 12_345 - 1,
    entries=(CREDIT, DEBIT, BARE),
)

# Text ISO 20022 can carry: no control characters, surrogates or XML non-characters.
xml_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufffe\uffff"),
    min_size=1,
    max_size=35,
)
amounts = st.integers(min_value=1, max_value=10**15)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)


def schema_accepts(document: bytes, kind: str) -> bool:
    """xmlschema's own verdict on ``document``, independent of the module's checks."""
    return bool(iso.schema(kind).is_valid(etree.fromstring(document)))


def refused(parse: object, document: bytes) -> str:
    """Parse ``document`` expecting MalformedMessage; returns its message."""
    with pytest.raises(iso.MalformedMessage) as caught:
        parse(document)  # type: ignore[operator]
    return str(caught.value)


# ---------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    ("fen", "amount"),
    [(0, "0.00"), (1, "0.01"), (10, "0.10"), (12_345, "123.45"), (10**15, "10000000000000.00")],
)
def test_fen_and_amounts_convert_exactly(fen: int, amount: str) -> None:
    assert iso.fen_to_amount(fen) == amount
    assert iso.amount_to_fen(amount) == fen


@given(st.integers(min_value=0, max_value=10**16))
def test_every_fen_amount_survives_the_round_trip(fen: int) -> None:
    assert iso.amount_to_fen(iso.fen_to_amount(fen)) == fen


@pytest.mark.parametrize(("text", "fen"), [("123", 12_300), ("123.4", 12_340), ("1.230", 123)])
def test_amounts_with_fewer_or_zero_padded_decimals_are_read(text: str, fen: int) -> None:
    assert iso.amount_to_fen(text) == fen


@pytest.mark.parametrize("text", ["123.456", "0.001", "-1.00", "1e3", "abc", "", "1,00", "NaN"])
def test_amounts_that_are_not_two_decimal_numbers_are_refused(text: str) -> None:
    with pytest.raises(iso.MalformedMessage, match="amount"):
        iso.amount_to_fen(text)


def test_a_negative_amount_cannot_be_written() -> None:
    with pytest.raises(ValueError, match="negative"):
        iso.fen_to_amount(-1)
    with pytest.raises(TypeError):
        iso.fen_to_amount(1.5)


# ---------------------------------------------------------------- round trips


def test_a_credit_transfer_round_trips_and_validates() -> None:
    document = iso.build_pain001(TRANSFER)
    assert iso.document_type(document) == iso.PAIN_001
    assert schema_accepts(document, iso.PAIN_001)
    assert iso.parse_pain001(document) == [TRANSFER]
    assert b"+08:00" in document


@given(
    amount=amounts,
    name=xml_text,
    account=xml_text.filter(lambda text: len(text) <= 34),
    remittance=st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=300
    ).filter(lambda text: "\ufffe" not in text and "\uffff" not in text),
    moment=moments,
)
def test_any_credit_transfer_round_trips(
    amount: int, name: str, account: str, remittance: str, moment: datetime
) -> None:
    transfer = replace(
        TRANSFER,
        amount_fen=amount,
        creditor=iso.Party(name, account),
        remittance=remittance,
        created_at=moment,
    )
    assert iso.parse_pain001(iso.build_pain001(transfer)) == [transfer]


@pytest.mark.parametrize(
    "status",
    [
        iso.PaymentStatus(END_TO_END, "ACCP", None, END_TO_END, "booked as YFB2026112500000002"),
        iso.PaymentStatus(END_TO_END, "RJCT", "DU01", END_TO_END),
        iso.PaymentStatus(END_TO_END, "RJCT", "AM04", END_TO_END, "x" * 250),
        iso.PaymentStatus("NOTPROVIDED", "RJCT", "FF01", None, "schema error"),
    ],
)
def test_a_status_report_round_trips_and_validates(status: iso.PaymentStatus) -> None:
    document = iso.build_pain002(status, "YFBP000000000001", CREATED)
    assert iso.document_type(document) == iso.PAIN_002
    assert schema_accepts(document, iso.PAIN_002)
    assert iso.parse_pain002(document) == status


def test_a_status_report_with_another_status_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="ACSC"):
        iso.build_pain002(
            iso.PaymentStatus(END_TO_END, "ACSC", None, None), "YFBP000000000001", CREATED
        )


@pytest.mark.parametrize("entries", [(CREDIT,), (DEBIT,), (BARE,), (CREDIT, DEBIT, BARE), ()])
def test_a_notification_round_trips_and_validates(entries: tuple[iso.Entry, ...]) -> None:
    notification = replace(NOTIFICATION, entries=entries)
    document = iso.build_camt054(notification)
    assert iso.document_type(document) == iso.CAMT_054
    assert schema_accepts(document, iso.CAMT_054)
    assert iso.parse_camt054(document) == notification


def test_the_counterparty_is_the_debtor_of_a_credit_and_the_creditor_of_a_debit() -> None:
    document = iso.build_camt054(replace(NOTIFICATION, entries=(CREDIT, DEBIT)))
    root = etree.fromstring(document)
    ns = {"d": iso.namespace(iso.CAMT_054)}
    credit, debit = root.findall(".//d:Ntry", ns)
    assert credit.findtext(".//d:RltdPties/d:Dbtr/d:Pty/d:Nm", namespaces=ns) == "Zhang San"
    assert credit.find(".//d:RltdPties/d:Cdtr", ns) is None
    assert debit.findtext(".//d:RltdPties/d:CdtrAcct//d:Othr/d:Id", namespaces=ns) == (
        "6222020200112233445"
    )
    assert debit.findtext(".//d:Refs/d:EndToEndId", namespaces=ns) == END_TO_END


@given(
    amount=amounts,
    credit=st.booleans(),
    reference=xml_text,
    remittance=st.none() | xml_text,
    moment=moments,
)
def test_any_entry_round_trips(
    amount: int, credit: bool, reference: str, remittance: str | None, moment: datetime
) -> None:
    entry = replace(
        CREDIT,
        amount_fen=amount,
        credit=credit,
        bank_reference=reference,
        remittance=remittance,
        booked_at=moment,
    )
    notification = replace(NOTIFICATION, entries=(entry,))
    assert iso.parse_camt054(iso.build_camt054(notification)) == notification


def test_a_statement_round_trips_and_validates() -> None:
    document = iso.build_camt053(STATEMENT)
    assert iso.document_type(document) == iso.CAMT_053
    assert schema_accepts(document, iso.CAMT_053)
    assert iso.parse_camt053(document) == STATEMENT


@given(opening=st.integers(-(10**15), 10**15), closing=st.integers(-(10**15), 10**15))
def test_statement_balances_keep_their_sign(opening: int, closing: int) -> None:
    statement = replace(
        STATEMENT, opening_balance_fen=opening, closing_balance_fen=closing, entries=()
    )
    assert iso.parse_camt053(iso.build_camt053(statement)) == statement


def test_times_are_written_in_china_and_read_back_as_the_same_moment() -> None:
    utc_moment = datetime(2026, 11, 25, 16, 30, tzinfo=UTC)
    document = iso.build_camt054(replace(NOTIFICATION, created_at=utc_moment))
    assert b"2026-11-26T00:30:00+08:00" in document
    parsed = iso.parse_camt054(document)
    assert parsed.created_at == utc_moment
    assert parsed.created_at.utcoffset() == timedelta(hours=8)


def test_a_naive_datetime_cannot_be_written() -> None:
    with pytest.raises(ValueError, match="timezone"):
        iso.build_pain001(replace(TRANSFER, created_at=datetime(2026, 11, 25, 9, 0)))


def test_a_time_without_offset_is_read_as_china_time() -> None:
    document = iso.build_pain001(TRANSFER).replace(
        b"2026-11-25T09:30:15+08:00", b"2026-11-25T09:30:15"
    )
    assert iso.parse_pain001(document)[0].created_at == CREATED


# ---------------------------------------------------------------- refusals when building


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"message_id": "M" * 36}, "MsgId"),
        ({"creditor": iso.Party("", "6222")}, "Nm"),
        ({"debtor": iso.Party("Yufu", "A" * 35)}, "Id"),
    ],
)
def test_a_transfer_the_schema_forbids_is_not_built(
    change: dict[str, object], problem: str
) -> None:
    with pytest.raises(iso.MalformedMessage, match=problem):
        iso.build_pain001(replace(TRANSFER, **change))


def test_text_xml_cannot_carry_is_refused_when_building() -> None:
    with pytest.raises(iso.MalformedMessage, match="characters XML cannot carry"):
        iso.build_pain001(replace(TRANSFER, remittance="bell \x07"))


def test_a_transfer_of_nothing_is_not_built() -> None:
    with pytest.raises(ValueError, match="positive"):
        iso.build_pain001(replace(TRANSFER, amount_fen=0))


def test_an_entry_of_another_account_is_not_built_into_a_notification() -> None:
    with pytest.raises(iso.MalformedMessage, match="CUST-OTHER"):
        iso.build_camt054(replace(NOTIFICATION, entries=(replace(CREDIT, account="CUST-OTHER"),)))


# ---------------------------------------------------------------- refusals when reading


def test_document_type_refuses_what_is_not_one_of_the_four_messages() -> None:
    assert "not well-formed" in refused(iso.document_type, b"this is not XML")
    assert "not one of" in refused(
        iso.document_type, b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"/>'
    )
    assert "not one of" in refused(iso.document_type, b"<Document/>")
    assert "expected Document" in refused(
        iso.document_type, b'<Doc xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"/>'
    )
    assert "bytes" in refused(iso.document_type, "<Document/>")  # type: ignore[arg-type]


def test_a_message_of_another_type_is_refused() -> None:
    message = refused(iso.parse_camt053, iso.build_camt054(NOTIFICATION))
    assert "expected a camt.053.001.08 message, got camt.054.001.08" in message


def test_a_missing_element_is_refused_with_its_place_in_the_schema() -> None:
    document = iso.build_camt054(NOTIFICATION).replace(b"<MsgId>YFBN000000000001</MsgId>", b"")
    message = refused(iso.parse_camt054, document)
    assert "does not match its schema at /Document/BkToCstmrDbtCdtNtfctn/GrpHdr" in message
    assert "MsgId" in message


def test_a_bad_amount_is_refused() -> None:
    document = iso.build_camt054(NOTIFICATION).replace(b">5000.00<", b">5,000.00<")
    assert "schema" in refused(iso.parse_camt054, document)


def test_an_amount_with_three_decimals_is_refused() -> None:
    document = iso.build_camt054(NOTIFICATION).replace(b">5000.00<", b">5000.001<")
    message = refused(iso.parse_camt054, document)
    assert "'5000.001' has more than 2 decimals" in message
    assert "/Ntfctn/Ntry/Amt" in message


def test_another_currency_is_refused() -> None:
    document = iso.build_pain001(TRANSFER).replace(b'Ccy="CNY">123.45', b'Ccy="USD">123.45')
    assert "currency USD is not CNY" in refused(iso.parse_pain001, document)
    statement = iso.build_camt053(STATEMENT).replace(b"<Ccy>CNY</Ccy>", b"<Ccy>EUR</Ccy>", 1)
    assert "account currency EUR is not CNY" in refused(iso.parse_camt053, statement)


def test_an_account_named_by_iban_is_refused() -> None:
    document = iso.build_camt054(NOTIFICATION).replace(
        b"<Othr>\n            <Id>CUST-91350111498229274M</Id>\n          </Othr>",
        b"<IBAN>DE89370400440532013000</IBAN>",
    )
    assert "Id/Othr/Id" in refused(iso.parse_camt054, document)


def test_a_transfer_whose_counts_disagree_is_refused() -> None:
    document = iso.build_pain001(TRANSFER).replace(
        b"<NbOfTxs>1</NbOfTxs>", b"<NbOfTxs>2</NbOfTxs>", 1
    )
    assert "NbOfTxs is 2 but there are 1 transactions" in refused(iso.parse_pain001, document)
    document = iso.build_pain001(TRANSFER).replace(b"<CtrlSum>123.45<", b"<CtrlSum>123.46<", 1)
    assert "CtrlSum is 123.46" in refused(iso.parse_pain001, document)


def test_a_pending_entry_is_refused() -> None:
    document = iso.build_camt054(NOTIFICATION).replace(b"<Cd>BOOK</Cd>", b"<Cd>PDNG</Cd>")
    assert "entry status PDNG is not BOOK" in refused(iso.parse_camt054, document)


def test_a_statement_without_a_closing_balance_is_refused() -> None:
    document = iso.build_camt053(STATEMENT).replace(b"<Cd>CLBD</Cd>", b"<Cd>ITBD</Cd>")
    assert "exactly one CLBD balance, found 0" in refused(iso.parse_camt053, document)


def test_a_status_report_with_an_unknown_status_is_refused() -> None:
    document = iso.build_pain002(
        iso.PaymentStatus(END_TO_END, "ACCP", None, END_TO_END), "YFBP000000000001", CREATED
    ).replace(b"ACCP", b"ACSC")
    assert "status 'ACSC'" in refused(iso.parse_pain002, document)


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">
  <BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>&secret;</MsgId></GrpHdr></BkToCstmrDbtCdtNtfctn>
</Document>"""

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + b"".join(
        b'<!ENTITY lol%d "%s">\n'
        % (level, (b"&lol%d;" % (level - 1) if level > 1 else b"&lol;") * 10)
        for level in range(1, 10)
    )
    + b']>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">&lol9;</Document>'
)


@pytest.mark.parametrize("parse", [iso.document_type, iso.parse_camt054, iso.parse_pain001])
def test_an_external_entity_is_never_resolved(parse: object) -> None:
    message = refused(parse, XXE)
    assert "DOCTYPE" in message
    assert "root:" not in message


def test_an_entity_expansion_bomb_is_refused() -> None:
    # libxml2 stops the expansion itself, or the DTD is refused: either way nothing expands.
    message = refused(iso.parse_pain001, BILLION_LAUGHS)
    assert "DOCTYPE" in message or "amplification" in message


def test_an_oversized_message_is_refused_before_parsing() -> None:
    huge = b"<" + b"a" * iso.MAX_MESSAGE_BYTES + b"/>"
    assert "exceeds" in refused(iso.parse_pain001, huge)


def test_find_message_id_reads_an_invalid_message() -> None:
    document = iso.build_pain001(TRANSFER).replace(b"<PmtMtd>TRF</PmtMtd>", b"")
    assert iso.find_message_id(document) == END_TO_END
    assert iso.find_message_id(b"not xml") is None


def test_other_timezones_are_converted_not_dropped() -> None:
    new_york = timezone(timedelta(hours=-5))
    moment = datetime(2026, 11, 25, 8, 0, tzinfo=new_york)
    parsed = iso.parse_pain001(iso.build_pain001(replace(TRANSFER, created_at=moment)))[0]
    assert parsed.created_at == moment
