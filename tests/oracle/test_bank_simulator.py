"""The custody bank simulator as a real process over real HTTP.

Each test starts its own simulator (``bank_simulator`` in bank_fixtures.py) on business day
2026-11-25, plays the consumer, the oracle or the test controller through HTTP, and reads the
files the bank publishes back with ``oracle.iso20022``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from bank_fixtures import START_DATE, BankSimulator

from oracle import iso20022 as iso
from oracle.bank_simulator.state import china_now

CUSTODY = "CUST-91350111498229274M"
OTHER_CUSTODY = "CUST-913501118648122257"
UNKNOWN_CUSTODY = "CUST-923501113319628450"
MERCHANT = iso.Party("福州健身有限公司", "6222020200112233445")
DAY = date.fromisoformat(START_DATE)

Start = Callable[..., BankSimulator]


def instruction(
    message_id: str, amount_fen: int, debtor_account: str = CUSTODY, **change: Any
) -> bytes:
    """A pain.001 as the oracle sends it: one transfer, MsgId = EndToEndId."""
    fields: dict[str, Any] = {
        "message_id": message_id,
        "created_at": datetime.now(iso.CHINA_TIME),
        "debtor": iso.Party("Yufu oracle", debtor_account),
        "creditor": MERCHANT,
        "amount_fen": amount_fen,
        "end_to_end_id": message_id,
        "remittance": "YUFU-RELEASE:0x" + "cd" * 32,
        "requested_date": DAY,
        **change,
    }
    return iso.build_pain001(iso.CreditTransfer(**fields))


def funded(start: Start, amount_fen: int = 10_000) -> BankSimulator:
    """A simulator with one custody account holding ``amount_fen`` from one payment."""
    bank = start()
    bank.open_account(CUSTODY, "福州健身有限公司")
    bank.pay(CUSTODY, amount_fen)
    return bank


def notifications(bank: BankSimulator, after: int = 0) -> list[iso.Notification]:
    return [
        iso.parse_camt054(bank.file(item["name"]))
        for item in bank.files(after)
        if item["type"] == "camt.054"
    ]


def snapshot(bank: BankSimulator, *accounts: str) -> dict[str, Any]:
    """Everything a refused request must leave as it was."""
    return {
        "accounts": [bank.account(account) for account in accounts],
        "files": bank.files(),
        "misbehaviour": bank.get("/simulator/misbehave").json(),
        "health": bank.get("/health").json(),
    }


def status_of(answer: Any) -> iso.PaymentStatus:
    assert answer.headers["content-type"].startswith("application/xml")
    return iso.parse_pain002(answer.content)


# ---------------------------------------------------------------- the process


def test_it_says_it_is_a_simulator_and_stops_cleanly_on_sigterm(bank_simulator: Start) -> None:
    bank = bank_simulator(bank_name="Test Custody Bank")
    health = bank.get("/health").json()
    assert health["status"] == "ok"
    assert health["business_day"] == START_DATE
    assert health["simulator"] is True
    assert health["bank_name"] == "Test Custody Bank"
    log = bank.log()
    assert (
        log.count("Yufu bank simulator (SIMULATOR, not a bank) serving on http://127.0.0.1:") == 1
    )
    assert bank.stop() == 0


def test_without_a_start_date_the_business_day_is_today_in_china(bank_simulator: Start) -> None:
    bank = bank_simulator(start_date=None)
    today = datetime.now(iso.CHINA_TIME).date()
    assert date.fromisoformat(bank.get("/health").json()["business_day"]) in (
        today,
        date.fromordinal(today.toordinal() + 1),  # the test ran across midnight
    )


# ---------------------------------------------------------------- accounts and payments


def test_accounts_open_once_per_owner(bank_simulator: Start) -> None:
    bank = bank_simulator()
    body = {"account_id": CUSTODY, "owner_name": "福州健身有限公司"}
    first = bank.post("/simulator/accounts", json=body)
    assert first.status_code == 201
    assert first.json() == {
        "account_id": CUSTODY,
        "owner_name": "福州健身有限公司",
        "balance_fen": 0,
        "entries": [],
    }
    assert bank.post("/simulator/accounts", json=body).status_code == 200
    conflict = bank.post("/simulator/accounts", json={**body, "owner_name": "Somebody else"})
    assert conflict.status_code == 409
    assert "福州健身有限公司" in conflict.json()["error"]
    assert bank.account(CUSTODY)["owner_name"] == "福州健身有限公司"
    missing = bank.get(f"/simulator/accounts/{UNKNOWN_CUSTODY}")
    assert missing.status_code == 404
    assert UNKNOWN_CUSTODY in missing.json()["error"]


def test_a_payment_is_booked_as_a_credit_and_notified_in_a_camt054_file(
    bank_simulator: Start,
) -> None:
    bank = bank_simulator()
    bank.open_account(CUSTODY)
    reference = bank.pay(
        CUSTODY,
        500_000,
        payer_name="Zhang San",
        payer_account="6222000011112222",
        payer_reference="order-0001",
        remittance="YUFU-AGR:0x" + "3f" * 32,
    )
    assert reference.startswith("YFB20261125")

    account = bank.account(CUSTODY)
    assert account["balance_fen"] == 500_000
    assert [entry["bank_reference"] for entry in account["entries"]] == [reference]

    [listed] = bank.files()
    content = bank.file(listed["name"])
    assert listed["seq"] == 1
    assert listed["name"] == "camt054-000001.xml"
    assert listed["type"] == "camt.054"
    assert listed["sha256"] == hashlib.sha256(content).hexdigest()
    assert listed["size"] == len(content)
    assert bank.get(f"/files/{listed['name']}").headers["content-type"] == "application/xml"

    notification = iso.parse_camt054(content)
    assert notification.account == CUSTODY
    [entry] = notification.entries
    assert entry.bank_reference == reference
    assert entry.credit
    assert entry.amount_fen == 500_000
    assert entry.value_date == DAY
    # Booked at the real time of the posting; the value date is the simulated business day.
    assert abs(entry.booked_at - china_now()) < timedelta(minutes=10)
    assert entry.end_to_end_id == "order-0001"
    assert entry.counterparty == iso.Party("Zhang San", "6222000011112222")
    assert entry.remittance == "YUFU-AGR:0x" + "3f" * 32


def test_bank_references_and_file_names_are_unique_and_in_order(bank_simulator: Start) -> None:
    bank = funded(bank_simulator)
    references = [bank.pay(CUSTODY, 100) for _ in range(3)]
    assert len(set(references)) == 3
    assert references == sorted(references)
    listed = bank.files()
    assert [item["seq"] for item in listed] == [1, 2, 3, 4]
    assert [item["seq"] for item in bank.files(after=2, limit=1)] == [3]
    assert bank.get("/files/camt054-999999.xml").status_code == 404


# ---------------------------------------------------------------- payment instructions


def test_an_instruction_is_accepted_and_booked_as_a_debit_at_once(bank_simulator: Start) -> None:
    bank = funded(bank_simulator, 10_000)
    message_id = "YF" + "1" * 33
    answer = bank.send_pain001(instruction(message_id, 3_000))
    assert answer.status_code == 200
    status = status_of(answer)
    assert status.status == "ACCP"
    assert status.original_message_id == message_id
    assert status.end_to_end_id == message_id
    assert status.reason is None

    assert bank.account(CUSTODY)["balance_fen"] == 7_000
    debit = notifications(bank, after=1)[0].entries[0]
    assert not debit.credit
    assert debit.amount_fen == 3_000
    assert debit.end_to_end_id == message_id
    assert debit.counterparty == MERCHANT
    assert debit.remittance == "YUFU-RELEASE:0x" + "cd" * 32


def test_a_repeated_message_id_is_refused_as_a_duplicate_and_not_booked_again(
    bank_simulator: Start,
) -> None:
    bank = funded(bank_simulator, 10_000)
    message_id = "YF" + "2" * 33
    document = instruction(message_id, 3_000)
    assert status_of(bank.send_pain001(document)).status == "ACCP"
    files_before = bank.files()

    again = bank.send_pain001(document)
    assert again.status_code == 200
    status = status_of(again)
    assert (status.status, status.reason) == ("RJCT", "DU01")
    assert status.end_to_end_id == message_id
    assert status.additional_info is not None and "YFB20261125" in status.additional_info
    # Even with another amount: the message id alone decides.
    assert status_of(bank.send_pain001(instruction(message_id, 1))).reason == "DU01"

    assert bank.account(CUSTODY)["balance_fen"] == 7_000
    assert bank.files() == files_before


def test_insufficient_funds_is_refused_with_am04_and_can_be_retried_once_funded(
    bank_simulator: Start,
) -> None:
    bank = funded(bank_simulator, 1_000)
    document = instruction("YF" + "3" * 33, 1_001)
    status = status_of(bank.send_pain001(document))
    assert (status.status, status.reason) == ("RJCT", "AM04")
    assert bank.account(CUSTODY)["balance_fen"] == 1_000
    assert len(bank.files()) == 1

    # Refused is not executed: the same message is considered afresh, not as a duplicate.
    bank.pay(CUSTODY, 1)
    assert status_of(bank.send_pain001(document)).status == "ACCP"
    assert bank.account(CUSTODY)["balance_fen"] == 0


def test_an_unknown_debtor_account_is_refused_with_ac01(bank_simulator: Start) -> None:
    bank = funded(bank_simulator)
    status = status_of(bank.send_pain001(instruction("YF" + "4" * 33, 100, UNKNOWN_CUSTODY)))
    assert (status.status, status.reason) == ("RJCT", "AC01")
    assert UNKNOWN_CUSTODY in (status.additional_info or "")
    assert len(bank.files()) == 1


def test_a_malformed_instruction_is_refused_with_400_and_changes_nothing(
    bank_simulator: Start,
) -> None:
    bank = funded(bank_simulator, 10_000)
    before = snapshot(bank, CUSTODY)
    message_id = "YF" + "5" * 33
    valid = instruction(message_id, 100)

    invalid = valid.replace(b"<PmtMtd>TRF</PmtMtd>", b"")
    answer = bank.send_pain001(invalid)
    assert answer.status_code == 400
    status = status_of(answer)
    assert (status.status, status.reason) == ("RJCT", "FF01")
    assert status.original_message_id == message_id
    assert "PmtMtd" in (status.additional_info or "")

    three_decimals = valid.replace(b">1.00<", b">1.001<")
    assert status_of(bank.send_pain001(three_decimals)).reason == "FF01"
    dollars = valid.replace(b'Ccy="CNY"', b'Ccy="USD"')
    assert "USD" in (status_of(bank.send_pain001(dollars)).additional_info or "")
    statement = iso.build_camt054(iso.Notification("N1", datetime.now(iso.CHINA_TIME), CUSTODY, ()))
    assert status_of(bank.send_pain001(statement)).reason == "FF01"

    for garbage in (b"not xml at all", b"", b"<Document/>", b"<!DOCTYPE x [<!ENTITY a 'b'>]><x/>"):
        refused = bank.send_pain001(garbage)
        assert refused.status_code == 400
        assert "pain.001" in refused.json()["error"]

    assert snapshot(bank, CUSTODY) == before
    # None of the refused messages counts as seen: the valid one is executed.
    assert status_of(bank.send_pain001(valid)).status == "ACCP"


# ---------------------------------------------------------------- the end of the day


def test_closing_the_day_publishes_a_statement_per_account_with_its_balances(
    bank_simulator: Start,
) -> None:
    bank = funded(bank_simulator, 10_000)
    bank.open_account(OTHER_CUSTODY, "Quiet merchant")
    assert status_of(bank.send_pain001(instruction("YF" + "6" * 33, 3_000))).status == "ACCP"

    closed = bank.close_day()
    assert closed == {
        "business_day": START_DATE,
        "statements": [
            f"camt053-{START_DATE}-{CUSTODY}.xml",
            f"camt053-{START_DATE}-{OTHER_CUSTODY}.xml",
        ],
    }
    listed = bank.files()
    assert [item["type"] for item in listed] == ["camt.054", "camt.054", "camt.053", "camt.053"]
    statement = iso.parse_camt053(bank.file(closed["statements"][0]))
    assert statement.account == CUSTODY
    assert statement.business_day == DAY
    assert (statement.opening_balance_fen, statement.closing_balance_fen) == (0, 7_000)
    assert [(entry.credit, entry.amount_fen) for entry in statement.entries] == [
        (True, 10_000),
        (False, 3_000),
    ]
    notified = [entry for n in notifications(bank) for entry in n.entries]
    assert list(statement.entries) == notified
    quiet = iso.parse_camt053(bank.file(closed["statements"][1]))
    assert (quiet.opening_balance_fen, quiet.closing_balance_fen, quiet.entries) == (0, 0, ())

    assert bank.get("/health").json()["business_day"] == "2026-11-26"
    reference = bank.pay(CUSTODY, 500)
    assert reference.startswith("YFB20261126")
    second = bank.close_day()
    assert second["business_day"] == "2026-11-26"
    next_day = iso.parse_camt053(bank.file(second["statements"][0]))
    assert (next_day.opening_balance_fen, next_day.closing_balance_fen) == (7_000, 7_500)
    assert [entry.bank_reference for entry in next_day.entries] == [reference]
    assert next_day.entries[0].value_date == date(2026, 11, 26)


# ---------------------------------------------------------------- misbehaviour


def test_a_dropped_notification_is_never_published_but_is_in_the_statement(
    bank_simulator: Start,
) -> None:
    bank = funded(bank_simulator, 10_000)
    bank.misbehave("drop")
    assert bank.get("/simulator/misbehave").json()["pending"] == [
        {"mode": "drop", "applies_to": "notification"}
    ]
    dropped = bank.pay(CUSTODY, 200)
    after = bank.pay(CUSTODY, 300)
    assert bank.get("/simulator/misbehave").json()["pending"] == []
    notified = [entry.bank_reference for n in notifications(bank) for entry in n.entries]
    assert dropped not in notified
    assert after in notified
    assert bank.account(CUSTODY)["balance_fen"] == 10_500

    statement = iso.parse_camt053(bank.file(bank.close_day()["statements"][0]))
    assert dropped in [entry.bank_reference for entry in statement.entries]
    assert statement.closing_balance_fen == 10_500
    assert dropped not in [entry.bank_reference for n in notifications(bank) for entry in n.entries]


def test_a_duplicated_notification_is_published_twice_with_the_same_bytes(
    bank_simulator: Start,
) -> None:
    bank = funded(bank_simulator)
    bank.misbehave("duplicate")
    assert status_of(bank.send_pain001(instruction("YF" + "7" * 33, 100))).status == "ACCP"
    first, second = bank.files(after=1)
    assert first["name"] != second["name"]
    assert first["sha256"] == second["sha256"]
    assert bank.file(first["name"]) == bank.file(second["name"])
    assert bank.account(CUSTODY)["balance_fen"] == 9_900
    bank.pay(CUSTODY, 1)
    assert len(bank.files(after=3)) == 1


def test_a_delayed_notification_comes_at_the_close_of_day_before_the_statement(
    bank_simulator: Start,
) -> None:
    bank = funded(bank_simulator)
    bank.misbehave("delay")
    delayed = bank.pay(CUSTODY, 200)
    assert len(bank.files()) == 1
    later = bank.pay(CUSTODY, 300)
    assert len(bank.files()) == 2

    closed = bank.close_day()
    listed = bank.files()
    assert [item["type"] for item in listed] == ["camt.054"] * 3 + ["camt.053"]
    released = iso.parse_camt054(bank.file(listed[2]["name"]))
    assert [entry.bank_reference for entry in released.entries] == [delayed]
    statement = iso.parse_camt053(bank.file(closed["statements"][0]))
    assert [entry.bank_reference for entry in statement.entries][1:] == [delayed, later]
    assert bank.close_day()["statements"]  # nothing is released twice
    assert [item["type"] for item in bank.files(after=4)] == ["camt.053"]


def test_a_wrong_balance_misstates_the_next_statement_only(bank_simulator: Start) -> None:
    bank = funded(bank_simulator, 10_000)
    bank.open_account(OTHER_CUSTODY, "Quiet merchant")
    bank.misbehave("wrong_balance", fen=-5_000)
    assert bank.get("/simulator/misbehave").json()["pending"] == [
        {"mode": "wrong_balance", "applies_to": "statement", "fen": -5_000}
    ]
    bank.pay(CUSTODY, 1)  # notifications are not affected
    assert len(bank.files()) == 2

    first, quiet = bank.close_day()["statements"]
    wrong = iso.parse_camt053(bank.file(first))
    assert (wrong.opening_balance_fen, wrong.closing_balance_fen) == (0, 5_001)
    assert iso.parse_camt053(bank.file(quiet)).closing_balance_fen == 0
    assert bank.account(CUSTODY)["balance_fen"] == 10_001
    right = iso.parse_camt053(bank.file(bank.close_day()["statements"][0]))
    assert (right.opening_balance_fen, right.closing_balance_fen) == (10_001, 10_001)


def test_misbehaviour_queues_in_order_and_none_clears_it(bank_simulator: Start) -> None:
    bank = funded(bank_simulator)
    bank.misbehave("drop")
    bank.misbehave("duplicate")
    bank.misbehave("wrong_balance", fen=7)
    assert [item["mode"] for item in bank.get("/simulator/misbehave").json()["pending"]] == [
        "drop",
        "duplicate",
        "wrong_balance",
    ]
    bank.pay(CUSTODY, 1)  # dropped
    assert len(bank.files()) == 1
    bank.pay(CUSTODY, 1)  # duplicated
    assert len(bank.files()) == 3
    bank.misbehave("none")
    assert bank.get("/simulator/misbehave").json()["pending"] == []
    statement = iso.parse_camt053(bank.file(bank.close_day()["statements"][0]))
    assert statement.closing_balance_fen == 10_002


BAD_MISBEHAVIOUR: list[Any] = [
    {"mode": "explode"},
    {"mode": "wrong_balance"},
    {"mode": "wrong_balance", "fen": 0},
    {"mode": "wrong_balance", "fen": "5"},
    {"mode": "drop", "fen": 5},
    {"mode": "drop", "extra": True},
    {},
    None,
]


def test_a_bad_misbehaviour_is_refused_and_queues_nothing(bank_simulator: Start) -> None:
    bank = bank_simulator()
    bank.misbehave("delay")
    for body in BAD_MISBEHAVIOUR:
        answer = bank.post("/simulator/misbehave", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]
    assert bank.get("/simulator/misbehave").json()["pending"] == [
        {"mode": "delay", "applies_to": "notification"}
    ]


# ---------------------------------------------------------------- refusals and restarts


BAD_ACCOUNTS: list[tuple[Any, int]] = [
    ({"account_id": "CUST-123", "owner_name": "A"}, 422),
    ({"account_id": "ACCT-91350111498229274M", "owner_name": "A"}, 422),
    ({"account_id": UNKNOWN_CUSTODY, "owner_name": ""}, 422),
    ({"account_id": UNKNOWN_CUSTODY, "owner_name": "x" * 141}, 422),
    ({"account_id": UNKNOWN_CUSTODY, "owner_name": "bell\x07"}, 422),
    ({"account_id": UNKNOWN_CUSTODY}, 422),
    ({"account_id": UNKNOWN_CUSTODY, "owner_name": "A", "balance_fen": 5}, 422),
    ([UNKNOWN_CUSTODY, "A"], 422),
]
GOOD_PAYMENT = {
    "account_id": CUSTODY,
    "amount_fen": 100,
    "payer_name": "Zhang San",
    "payer_account": "6222",
    "payer_reference": "order-1",
    "remittance": "YUFU-AGR:0x00",
}
BAD_PAYMENTS: list[tuple[Any, int]] = [
    ({**GOOD_PAYMENT, "amount_fen": 0}, 422),
    ({**GOOD_PAYMENT, "amount_fen": -100}, 422),
    ({**GOOD_PAYMENT, "amount_fen": 1.5}, 422),
    ({**GOOD_PAYMENT, "amount_fen": "100"}, 422),
    ({**GOOD_PAYMENT, "amount_fen": True}, 422),
    ({**GOOD_PAYMENT, "amount_fen": 10**30}, 422),
    ({**GOOD_PAYMENT, "account_id": UNKNOWN_CUSTODY}, 404),
    ({**GOOD_PAYMENT, "payer_reference": "r" * 36}, 422),
    ({**GOOD_PAYMENT, "payer_account": ""}, 422),
    ({**GOOD_PAYMENT, "remittance": "a\x00b"}, 422),
    ({key: value for key, value in GOOD_PAYMENT.items() if key != "remittance"}, 422),
    ({**GOOD_PAYMENT, "currency": "USD"}, 422),
    (None, 422),
]


def test_bad_json_is_refused_with_an_error_and_changes_nothing(bank_simulator: Start) -> None:
    bank = funded(bank_simulator, 10_000)
    before = snapshot(bank, CUSTODY)
    for path, cases in (
        ("/simulator/accounts", BAD_ACCOUNTS),
        ("/simulator/payments", BAD_PAYMENTS),
    ):
        for body, expected in cases:
            answer = bank.post(path, json=body)
            assert answer.status_code == expected, (path, body, answer.text)
            assert isinstance(answer.json()["error"], str) and answer.json()["error"]
        broken = bank.post(path, data=b"{not json", headers={"Content-Type": "application/json"})
        assert broken.status_code == 400
        assert "not valid JSON" in broken.json()["error"]
    for query in ({"after": -1}, {"limit": 0}, {"limit": 100_000}, {"after": "x"}):
        assert bank.get("/files", params=query).status_code == 400
    assert bank.get(f"/simulator/accounts/{UNKNOWN_CUSTODY}").status_code == 404
    assert snapshot(bank, CUSTODY) == before
    assert bank.get(f"/simulator/accounts/{UNKNOWN_CUSTODY}").status_code == 404


def test_the_bank_survives_kill_9_and_restart(bank_simulator: Start) -> None:
    bank = funded(bank_simulator, 10_000)
    message_id = "YF" + "8" * 33
    assert status_of(bank.send_pain001(instruction(message_id, 2_500))).status == "ACCP"
    bank.close_day()
    bank.pay(CUSTODY, 1)
    bank.misbehave("wrong_balance", fen=3)
    url = bank.url
    before = snapshot(bank, CUSTODY)
    contents = [bank.file(item["name"]) for item in before["files"]]

    bank.kill()
    bank.restart()
    assert bank.url == url
    assert snapshot(bank, CUSTODY) == before
    assert [bank.file(item["name"]) for item in bank.files()] == contents
    assert before["health"]["business_day"] == "2026-11-26"
    assert before["accounts"][0]["balance_fen"] == 7_501
    # The accepted message id is remembered: no second booking after a crash.
    assert status_of(bank.send_pain001(instruction(message_id, 2_500))).reason == "DU01"
    # References and file numbers carry on, never reused.
    reference = bank.pay(CUSTODY, 1)
    assert reference not in [entry["bank_reference"] for entry in before["accounts"][0]["entries"]]
    assert bank.files()[-1]["seq"] == before["files"][-1]["seq"] + 1
    statement = iso.parse_camt053(bank.file(bank.close_day()["statements"][0]))
    assert (statement.opening_balance_fen, statement.closing_balance_fen) == (7_500, 7_502 + 3)

    assert bank.stop() == 0
    bank.restart()
    assert bank.get("/health").json()["business_day"] == "2026-11-27"
