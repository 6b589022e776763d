"""Measure the gas of Yufu's main calls on eth-tester and write ``docs/gas-report.md``.

The script deploys the system on an eth-tester chain (py-evm, in process) exactly as the demo
does, plays the calls a plan's life is made of — open, fund, consume one record and a batch of
100, cool off, terminate, pay out, reconcile the merchant's custody with the bank's statement,
default and settle — and records the gas each receipt reports
(``gasUsed``, the 21,000 base cost included). It also times the batch of 100 records and prints
the records per second; that number depends on the machine and is printed, never asserted.

Every input is fixed — the block time is moved to a fixed date first, and salts and bank
references are derived from names — so two runs on the same code report the same gas.

Usage::

    python scripts/gas_report.py [--output docs/gas-report.md]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from eth_tester import EthereumTester
from web3 import EthereumTesterProvider, Web3

from chain import messages as m
from chain.client import GAS_MARGIN, TxResult
from chain.compiler import COMPILER_SETTINGS, load_contract, read_toolchain_versions
from chain.config import DemoMerchant, load_config
from chain.deploy import DeployedSystem, configured_accounts, deploy_system, fund_accounts
from chain.errors import ChainError
from chain.scenario import SECONDS_PER_DAY, PlanDesk, sha256

PROJECT_ROOT: Path = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT: Path = PROJECT_ROOT / "docs" / "gas-report.md"
# A fixed block time, later than any real clock this will run on (2100-01-01 UTC): every signed
# timestamp, and so every calldata byte and every gas figure, is the same from run to run.
START_TIMESTAMP: int = 4_102_444_800
BATCH_SIZE: int = 100
# The insurer's bond on the merchant (50,000 RMB), enough to cover any shortfall here.
POLICY_COVERAGE_FEN: int = 5_000_000
VISIT_PRICE_FEN: int = 10_000
BATCH_VISIT_PRICE_FEN: int = 1_000
PLAN_VISITS: int = 20


@dataclass(frozen=True)
class Measurement:
    """One row of the report."""

    call: str
    gas: int
    notes: str


@dataclass(frozen=True)
class BatchTiming:
    """Wall-clock seconds of one batch: as the client sends it, and executed alone."""

    records: int
    with_estimate: float
    alone: float

    def describe(self) -> str:
        """The timing in words, records per second first."""
        return (
            f"Batch of {self.records} records on eth-tester (wall clock on this machine): "
            f"{self.records / self.alone:.0f} records/s executed and mined "
            f"({self.alone:.2f} s); {self.records / self.with_estimate:.0f} records/s through "
            f"the client's default gas estimation ({self.with_estimate:.2f} s)"
        )


@dataclass(frozen=True)
class Report:
    """Everything measured in one run."""

    calls: list[Measurement]
    deployment: list[Measurement]
    batch: BatchTiming


class GasBench:
    """A deployed system and the fitness merchant of the devnet, with deterministic inputs."""

    def __init__(
        self, tester: EthereumTester, system: DeployedSystem, desk: PlanDesk, merchant: DemoMerchant
    ) -> None:
        self.tester = tester
        self.system = system
        self.desk = desk
        self.client = system.client
        self.merchant_key = merchant.key.private_key
        self.merchant = merchant.address
        self.template_id = system.template_ids[("named_card", merchant.industry)]
        consumers = desk.config.demo.consumers
        self.consumer_key = consumers[0].key.private_key
        bank_feed = desk.config.oracle_feeds["bank_feed"]
        self.bank_signers = desk.bank_signers[: bank_feed.threshold]

    def open(self, label: str, units: int, unit_price: int) -> tuple[bytes, TxResult]:
        """Sign and open a plan whose salt is derived from ``label``."""
        signed = self.desk.sign_agreement(
            self.merchant_key,
            self.consumer_key,
            self.template_id,
            units=units,
            unit_price=unit_price,
            term_days=365,
            salt=sha256(f"gas report plan {label}"),
        )
        return self.desk.open(signed)

    def fund(self, agreement_id: bytes, label: str) -> TxResult:
        """The bank feed reports the plan paid, signed by exactly its threshold of signers."""
        paid = self.client.get_agreement(agreement_id).total_paid
        return self.desk.fund(
            agreement_id,
            paid,
            bank_reference=sha256(f"gas report funding {label}"),
            signer_keys=self.bank_signers,
        )

    def open_and_fund(self, label: str, units: int, unit_price: int) -> bytes:
        """A funded plan, ready to consume."""
        agreement_id, _ = self.open(label, units, unit_price)
        self.fund(agreement_id, label)
        return agreement_id

    def consume(self, agreement_id: bytes, sequence: int) -> TxResult:
        """Record one visit, signed by merchant and consumer."""
        return self.desk.consume(
            self.desk.sign_record(agreement_id, sequence, self.merchant_key, self.consumer_key)
        )

    def pay_refund(self, agreement_id: bytes, label: str) -> tuple[TxResult, TxResult]:
        """The bank feed instructs the refund to the consumer and reports it paid."""
        amount = self.client.get_ledger(agreement_id).refunded
        return self.pay(agreement_id, label, m.Payee.CONSUMER, amount)

    def pay_merchant(self, agreement_id: bytes, label: str) -> tuple[TxResult, TxResult]:
        """The bank feed instructs everything released so far to the merchant and reports it
        paid."""
        amount = self.client.get_ledger(agreement_id).unpaid_to_merchant()
        return self.pay(agreement_id, label, m.Payee.MERCHANT, amount)

    def pay(
        self, agreement_id: bytes, label: str, payee: m.Payee, amount: int
    ) -> tuple[TxResult, TxResult]:
        """The bank feed registers a payment instruction, then reports it paid out of custody,
        with references named after ``label``; returns both results."""
        instruction_id = sha256(f"gas report instruction {label}")
        _, instructed = self.desk.instruct_payment(
            agreement_id,
            payee,
            amount,
            instruction_id=instruction_id,
            signer_keys=self.bank_signers,
        )
        paid = self.desk.confirm_payout(
            agreement_id,
            payee,
            amount,
            bank_reference=sha256(f"gas report payout {label}"),
            instruction_id=instruction_id,
            signer_keys=self.bank_signers,
        )
        return instructed, paid

    def reconcile(self, label: str, business_day: int, statement_balance: int) -> TxResult:
        """The bank feed reports the merchant's end-of-day custody balance."""
        return self.desk.reconcile_custody(
            self.merchant,
            business_day,
            statement_balance,
            statement_hash=sha256(f"gas report statement {label}"),
            signer_keys=self.bank_signers,
        )

    def write_policy(self) -> tuple[int, TxResult]:
        """The insurer writes a one-year bond on the merchant; returns its id and the result."""
        now = self.client.latest_timestamp()
        return self.client.write_policy(
            self.desk.insurer_key,
            self.merchant,
            POLICY_COVERAGE_FEN,
            now - SECONDS_PER_DAY,
            now + 365 * SECONDS_PER_DAY,
            sha256("gas report policy"),
        )

    def time_batch(self, agreement_id: bytes, count: int) -> tuple[TxResult, BatchTiming]:
        """Record ``count`` records in one batch, twice from the same state, timing each.

        The first run goes through the client as callers use it, which asks the node for a gas
        estimate first; eth-tester estimates by a binary search that executes the transaction
        again and again. The second run, from a snapshot taken before the first, sends the same
        transaction with the gas given, so it times execution and mining alone.
        """
        records = [
            self.desk.sign_record(agreement_id, sequence, self.merchant_key, self.consumer_key)
            for sequence in range(1, count + 1)
        ]
        snapshot = self.tester.take_snapshot()
        started = time.perf_counter()
        estimated = self.desk.consume_batch(records)
        with_estimate = time.perf_counter() - started

        self.tester.revert_to_snapshot(snapshot)
        function = self.client.book.functions.recordConsumptionBatch(
            [signed.record.as_abi() for signed in records],
            [signed.merchant_signature for signed in records],
            [signed.consumer_signature for signed in records],
        )
        gas = int(estimated.gas_used * GAS_MARGIN)
        started = time.perf_counter()
        result = self.client.transact(self.desk.operator_key, function, gas=gas)
        alone = time.perf_counter() - started
        if result.gas_used != estimated.gas_used:
            raise RuntimeError(
                f"the batch used {estimated.gas_used} gas, then {result.gas_used} from one state"
            )
        return result, BatchTiming(count, with_estimate, alone)


def start_devnet() -> tuple[Web3, EthereumTester]:
    """An eth-tester chain whose next block is stamped ``START_TIMESTAMP``."""
    tester = EthereumTester()
    w3 = Web3(EthereumTesterProvider(tester))
    tester.time_travel(START_TIMESTAMP)
    return w3, tester


def measure_deployment(system: DeployedSystem) -> list[Measurement]:
    """Gas of each contract's deployment, then of the setup transactions together."""
    rows = []
    steps = dict(system.deployment)
    for name in system.client.addresses.by_contract():
        runtime = f"runtime code {load_contract(name).runtime_size:,} B"
        rows.append(Measurement(name, steps[f"deploy {name}"].gas_used, runtime))
    setup = [result for step, result in system.deployment if not step.startswith("deploy ")]
    rows.append(
        Measurement(
            f"setup ({len(setup)} transactions)",
            sum(result.gas_used for result in setup),
            "admit members and system contracts, configure the 3 feeds, register the templates",
        )
    )
    return rows


def measure_calls(bench: GasBench) -> tuple[list[Measurement], BatchTiming]:
    """Play the main calls once each; returns the rows and the timing of the batch."""
    desk, client = bench.desk, bench.client
    rows: list[Measurement] = []
    signatures = f"bank report with {len(bench.bank_signers)} signatures"
    visits = f"{PLAN_VISITS} visits × {VISIT_PRICE_FEN // 100} RMB"

    def add(call: str, result: TxResult, notes: str) -> None:
        rows.append(Measurement(call, result.gas_used, notes))

    plan, opened = bench.open("defaulting", PLAN_VISITS, VISIT_PRICE_FEN)
    add("openAgreement", opened, f"{visits}; both signatures checked, document anchored")
    funded = bench.fund(plan, "defaulting")
    custody = funded.event("AgreementFunded").args["custodyBps"] / 100
    add("confirmFunding", funded, f"{signatures}; {custody:g} % stays frozen; anchored")
    first = bench.consume(plan, 1)
    add("recordConsumption", first, "record #1 of a plan: two signatures, release, anchor")
    add("recordConsumption (later record)", bench.consume(plan, 2), "record #2 of the plan")

    batch_plan = bench.open_and_fund("batch", BATCH_SIZE, BATCH_VISIT_PRICE_FEN)
    batch, timing = bench.time_batch(batch_plan, BATCH_SIZE)
    add(
        f"recordConsumptionBatch ({BATCH_SIZE} records)",
        batch,
        f"records #1–#{BATCH_SIZE} of a {BATCH_SIZE}-visit plan; the last one completes it",
    )
    rows.append(
        Measurement(
            "recordConsumptionBatch (per record)",
            batch.gas_used // BATCH_SIZE,
            f"{batch.gas_used:,} ÷ {BATCH_SIZE}; one record alone costs {first.gas_used:,}",
        )
    )

    cooled_plan = bench.open_and_fund("cooling off", PLAN_VISITS, VISIT_PRICE_FEN)
    cooled = desk.cool_off(cooled_plan, bench.consumer_key)
    add("cancelInCoolingOff", cooled, "unused plan on its funding day; the whole principal due")
    instructed, payout = bench.pay_refund(cooled_plan, "cooling off")
    add("instructPayment (refund)", instructed, f"{signatures}: the cooling-off refund claimed")
    add("confirmPayout (refund)", payout, f"{signatures}: the cooling-off refund was paid")

    ended_plan = bench.open_and_fund("termination", PLAN_VISITS, VISIT_PRICE_FEN)
    bench.consume(ended_plan, 1)
    ended = desk.terminate(ended_plan, bench.consumer_key)
    add("terminate", ended, f"after 1 of {PLAN_VISITS} visits; face-value refund")

    held = client.custody_held(bench.merchant)
    day = client.latest_timestamp() // SECONDS_PER_DAY
    matched = bench.reconcile("match", day, held)
    add(
        "reconcileCustody (balances match)",
        matched,
        f"{signatures}; the statement equals the {held // 100:,} RMB the desk holds",
    )
    # The next day's statement, reported on that day (a statement cannot postdate its report).
    bench.tester.time_travel(client.latest_timestamp() + SECONDS_PER_DAY)
    mismatch = bench.reconcile("mismatch", day + 1, held - 100)
    add(
        "reconcileCustody (mismatch)",
        mismatch,
        f"{signatures}; 1 RMB short: anomaly recorded, statement anchored, tier Low → High",
    )

    policy_id, written = bench.write_policy()
    add("writePolicy", written, "one-year bond; pending until the regulator registers it")
    registered = desk.register_policy(policy_id)
    add("registerPolicy", registered, "the bond now covers the merchant (at most 8 at a time)")
    # The bank has paid the merchant its upfront share and releases, so custody cannot cover
    # the whole refund and the default opens an insurance claim.
    bench.pay_merchant(plan, "merchant before default")
    declared = client.declare_default(desk.regulator_key, bench.merchant, sha256("closure"))
    add("declareDefault", declared, "merchant Approved → Defaulted")
    others = [other for other in client.agreements_of(bench.merchant) if other != plan]
    if others:
        client.settle_default(desk.regulator_key, others)
    settled = client.settle_default(desk.regulator_key, [plan])
    add(
        "settleDefault (1 plan)",
        settled,
        f"after 2 of {PLAN_VISITS} visits; custody refunds, the merchant's unpaid entitlement "
        "is set aside",
    )
    if others:
        client.distribute_set_off(desk.regulator_key, bench.merchant, others)
    distributed = client.distribute_set_off(desk.regulator_key, bench.merchant, [plan])
    claim = distributed.event("ClaimOpened").args
    add(
        "distributeSetOff (1 plan, with claim)",
        distributed,
        f"the set-off pays first; the shortfall of {claim['loss'] // 100:,} RMB opens a claim "
        f"({claim['covered'] // 100:,} RMB covered)",
    )
    claim_paid = desk.confirm_claim_paid(
        int(claim["claimId"]), int(claim["covered"]), signer_keys=bench.bank_signers
    )
    add("confirmClaimPaid", claim_paid, f"{signatures}; the insurer paid the whole claim")
    return rows, timing


def measure() -> Report:
    """Deploy on a fresh eth-tester chain and measure everything."""
    config = load_config()
    w3, tester = start_devnet()
    fund_accounts(w3, configured_accounts(config))
    system = deploy_system(w3, config)
    desk = PlanDesk(system, config)
    fitness = next(merchant for merchant in config.demo.merchants if merchant.industry == "fitness")
    desk.onboard(fitness.key.private_key, fitness.uscc, fitness.name, fitness.industry)
    calls, batch = measure_calls(GasBench(tester, system, desk, fitness))
    return Report(calls, measure_deployment(system), batch)


# ---------------------------------------------------------------- the report


def table(first_column: str, rows: Sequence[Measurement]) -> list[str]:
    """A markdown table of measurements."""
    lines = [f"| {first_column} | gas | notes |", "|---|---:|---|"]
    for row in rows:
        # The function or contract name as code, what follows it (the case measured) as text.
        name, _, case = row.call.partition(" ")
        label = f"`{name}` {case}".rstrip()
        lines.append(f"| {label} | {row.gas:,} | {row.notes} |")
    return lines


def compiler_description() -> str:
    """The compiler and settings the measured bytecode came from."""
    versions = read_toolchain_versions()
    optimizer = COMPILER_SETTINGS["optimizer"]
    optimizer_text = f"on, {optimizer['runs']} runs" if optimizer["enabled"] else "off"
    return (
        f"solc {versions['solc']}, optimizer {optimizer_text}, "
        f"viaIR {str(COMPILER_SETTINGS['viaIR']).lower()}, "
        f"evmVersion {COMPILER_SETTINGS['evmVersion']}; "
        f"OpenZeppelin Contracts {versions['@openzeppelin/contracts']}"
    )


def render(report: Report, today: datetime.date) -> str:
    """The markdown document."""
    chain = f"eth-tester {metadata.version('eth-tester')}, py-evm {metadata.version('py-evm')}"
    lines = [
        "# Gas report",
        "",
        f"Produced by `python scripts/gas_report.py` (`make gas-report`) on {today.isoformat()}; "
        "do not edit by hand, run the script again.",
        "",
        f"- Chain: {chain}, in process; the system deployed from `hardhat-free-devnet.toml` "
        "as `chain.deploy.deploy_system` does it.",
        f"- Compiler: {compiler_description()} (`chain/compiler.py`, `COMPILER_SETTINGS`).",
        "- Gas is the receipt's `gasUsed`: the 21,000 base cost and calldata included. Plans are "
        "sold by Minjiang Fitness (a devnet demo merchant) under the `named_card` template. "
        "Inputs are fixed, so a rerun on the same code gives the same numbers.",
        "- The script also prints how many records per second a batch of 100 achieves on "
        "eth-tester; that depends on the machine and is left out of this file.",
        "",
        "## Calls",
        "",
        *table("call", report.calls),
        "",
        "## Deployment",
        "",
        *table("contract", report.deployment),
        "",
        f"Total deployment gas: {sum(row.gas for row in report.deployment):,}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the tables and the batch throughput, write the report."""
    parser = argparse.ArgumentParser(
        description="Measure the gas of Yufu's main calls on eth-tester."
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the markdown report"
    )
    arguments = parser.parse_args(argv)
    try:
        report = measure()
    except ChainError as error:
        print(f"gas report failed: {error}", file=sys.stderr)
        return 1
    document = render(report, datetime.date.today())
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(document, encoding="utf-8")
    print(document)
    print(report.batch.describe())
    print(f"wrote {arguments.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
