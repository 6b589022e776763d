"""The oracle end to end, with real processes: node, bank simulator, registry simulator, oracle.

One world per module: a node on a copy of the bootstrapped chain (sealing every 50 ms), the two
simulators and the oracle (polling every 100 ms, re-checking licences every 2 s). The tests
play the parties through web3 over HTTP and the simulators' HTTP interfaces, and watch the
chain. Each test works on its own plans; the merchants are onboarded once, through the
oracle's licence check.

Order matters where a test changes a merchant for good: Sunrise Tutoring takes the ordinary
life and the bank's misbehaviour, Minjiang Fitness is declared in default, Lotus Beauty loses
its licence and gets a wrong statement.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests
from processes import ORACLE_READY, ServiceProcess, oracle_command
from web3 import Web3

from chain import messages as m
from chain.config import DemoMerchant, DevnetConfig
from chain.node.service import deployed_system
from chain.scenario import PlanDesk
from oracle import iso20022 as iso
from oracle.bank import business_day_number, custody_account, end_to_end_id, instruction_id

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NODE_CONFTEST = PROJECT_ROOT / "tests" / "node" / "conftest.py"
BANK_READY = r"Yufu bank simulator \(SIMULATOR, not a bank\) serving on (http://\S+)"
REGISTRY_READY = (
    r"Yufu licence registry simulator \(SIMULATOR, not the registry\) serving on (http://\S+)"
)
RECHECK_SECONDS = 2.0
WAIT_SECONDS = 60.0


def _load_node_helpers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_yufu_node_process_helpers", NODE_CONFTEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_node_helpers = _load_node_helpers()
NodeProcess: Any = _node_helpers.NodeProcess
bootstrapped_data = _node_helpers.bootstrapped_data  # the session fixture, reused here


def wait_for(what: str, condition: Callable[[], Any], timeout: float = WAIT_SECONDS) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class World:
    node: Any
    bank: ServiceProcess
    registry: ServiceProcess
    oracle: ServiceProcess
    desk: PlanDesk
    config: DevnetConfig
    http: requests.Session

    @property
    def client(self) -> Any:
        return self.desk.client

    def bank_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.http.post(self.bank.url + path, json=body, timeout=10)
        assert answer.status_code in (200, 201), answer.text
        return dict(answer.json())

    def account(self, merchant: DemoMerchant) -> dict[str, Any]:
        answer = self.http.get(
            f"{self.bank.url}/simulator/accounts/{custody_account(merchant.uscc)}", timeout=10
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def close_day(self) -> dict[str, Any]:
        return self.bank_post("/simulator/close-day", {})

    def misbehave(self, mode: str, **extra: Any) -> None:
        self.bank_post("/simulator/misbehave", {"mode": mode, **extra})

    def parked(self) -> list[dict[str, Any]]:
        return list(self.http.get(self.oracle.url + "/parked", timeout=10).json()["parked"])

    def restart_oracle(self, **extra_env: str) -> None:
        self.oracle.stop()
        self.oracle.start(extra_env=extra_env or None)

    # ------------------------------------------------------------ a plan's life

    def open_plan(
        self,
        merchant: DemoMerchant,
        consumer_key: str,
        *,
        units: int = 10,
        unit_price: int = 10_000,
    ) -> bytes:
        template = "training" if merchant.industry == "training" else "named_card"
        template_id = self.desk.system.template_ids[(template, merchant.industry)]
        signed = self.desk.sign_agreement(
            merchant.key.private_key, consumer_key, template_id, units=units, unit_price=unit_price
        )
        agreement_id, _ = self.desk.open(signed)
        return agreement_id

    def pay(self, merchant: DemoMerchant, agreement_id: bytes, amount: int, payer: str) -> str:
        paid = self.bank_post(
            "/simulator/payments",
            {
                "account_id": custody_account(merchant.uscc),
                "amount_fen": amount,
                "payer_name": f"Consumer {payer}",
                "payer_account": f"6222{payer}",
                "payer_reference": f"order-{agreement_id.hex()[:8]}",
                "remittance": f"YUFU-AGR:0x{agreement_id.hex()}",
            },
        )
        return str(paid["bank_reference"])

    def ledger(self, agreement_id: bytes) -> Any:
        return self.client.get_ledger(agreement_id)

    def wait_funded(self, agreement_id: bytes, amount: int) -> Any:
        return wait_for(
            f"agreement 0x{agreement_id.hex()[:8]} funded",
            lambda: (lambda ledger: ledger if ledger.deposited == amount else None)(
                self.ledger(agreement_id)
            ),
        )

    def wait_paid_out(self, agreement_id: bytes, *, merchant_too: bool = True) -> Any:
        """Until what is due from the plan was paid by the bank and confirmed on chain.

        Due to the merchant: released money, and the upfront share once the chain released it
        (it waits out the cooling-off period). A defaulted merchant is paid nothing more.
        """

        def settled() -> Any:
            ledger = self.ledger(agreement_id)
            released = self.client.get_agreement(agreement_id).upfront_released
            due_to_merchant = (
                (ledger.upfront if released else 0) + ledger.released - ledger.paid_to_merchant
            )
            done = ledger.unpaid_to_consumer() == 0 and (due_to_merchant == 0 or not merchant_too)
            return ledger if done else None

        return wait_for(f"payouts of 0x{agreement_id.hex()[:8]} confirmed", settled)

    def consume(self, merchant: DemoMerchant, consumer_key: str, agreement_id: bytes, n: int):
        start = self.client.get_agreement(agreement_id).next_sequence
        batch = [
            self.desk.sign_record(agreement_id, start + i, merchant.key.private_key, consumer_key)
            for i in range(n)
        ]
        return self.desk.consume_batch(batch)

    def events(self, name: str, from_block: int = 0) -> list[Any]:
        logs = self.client.w3.eth.get_logs(
            {
                "fromBlock": from_block,
                "toBlock": "latest",
                "address": [self.client.book.address, self.client.custody.address],
            }
        )
        return [e for e in self.client.decode_logs(logs) if e.name == name]


@pytest.fixture(scope="module")
def world(
    bootstrapped_data: Path, tmp_path_factory: pytest.TempPathFactory, config: DevnetConfig
) -> Iterator[World]:
    root = tmp_path_factory.mktemp("oracle-world")
    shutil.copytree(bootstrapped_data, root / "chain")
    node = NodeProcess(root / "chain", root / "node.log")
    bank = ServiceProcess(
        [
            sys.executable,
            "-m",
            "oracle.bank_simulator",
            "--data-dir",
            str(root / "bank"),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            # The simulated calendar moves a day at every close: start it in the past, so no
            # statement is dated after its report (the chain refuses those).
            "--start-date",
            (date.today() - timedelta(days=60)).isoformat(),
        ],
        BANK_READY,
        root / "bank.log",
    )
    registry = ServiceProcess(
        [
            sys.executable,
            "-m",
            "oracle.licence_simulator",
            "--data-dir",
            str(root / "registry"),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        REGISTRY_READY,
        root / "registry.log",
    )
    started: list[Any] = []
    try:
        for process in (node, bank, registry):
            process.start()
            started.append(process)
        oracle = ServiceProcess(
            oracle_command(
                root / "oracle", node.url, bank.url, registry.url, recheck_seconds=RECHECK_SECONDS
            ),
            ORACLE_READY,
            root / "oracle.log",
        )
        oracle.start()
        started.append(oracle)
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        desk = PlanDesk(deployed_system(w3, config), config)
        world = World(node, bank, registry, oracle, desk, config, requests.Session())
        for merchant in config.demo.merchants:
            onboard(world, merchant)
        yield world
    finally:
        for process in reversed(started):
            if process is not None:
                process.kill()


def onboard(world: World, merchant: DemoMerchant) -> None:
    """Admit and apply on chain, open the custody account, register with the oracle, approve."""
    desk, client = world.desk, world.client
    desk.admit_merchant(merchant.key.private_key, merchant.name)
    desk.apply(merchant.key.private_key, merchant.uscc, merchant.name, merchant.industry)
    world.bank_post(
        "/simulator/accounts",
        {"account_id": custody_account(merchant.uscc), "owner_name": merchant.name},
    )
    registered = world.http.post(
        world.oracle.url + "/merchants",
        json={
            "address": merchant.address,
            "uscc": merchant.uscc,
            "name": merchant.name,
            "industry": merchant.industry,
            "receiving_account": desk.receiving_account(merchant.uscc),
        },
        timeout=10,
    )
    assert registered.status_code == 201, registered.text
    wait_for(
        f"licence of {merchant.name} attested",
        lambda: client.get_merchant(merchant.address).licence == m.LicenceStatus.ACTIVE,
    )
    client.approve_merchant(desk.regulator_key, merchant.address, b"\x01" * 32)


def merchant_named(config: DevnetConfig, industry: str) -> DemoMerchant:
    return next(merchant for merchant in config.demo.merchants if merchant.industry == industry)


def consumer(config: DevnetConfig, index: int) -> str:
    return config.demo.consumers[index].key.private_key


# ---------------------------------------------------------------- the ordinary life


def test_a_payment_funds_the_plan_and_every_release_is_paid_and_confirmed(
    world: World, config: DevnetConfig
) -> None:
    sunrise = merchant_named(config, "training")
    agreement_id = world.open_plan(sunrise, consumer(config, 0))
    reference = world.pay(sunrise, agreement_id, 100_000, "0001")

    funded = world.wait_funded(agreement_id, 100_000)
    assert funded.upfront > 0
    # The upfront share waits out the cooling-off period; the first lesson ends it.
    assert not world.client.get_agreement(agreement_id).upfront_released
    world.consume(sunrise, consumer(config, 0), agreement_id, 3)
    ledger = world.wait_paid_out(agreement_id)
    assert world.client.get_agreement(agreement_id).upfront_released

    assert ledger.released > 0
    assert ledger.paid_to_merchant == ledger.upfront + ledger.released
    assert world.client.custody_held(sunrise.address) == ledger.deposited - ledger.paid_to_merchant
    account = world.account(sunrise)
    debits = [e for e in account["entries"] if not e["credit"]]
    assert sum(e["amount_fen"] for e in debits) == ledger.paid_to_merchant
    # Each release event became exactly one instruction registered on chain, identified by the
    # event, and the bank paid exactly the registered instructions.
    releases = [
        log
        for log in world.client.w3.eth.get_logs(
            {"fromBlock": 0, "toBlock": "latest", "address": world.client.book.address}
        )
        for event in world.client.decode_logs([log])
        if event.name == "FundsReleased" and bytes(event.args["agreementId"]) == agreement_id
    ]
    expected_ids = {
        end_to_end_id(instruction_id(bytes(log["transactionHash"]), int(log["logIndex"])))
        for log in releases
    }
    assert {e["end_to_end_id"] for e in debits} == expected_ids
    registered = [
        e for e in world.events("PaymentInstructed") if bytes(e.args["agreementId"]) == agreement_id
    ]
    assert {end_to_end_id(bytes(e.args["instructionId"])) for e in registered} == expected_ids
    # The bank's credit is the on-chain funding's bank reference.
    funded_event = next(
        e for e in world.events("AgreementFunded") if bytes(e.args["agreementId"]) == agreement_id
    )
    assert bytes(funded_event.args["bankReference"]) == hashlib.sha256(reference.encode()).digest()


def test_the_daily_statement_reconciles_with_custody_on_chain_and_is_kept_as_evidence(
    world: World, config: DevnetConfig
) -> None:
    sunrise = merchant_named(config, "training")
    closed = world.close_day()
    day = business_day_number(date.fromisoformat(closed["business_day"]))

    reconciled = wait_for(
        "the statement's reconciliation",
        lambda: [
            e
            for e in world.events("CustodyReconciled")
            if e.args["merchant"] == sunrise.address and e.args["businessDay"] == day
        ],
    )[0]
    assert reconciled.args["statementBalance"] == reconciled.args["custodyHeld"]
    assert reconciled.args["statementBalance"] == world.account(sunrise)["balance_fen"]
    assert not [e for e in world.events("CustodyAnomaly") if e.args["merchant"] == sunrise.address]
    # A court holding the on-chain hash gets the original statement back.
    digest = bytes(reconciled.args["statementHash"]).hex()
    original = world.http.get(f"{world.oracle.url}/evidence/{digest}", timeout=10)
    assert original.status_code == 200
    assert hashlib.sha256(original.content).hexdigest() == digest
    assert iso.parse_camt053(original.content).account == custody_account(sunrise.uscc)


def test_a_cooling_off_right_after_funding_is_refunded_in_full_and_pays_the_merchant_nothing(
    world: World, config: DevnetConfig
) -> None:
    """The double-payment race of issue 8: the merchant's upfront share is never instructed
    while the consumer may still cool off, so the refund is whole and nothing comes back."""
    sunrise = merchant_named(config, "training")
    consumer_key = consumer(config, 2)
    agreement_id = world.open_plan(sunrise, consumer_key)
    world.pay(sunrise, agreement_id, 100_000, "0201")
    funded = world.wait_funded(agreement_id, 100_000)
    assert funded.upfront > 0
    # The oracle has had every chance to instruct the upfront share: it must not have.
    time.sleep(1.0)
    assert not [
        e for e in world.events("PaymentInstructed") if bytes(e.args["agreementId"]) == agreement_id
    ]

    world.desk.cool_off(agreement_id, consumer_key)
    ledger = world.wait_paid_out(agreement_id)
    assert ledger.refunded == ledger.paid_to_consumer == 100_000
    assert ledger.paid_to_merchant == ledger.merchant_owed == ledger.upfront == 0
    paid = [
        e
        for e in world.account(sunrise)["entries"]
        if not e["credit"] and agreement_id.hex() in (e.get("remittance") or "")
    ]
    assert [e["amount_fen"] for e in paid] == [100_000]
    assert paid[0]["counterparty"]["account"] == "62220201"
    closed = world.close_day()
    day = business_day_number(date.fromisoformat(closed["business_day"]))
    reconciled = wait_for(
        "the statement's reconciliation",
        lambda: [
            e
            for e in world.events("CustodyReconciled")
            if e.args["merchant"] == sunrise.address and e.args["businessDay"] == day
        ],
    )[0]
    assert reconciled.args["statementBalance"] == reconciled.args["custodyHeld"]
    assert not [e for e in world.events("CustodyAnomaly") if e.args["merchant"] == sunrise.address]


def test_a_payment_the_plan_cannot_accept_is_recorded_and_paid_back_to_the_payer(
    world: World, config: DevnetConfig
) -> None:
    sunrise = merchant_named(config, "training")
    consumer_key = consumer(config, 0)
    agreement_id = world.open_plan(sunrise, consumer_key)
    world.pay(sunrise, agreement_id, 99_999, "0301")  # one fen short
    refused = wait_for(
        "the refused credit on chain",
        lambda: [
            e for e in world.events("CreditRefused") if bytes(e.args["agreementId"]) == agreement_id
        ],
    )[0]
    assert (refused.args["amount"], refused.args["reason"]) == (99_999, m.label("amount"))
    ledger = world.wait_paid_out(agreement_id)
    assert ledger.credits_refused == ledger.paid_to_consumer == 99_999
    assert ledger.deposited == 0
    back = [
        e
        for e in world.account(sunrise)["entries"]
        if not e["credit"] and agreement_id.hex() in (e.get("remittance") or "")
    ]
    assert [(e["amount_fen"], e["counterparty"]["account"]) for e in back] == [
        (99_999, "62220301")
    ]
    # The right amount then funds the plan as usual.
    world.pay(sunrise, agreement_id, 100_000, "0301")
    assert world.wait_funded(agreement_id, 100_000).credits_refused == 99_999


# ---------------------------------------------------------------- the bank misbehaves


def test_a_repeated_notification_funds_the_plan_once(world: World, config: DevnetConfig) -> None:
    sunrise = merchant_named(config, "training")
    agreement_id = world.open_plan(sunrise, consumer(config, 1))
    world.misbehave("duplicate")
    world.pay(sunrise, agreement_id, 100_000, "0002")
    world.wait_funded(agreement_id, 100_000)
    world.wait_paid_out(agreement_id)
    time.sleep(1.0)  # several oracle rounds after the repeat
    assert world.ledger(agreement_id).deposited == 100_000
    funded = [
        e for e in world.events("AgreementFunded") if bytes(e.args["agreementId"]) == agreement_id
    ]
    assert len(funded) == 1
    assert not [p for p in world.parked() if agreement_id.hex() in str(p)]


def test_a_dropped_notification_is_recovered_from_the_statement(
    world: World, config: DevnetConfig
) -> None:
    sunrise = merchant_named(config, "training")
    agreement_id = world.open_plan(sunrise, consumer(config, 2))
    world.misbehave("drop")
    world.pay(sunrise, agreement_id, 100_000, "0003")
    time.sleep(1.5)
    assert world.ledger(agreement_id).deposited == 0
    world.close_day()
    world.wait_funded(agreement_id, 100_000)
    world.wait_paid_out(agreement_id)


def test_a_delayed_notification_funds_the_plan_when_it_comes(
    world: World, config: DevnetConfig
) -> None:
    sunrise = merchant_named(config, "training")
    agreement_id = world.open_plan(sunrise, consumer(config, 0))
    world.misbehave("delay")
    world.pay(sunrise, agreement_id, 100_000, "0004")
    time.sleep(1.5)
    assert world.ledger(agreement_id).deposited == 0
    closed = world.close_day()
    world.wait_funded(agreement_id, 100_000)
    world.wait_paid_out(agreement_id)
    day = business_day_number(date.fromisoformat(closed["business_day"]))
    reconciled = wait_for(
        "reconciliation after the delayed notification",
        lambda: [
            e
            for e in world.events("CustodyReconciled")
            if e.args["merchant"] == sunrise.address and e.args["businessDay"] == day
        ],
    )[0]
    assert reconciled.args["statementBalance"] == reconciled.args["custodyHeld"]


def test_a_garbled_notification_is_parked_as_evidence_and_recovered_from_the_statement(
    world: World, config: DevnetConfig
) -> None:
    sunrise = merchant_named(config, "training")
    agreement_id = world.open_plan(sunrise, consumer(config, 1))
    world.misbehave("corrupt")
    world.pay(sunrise, agreement_id, 100_000, "0006")
    parked = wait_for(
        "the garbled file parked",
        lambda: [p for p in world.parked() if p["reason"] == "malformed bank file"],
    )[-1]
    assert world.ledger(agreement_id).deposited == 0
    kept = world.http.get(f"{world.oracle.url}/evidence/{parked['evidence']}", timeout=10)
    assert kept.status_code == 200
    assert hashlib.sha256(kept.content).hexdigest() == parked["evidence"]
    world.close_day()
    world.wait_funded(agreement_id, 100_000)
    world.wait_paid_out(agreement_id)


def test_a_merchant_registration_with_an_invalid_code_is_refused_and_changes_nothing(
    world: World, config: DevnetConfig
) -> None:
    sunrise = merchant_named(config, "training")
    before = world.http.get(f"{world.oracle.url}/merchants/{sunrise.address}", timeout=10).json()
    wrong_digit = sunrise.uscc[:-1] + ("0" if sunrise.uscc[-1] != "0" else "1")
    for code, problem in ((wrong_digit, "check digit"), ("91350111", "8 characters, not 18")):
        answer = world.http.post(
            world.oracle.url + "/merchants",
            json={
                "address": sunrise.address,
                "uscc": code,
                "name": sunrise.name,
                "industry": sunrise.industry,
                "receiving_account": "RCV-elsewhere",
            },
            timeout=10,
        )
        assert answer.status_code == 422, answer.text
        assert problem in answer.json()["detail"].lower(), answer.text
    after = world.http.get(f"{world.oracle.url}/merchants/{sunrise.address}", timeout=10).json()
    assert after == before


def test_a_payment_for_an_unknown_agreement_is_parked_not_dropped(
    world: World, config: DevnetConfig
) -> None:
    sunrise = merchant_named(config, "training")
    stranger = hashlib.sha256(b"no such agreement").digest()
    reference = world.pay(sunrise, stranger, 12_300, "0005")
    parked = wait_for(
        "the payment parked",
        lambda: [p for p in world.parked() if reference in p["key"]],
    )
    assert "AgreementBookUnknownAgreement" in parked[0]["reason"]
    assert world.client.is_bank_reference_used(hashlib.sha256(reference.encode()).digest()) is False


def test_a_payment_into_another_merchants_custody_account_is_parked(
    world: World, config: DevnetConfig
) -> None:
    sunrise = merchant_named(config, "training")
    minjiang = merchant_named(config, "fitness")
    agreement_id = world.open_plan(sunrise, consumer(config, 2))
    reference = world.pay(minjiang, agreement_id, 100_000, "0007")  # the wrong account
    parked = wait_for(
        "the misdirected payment parked",
        lambda: [p for p in world.parked() if reference in p["key"]],
    )[0]
    assert parked["reason"] == "credit for an agreement of another merchant's custody account"
    assert parked["detail"]["expected_account"] == custody_account(sunrise.uscc)
    assert world.ledger(agreement_id).deposited == 0


# ---------------------------------------------------------------- the oracle dies


@pytest.mark.parametrize(
    "point",
    ["bank-file-read", "action-stored", "action-sent", "instruction-sent"],
)
def test_the_oracle_killed_at_the_worst_moment_loses_and_duplicates_nothing(
    world: World, config: DevnetConfig, point: str
) -> None:
    sunrise = merchant_named(config, "training")
    agreement_id = world.open_plan(sunrise, consumer(config, 1))
    world.restart_oracle(YUFU_ORACLE_CRASH_AT=point)
    world.pay(sunrise, agreement_id, 100_000, f"09{len(point)}")
    if point == "instruction-sent":
        # Instructions come once the first lesson releases the upfront share.
        world.wait_funded(agreement_id, 100_000)
        world.consume(sunrise, consumer(config, 1), agreement_id, 1)
    assert world.oracle.wait_exit(timeout=WAIT_SECONDS) == -9, world.oracle.log()[-3000:]
    world.oracle.start()

    world.wait_funded(agreement_id, 100_000)
    if point != "instruction-sent":
        world.consume(sunrise, consumer(config, 1), agreement_id, 1)
    ledger = world.wait_paid_out(agreement_id)
    time.sleep(1.0)
    funded = [
        e for e in world.events("AgreementFunded") if bytes(e.args["agreementId"]) == agreement_id
    ]
    assert len(funded) == 1
    debits = [
        e
        for e in world.account(sunrise)["entries"]
        if not e["credit"] and agreement_id.hex() in (e.get("remittance") or "")
    ]
    # One debit per release (the upfront share and the lesson), each paid once.
    releases = [
        e for e in world.events("FundsReleased") if bytes(e.args["agreementId"]) == agreement_id
    ]
    assert len(debits) == len(releases) == 2
    assert sum(e["amount_fen"] for e in debits) == ledger.upfront + ledger.released
    assert ledger.paid_to_merchant == ledger.upfront + ledger.released


# ---------------------------------------------------------------- default, licence, anomaly


def test_a_defaults_refunds_are_paid_back_to_the_payers_and_confirmed(
    world: World, config: DevnetConfig
) -> None:
    minjiang = merchant_named(config, "fitness")
    plans = []
    for index in range(2):
        agreement_id = world.open_plan(
            minjiang, consumer(config, index), units=20, unit_price=5_000
        )
        world.pay(minjiang, agreement_id, 100_000, f"10{index}")
        world.wait_funded(agreement_id, 100_000)
        plans.append(agreement_id)
    world.consume(minjiang, consumer(config, 0), plans[0], 4)
    for agreement_id in plans:
        world.wait_paid_out(agreement_id)

    world.client.declare_default(world.desk.regulator_key, minjiang.address, b"\x02" * 32)
    # Every plan of the merchant is settled, then its set-off and the insurer pay the rest.
    world.desk.settle_default(minjiang.address, world.client.agreements_of(minjiang.address))
    for index, agreement_id in enumerate(plans):
        ledger = world.wait_paid_out(agreement_id, merchant_too=False)
        assert ledger.paid_to_consumer > 0
        refunds = [
            e
            for e in world.account(minjiang)["entries"]
            if not e["credit"] and e["counterparty"]["account"] == f"622210{index}"
        ]
        assert sum(e["amount_fen"] for e in refunds) == ledger.paid_to_consumer


def test_the_oracle_killed_between_reading_the_registry_and_posting_attests_once(
    world: World, config: DevnetConfig
) -> None:
    minjiang = merchant_named(config, "fitness")
    world.restart_oracle(YUFU_ORACLE_CRASH_AT="licence-checked")
    answer = world.http.patch(
        f"{world.registry.url}/simulator/licences/{minjiang.uscc}",
        json={"dishonest_debtor": True},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert world.oracle.wait_exit(timeout=WAIT_SECONDS) == -9, world.oracle.log()[-3000:]
    world.oracle.start()
    wait_for(
        "the dishonest-debtor flag attested",
        lambda: (
            world.client.get_merchant(minjiang.address).licence_flags
            & m.LicenceFlag.DISHONEST_DEBTOR
        ),
    )
    time.sleep(RECHECK_SECONDS * 1.5)  # another re-check, which must not attest again
    logs = world.client.w3.eth.get_logs(
        {"fromBlock": 0, "toBlock": "latest", "address": world.client.merchants.address}
    )
    flagged = [
        e
        for e in world.client.decode_logs(logs)
        if e.name == "LicenceAttested"
        and e.args["merchant"] == minjiang.address
        and e.args["flags"] & m.LicenceFlag.DISHONEST_DEBTOR
    ]
    assert len(flagged) == 1


def test_a_revoked_licence_suspends_the_merchant_within_a_recheck(
    world: World, config: DevnetConfig
) -> None:
    lotus = merchant_named(config, "beauty")
    assert world.client.can_sell(lotus.address)
    answer = world.http.patch(
        f"{world.registry.url}/simulator/licences/{lotus.uscc}",
        json={"status": "revoked"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    revoked_at = time.monotonic()
    wait_for(
        "the merchant suspended",
        lambda: world.client.get_merchant(lotus.address).status == m.MerchantStatus.SUSPENDED,
        timeout=RECHECK_SECONDS * 5,
    )
    assert time.monotonic() - revoked_at < RECHECK_SECONDS * 5
    merchant = world.client.get_merchant(lotus.address)
    assert merchant.licence == m.LicenceStatus.REVOKED
    assert not world.client.can_sell(lotus.address)


def licence_attestations(world: World, merchant: DemoMerchant, from_block: int) -> list[Any]:
    """The merchant's LicenceAttested events from ``from_block`` on, with their block's time."""
    client = world.client
    logs = client.w3.eth.get_logs(
        {"fromBlock": from_block, "toBlock": "latest", "address": client.merchants.address}
    )
    found = []
    for log in logs:
        for event in client.decode_logs([log]):
            if event.name == "LicenceAttested" and event.args["merchant"] == merchant.address:
                block_time = client.w3.eth.get_block(log["blockNumber"])["timestamp"]
                found.append((event.args, block_time))
    return found


def test_an_unchanged_licence_is_attested_again_before_its_check_expires(
    world: World, config: DevnetConfig
) -> None:
    sunrise = merchant_named(config, "training")
    client, regulator = world.client, world.desk.regulator_key
    validity = client.licence_validity()
    assert validity == config.rules.licence_validity_days * 86_400
    # The node stamps each block at least a second after the one before, so after the burst of
    # blocks that set this world up its clock is ahead of the wall clock the oracle stamps
    # checks with, and stands still until the wall clock catches up: a validity of seconds
    # means something only from then on.
    wait_for(
        "the wall clock to catch up with the chain's",
        lambda: time.time() >= client.latest_timestamp() + 1,
        timeout=300,
    )
    # With re-checks every 2 s the oracle attests the unchanged finding again once less than a
    # fifth of the validity (6 s) is left: about every 24 s, not on every re-check.
    short = 30
    start = client.w3.eth.block_number
    client.set_licence_validity(regulator, short)
    try:
        first = wait_for(
            "the licence attested again", lambda: licence_attestations(world, sunrise, start)
        )[0][0]
        renewals = wait_for(
            "the licence attested once more before the check expired",
            lambda: licence_attestations(world, sunrise, start)[1:],
            timeout=short * 2,
        )
    finally:
        client.set_licence_validity(regulator, validity)

    renewal, mined_at = renewals[0]
    assert (renewal["status"], renewal["flags"], renewal["licensedSince"]) == (
        first["status"],
        first["flags"],
        first["licensedSince"],
    )
    assert renewal["status"] == m.LicenceStatus.ACTIVE
    assert mined_at <= first["checkedAt"] + short  # before the first one expired
    assert renewal["checkedAt"] - first["checkedAt"] >= short - short // 5 - RECHECK_SECONDS * 2
    assert client.can_sell(sunrise.address)


def test_a_wrong_statement_balance_raises_a_custody_anomaly(
    world: World, config: DevnetConfig
) -> None:
    world.misbehave("wrong_balance", fen=5_000)
    closed = world.close_day()
    day = business_day_number(date.fromisoformat(closed["business_day"]))
    # The bank gets the first statement of the day wrong.
    wrong = next(
        merchant
        for merchant in config.demo.merchants
        if custody_account(merchant.uscc) in closed["statements"][0]
    )
    anomaly = wait_for(
        "the custody anomaly",
        lambda: [
            e
            for e in world.events("CustodyAnomaly")
            if e.args["merchant"] == wrong.address and e.args["businessDay"] == day
        ],
    )[0]
    # The statement overstates the account by 5,000 fen; the chain holds what it confirmed.
    assert anomaly.args["statementBalance"] == world.account(wrong)["balance_fen"] + 5_000
    assert anomaly.args["custodyHeld"] == world.client.custody_held(wrong.address)
    assert world.client.get_merchant(wrong.address).tier >= m.RiskTier.HIGH
    assert world.client.custody_anomalies(wrong.address).count == 1
    # Every merchant's statement of the day was reconciled; an anomaly stands exactly where
    # the bank's figure and the chain's differ (money parked as unattributable shows too).
    reconciled = wait_for(
        "every statement of the day reconciled",
        lambda: (lambda found: found if len(found) == len(config.demo.merchants) else None)(
            [e for e in world.events("CustodyReconciled") if e.args["businessDay"] == day]
        ),
    )
    anomalous = {
        e.args["merchant"] for e in world.events("CustodyAnomaly") if e.args["businessDay"] == day
    }
    for event in reconciled:
        merchant = next(x for x in config.demo.merchants if x.address == event.args["merchant"])
        overstated = 5_000 if merchant is wrong else 0
        assert event.args["statementBalance"] == world.account(merchant)["balance_fen"] + overstated
        assert event.args["custodyHeld"] == world.client.custody_held(merchant.address)
        differs = event.args["statementBalance"] != event.args["custodyHeld"]
        assert (merchant.address in anomalous) == differs


def test_the_oracle_publishes_metrics_and_health(world: World) -> None:
    health = world.http.get(world.oracle.url + "/health", timeout=10).json()
    assert health["status"] == "ok"
    metrics = world.http.get(world.oracle.url + "/metrics", timeout=10).text
    assert 'yufu_oracle_actions{kind="reconcile_custody",state="done"}' in metrics
    assert "yufu_oracle_evidence_files" in metrics
