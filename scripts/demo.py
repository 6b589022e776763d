"""Play the life of prepaid plans on an embedded devnet and print every step.

This is what ``make demo`` runs until the Yufu node arrives. It starts an eth-tester chain
(py-evm) inside this process, funds the accounts of ``hardhat-free-devnet.toml`` for gas, deploys
and configures the system as the configured regulator, and then plays the parties with the
devnet's keys:

1. the regulator onboards Sunrise Tutoring (admit, apply, licence attested by 2 of 3 feed
   signers, approve) and Minjiang Fitness, on which the insurer writes a performance bond;
2. consumer 1 buys 20 lessons, pays into custody and takes three (one record alone, then a batch
   of two); the refund preview says what ending the plan now would return;
3. consumer 2 pays for a plan and cools off within the 7 days: the whole principal back;
4. consumer 3 buys a fitness card and uses part of it, then the club defaults: the regulator
   settles, custody refunds what it holds, the shortfall becomes an insurance claim, and the bank
   and the insurer report paying;
5. consumer 1 files a complaint, the merchant answers, the regulator resolves;
6. every agreement's ledger is printed with the conservation check
   ``deposited = frozen + released + refunded + upfront``, and one consumption record is looked
   up by its hash, as a court would.

Each transaction prints on one line: block, gas used, what happened, transaction hash. Money is
integer fen on chain and shown in RMB with two decimals. The exit status is 0 only when every
ledger conserves its money (and the record is found where it was written).

Usage::

    python scripts/demo.py [--quiet]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from eth_tester import EthereumTester
from web3 import EthereumTesterProvider, Web3

from chain import messages as m
from chain.client import TxResult, YufuClient
from chain.config import DemoMerchant, DevnetConfig, load_config
from chain.deploy import DeployedSystem, configured_accounts, deploy_system, fund_accounts
from chain.errors import ChainError
from chain.scenario import (
    REQUEST_LIFETIME_SECONDS,
    SECONDS_PER_DAY,
    PlanDesk,
    SignedRecord,
    sha256,
)

# The performance bond the insurer writes on the fitness club, in fen (50,000 RMB).
POLICY_COVERAGE_FEN: int = 5_000_000
POLICY_DAYS: int = 365
# How many days after paying consumer 2 changes their mind (the template allows 7).
COOLING_OFF_AFTER_DAYS: int = 3
# Hex digits shown of an agreement id or hash where the full value would clutter a line.
SHORT_HEX_DIGITS: int = 10
LEDGER_COLUMNS: tuple[str, ...] = ("deposited", "frozen", "released", "refunded", "upfront")


# ---------------------------------------------------------------- printing


def rmb(fen: int) -> str:
    """An amount of integer fen in RMB with two decimals: ``180000`` → ``1,800.00``."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def percent(bps: int) -> str:
    """Basis points as a percentage: ``3000`` → ``30%``, ``3050`` → ``30.50%``."""
    whole, rest = divmod(bps, 100)
    return f"{whole}%" if rest == 0 else f"{whole}.{rest:02d}%"


def short(value: bytes) -> str:
    """The first hex digits of an id or hash, enough to tell them apart on screen."""
    return "0x" + value.hex()[:SHORT_HEX_DIGITS] + "…"


@dataclass
class Narrator:
    """Prints the story: one line per transaction, indented lines for its numbers."""

    quiet: bool = False

    def section(self, title: str) -> None:
        """Start a part of the story."""
        self.line(f"\n== {title}")

    def step(self, result: TxResult, what: str) -> None:
        """One transaction: block, gas used, what it did, its hash."""
        block, gas = result.block_number, result.gas_used
        self.line(f"  #{block:<4} gas {gas:>9,}  {what:<56} {result.tx_hash}")

    def detail(self, text: str) -> None:
        """Numbers under the step they belong to."""
        self.line(f"{'':22}→ {text}")

    def line(self, text: str) -> None:
        """Any other line of the story."""
        if not self.quiet:
            print(text)

    def always(self, text: str = "") -> None:
        """A line printed even with ``--quiet``: the ledgers, the evidence, the verdict."""
        print(text)


# ---------------------------------------------------------------- the chain


def start_devnet() -> tuple[Web3, EthereumTester]:
    """An eth-tester chain (py-evm) in this process, and web3 connected to it."""
    tester = EthereumTester()
    return Web3(EthereumTesterProvider(tester)), tester


def advance_days(tester: EthereumTester, w3: Web3, days: int) -> None:
    """Mine a block ``days`` after the latest one (eth-tester's time travel)."""
    latest = int(w3.eth.get_block("latest")["timestamp"])
    tester.time_travel(latest + days * SECONDS_PER_DAY)


def deploy(w3: Web3, config: DevnetConfig, say: Narrator) -> DeployedSystem:
    """Fund the configured accounts, deploy and configure the system, print what it cost."""
    fund_accounts(w3, configured_accounts(config))
    system = deploy_system(w3, config)
    steps = dict(system.deployment)
    for name in system.client.addresses.by_contract():
        say.step(steps[f"deploy {name}"], f"regulator deploys {name}")
    setup = [result for step, result in system.deployment if not step.startswith("deploy ")]
    say.detail(
        f"then {len(setup)} setup transactions (members, feeds, templates) in blocks "
        f"{setup[0].block_number}–{setup[-1].block_number}, "
        f"gas {sum(result.gas_used for result in setup):,}"
    )
    return system


# ---------------------------------------------------------------- onboarding


def onboard(desk: PlanDesk, merchant: DemoMerchant, name: str, say: Narrator) -> str:
    """Admit, apply, attest the licence with just enough signers, approve; returns the address."""
    key, address = merchant.key.private_key, merchant.address
    say.step(desk.admit_merchant(key, merchant.name), f"regulator admits {name} as a member")
    applied = desk.apply(key, merchant.uscc, merchant.name, merchant.industry)
    say.step(applied, f"{name} applies ({merchant.industry}; USCC, name hashed)")
    feed = desk.config.oracle_feeds["licence_feed"]
    signers = desk.licence_signers[: feed.threshold]
    attested = desk.attest_licence(address, signer_keys=signers)
    signed = f"{len(signers)} of {len(feed.signers)} signed"
    say.step(attested, f"licence feed attests: active, {signed}")
    approved = desk.client.approve_merchant(
        desk.regulator_key, address, sha256(f"approval:{merchant.uscc}")
    )
    say.step(approved, f"regulator approves {name}")
    may_sell = "yes" if desk.client.can_sell(address) else "NO"
    say.detail(f"{name} is {address}; may sell plans: {may_sell}")
    return address


def show_template(system: DeployedSystem, name: str, industry: str, say: Narrator) -> int:
    """Print a template the deployment registered; returns its id."""
    template_id = system.template_ids[(name, industry)]
    registered = dict(system.deployment)[f"register template {name}/{industry}"]
    template = system.client.get_template(template_id)
    say.step(registered, f"template {template_id} '{name}' for {industry}, at deployment")
    units = "any number of units" if template.max_units == 0 else f"{template.max_units} units"
    rule = m.RefundRule(template.refund_rule).name.lower()
    say.detail(
        f"per plan at most {rmb(template.max_amount)}, {template.max_term_days} days, {units}; "
        f"{template.cooling_off_days} days cooling-off; "
        f"custody at least {percent(template.min_custody_bps)}; refund rule {rule}"
    )
    return template_id


def write_policy(desk: PlanDesk, merchant: str, name: str, say: Narrator) -> int:
    """The insurer writes a one-year performance bond on ``merchant`` and the regulator
    registers it; returns its id."""
    now = desk.client.latest_timestamp()
    policy_id, result = desk.client.write_policy(
        desk.insurer_key,
        merchant,
        POLICY_COVERAGE_FEN,
        now - SECONDS_PER_DAY,
        now + POLICY_DAYS * SECONDS_PER_DAY,
        sha256(f"performance bond on {merchant}"),
    )
    say.step(result, f"insurer writes policy {policy_id} on {name}")
    say.detail(f"covers defaults up to {rmb(POLICY_COVERAGE_FEN)} for {POLICY_DAYS} days")
    registered = desk.register_policy(policy_id)
    say.step(registered, f"regulator registers policy {policy_id}: it now counts")
    return policy_id


# ---------------------------------------------------------------- plans


def sign_and_fund(
    desk: PlanDesk,
    merchant_key: str,
    consumer_key: str,
    template_id: int,
    parties: str,
    *,
    units: int,
    unit_price: int,
    bonus: int = 0,
    say: Narrator,
) -> bytes:
    """Both parties sign, the operator submits, the bank feed reports the payment into custody."""
    signed = desk.sign_agreement(
        merchant_key, consumer_key, template_id, units=units, unit_price=unit_price, bonus=bonus
    )
    agreement_id, opened = desk.open(signed)
    say.step(opened, f"{parties} sign plan {short(agreement_id)}")
    with_bonus = f" with {rmb(bonus)} bonus" if bonus else ""
    paid = signed.terms.total_paid
    say.detail(f"{units} × {rmb(unit_price)}{with_bonus}: consumer pays {rmb(paid)}")

    feed = desk.config.oracle_feeds["bank_feed"]
    signers = desk.bank_signers[: feed.threshold]
    funded = desk.fund(agreement_id, paid, signer_keys=signers)
    event = funded.event("AgreementFunded").args
    say.step(funded, f"bank feed reports {rmb(event['deposited'])} paid into custody")
    say.detail(
        f"custody ratio {percent(event['custodyBps'])}: frozen {rmb(event['frozen'])}, "
        f"upfront {rmb(event['upfront'])} (the merchant's after cooling-off or a first use) "
        f"({len(signers)} of {len(feed.signers)} feed signers)"
    )
    return agreement_id


def consume(
    desk: PlanDesk,
    agreement_id: bytes,
    merchant_key: str,
    consumer_key: str,
    count: int,
    say: Narrator,
) -> tuple[list[SignedRecord], TxResult]:
    """Record ``count`` lessons or visits: one alone, or several in one batch."""
    first = desk.client.get_agreement(agreement_id).next_sequence
    records = [
        desk.sign_record(agreement_id, sequence, merchant_key, consumer_key)
        for sequence in range(first, first + count)
    ]
    if count == 1:
        result = desk.consume(records[0])
        what = f"record #{first}, signed by merchant and consumer"
    else:
        result = desk.consume_batch(records)
        what = f"records #{first}–#{first + count - 1} in one batch"
    released = sum(event.args["amount"] for event in result.named("FundsReleased"))
    frozen = desk.client.get_ledger(agreement_id).frozen
    say.step(result, what)
    say.detail(f"released {rmb(released)} to the merchant; still frozen {rmb(frozen)}")
    return records, result


def preview_refund(client: YufuClient, agreement_id: bytes, say: Narrator) -> None:
    """What ending the plan now would return: a call, so no transaction and nothing signed."""
    preview = client.preview_refund(agreement_id)
    agreement = client.get_agreement(agreement_id)
    say.detail(
        f"refund preview after {agreement.units_consumed} of {agreement.units} lessons: "
        f"{rmb(preview.refund)} ({rmb(preview.from_custody)} from custody, "
        f"{rmb(preview.shortfall)} owed by the merchant)"
    )


def cool_off(
    desk: PlanDesk,
    tester: EthereumTester,
    agreement_id: bytes,
    consumer_key: str,
    say: Narrator,
) -> None:
    """Some days after paying, with nothing consumed, the consumer cancels."""
    advance_days(tester, desk.client.w3, COOLING_OFF_AFTER_DAYS)
    result = desk.cool_off(agreement_id, consumer_key)
    refund = result.event("RefundGranted").args
    say.step(result, f"consumer 2 cooled off on day {COOLING_OFF_AFTER_DAYS} of 7")
    say.detail(
        f"full refund {rmb(refund['refund'])}: {rmb(refund['fromCustody'])} from custody, "
        f"{rmb(refund['shortfall'])} owed back by the merchant (the bank had not paid it yet)"
    )


def settle_default(
    desk: PlanDesk, merchant: str, name: str, agreement_id: bytes, say: Narrator
) -> int:
    """The regulator declares the merchant in default and settles its plan; returns the claim."""
    declared = desk.client.declare_default(
        desk.regulator_key, merchant, sha256(f"closure notice: {merchant}")
    )
    say.step(declared, f"regulator declares {name} in default")
    settled = desk.client.settle_default(desk.regulator_key, [agreement_id])
    refund = settled.event("RefundGranted").args
    say.step(settled, f"regulator settles the default of plan {short(agreement_id)}")
    say.detail(
        f"refund of unconsumed value {rmb(refund['refund'])}: "
        f"{rmb(refund['fromCustody'])} from custody, shortfall {rmb(refund['shortfall'])}"
    )
    distributed = desk.client.distribute_set_off(
        desk.regulator_key, merchant, desk.client.agreements_of(merchant)
    )
    claim = distributed.event("ClaimOpened").args
    say.step(distributed, "regulator distributes the set-off: its consumers first, then insurance")
    say.detail(
        f"insurance claim {claim['claimId']}: loss {rmb(claim['loss'])}, "
        f"covered {rmb(claim['covered'])}, as the cover stood when default was declared"
    )
    for part in settled.named("ClaimCovered"):
        say.detail(f"policy {part.args['policyId']} covers {rmb(part.args['amount'])}")
    return int(claim["claimId"])


def pay_merchant(desk: PlanDesk, agreement_id: bytes, name: str, say: Narrator) -> None:
    """The bank pays the merchant everything released so far, and its feed reports the payout."""
    amount = desk.client.get_ledger(agreement_id).unpaid_to_merchant()
    result = desk.confirm_payout(agreement_id, m.Payee.MERCHANT, amount)
    say.step(result, f"bank feed confirms payout {rmb(amount)} to {name}")


def pay_refund(desk: PlanDesk, agreement_id: bytes, consumer: str, say: Narrator) -> None:
    """The bank pays the consumer what custody refunds, and its feed reports the payout."""
    amount = desk.client.get_ledger(agreement_id).refunded
    result = desk.confirm_payout(agreement_id, m.Payee.CONSUMER, amount)
    say.step(result, f"bank feed confirms refund payout {rmb(amount)} to {consumer}")


def pay_claim(desk: PlanDesk, claim_id: int, say: Narrator) -> None:
    """The insurer pays what the claim covers; the bank feed reports the payment."""
    covered = desk.client.get_claim(claim_id).covered
    result = desk.confirm_claim_paid(claim_id, covered)
    say.step(result, f"bank feed confirms the insurer paid claim {claim_id}: {rmb(covered)}")


def handle_complaint(
    desk: PlanDesk, agreement_id: bytes, consumer_key: str, merchant_key: str, say: Narrator
) -> None:
    """The consumer complains through the operator, the merchant answers, the regulator rules."""
    client = desk.client
    # Only the hash of the complaint goes on chain; its text stays with the platform.
    evidence = sha256("complaint: the lesson of 12 May was cancelled without notice")
    deadline = client.latest_timestamp() + REQUEST_LIFETIME_SECONDS
    request = m.ComplaintRequest(agreement_id, evidence, deadline)
    signature = request.sign(consumer_key, client.complaints_domain())
    complaint_id, filed = client.file_complaint(
        desk.operator_key, agreement_id, evidence, deadline, signature
    )
    say.step(filed, f"consumer 1 files complaint {complaint_id}, evidence {short(evidence)}")

    answer = sha256("answer: the lesson is rescheduled")
    answered = client.answer_complaint(merchant_key, complaint_id, answer)
    say.step(answered, f"Sunrise Tutoring answers complaint {complaint_id}")

    resolution = sha256("resolution: a make-up lesson is ordered")
    resolved = client.resolve_complaint(desk.regulator_key, complaint_id, True, resolution)
    say.step(resolved, f"regulator resolves complaint {complaint_id}: upheld")
    stats = client.complaint_stats(client.get_agreement(agreement_id).merchant)
    say.detail(f"its complaints: {stats.filed} filed, {stats.open} open, {stats.upheld} upheld")


# ---------------------------------------------------------------- final checks


def check_ledgers(client: YufuClient, merchants: Sequence[tuple[str, str]], say: Narrator) -> bool:
    """Print every agreement's ledger and its conservation check; True when all pass."""
    header = " ".join(f"{column:>10}" for column in LEDGER_COLUMNS)
    say.always(f"  {'plan':<13} {'merchant':<17} {'state':<10} {header}  conservation")
    all_conserved = True
    for address, name in merchants:
        for agreement_id in client.agreements_of(address):
            ledger = client.get_ledger(agreement_id)
            state = m.AgreementState(client.get_agreement(agreement_id).state).name
            amounts = " ".join(f"{rmb(getattr(ledger, column)):>10}" for column in LEDGER_COLUMNS)
            conserved = ledger.is_conserved()
            all_conserved = all_conserved and conserved
            say.always(
                f"  {short(agreement_id):<13} {name:<17} {state.lower().replace('_', ' '):<10} "
                f"{amounts}  {'OK' if conserved else 'FAIL'}"
            )
    return all_conserved


def look_up_record(
    client: YufuClient, signed: SignedRecord, recorded: TxResult, say: Narrator
) -> bool:
    """Look a consumption record up by its hash alone; True when found where it was recorded."""
    record = signed.record
    digest = record.digest(client.book_domain())
    anchor = client.lookup_evidence(digest)
    kind = m.EvidenceKind(anchor.kind).name if anchor.block_number else "none"
    found = anchor.block_number == recorded.block_number and kind == "CONSUMPTION_RECORDED"
    contracts = {address: name for name, address in client.addresses.by_contract().items()}
    submitter = contracts.get(anchor.submitter, "not a system contract")
    say.always(f"  record #{record.sequence} of plan {short(record.agreement_id)}, by its hash:")
    say.always(f"    hash      0x{digest.hex()}")
    say.always(f"    anchored  block {anchor.block_number}, kind {kind}, by {submitter}")
    verdict = "matches" if found else "DOES NOT match"
    say.always(f"    {verdict} transaction {recorded.tx_hash} in block {recorded.block_number}")
    return found


# ---------------------------------------------------------------- the story


def play(quiet: bool) -> bool:
    """Run the whole demo; True when every ledger conserves its money and the record is found."""
    say = Narrator(quiet)
    config = load_config()
    w3, tester = start_devnet()
    say.always("Yufu demo on an embedded devnet (eth-tester, in process); amounts in RMB.")
    say.line("Each transaction: #block, gas used, what happened, transaction hash.")

    say.section("Deployment")
    system = deploy(w3, config, say)
    desk = PlanDesk(system, config)
    client = system.client

    tutoring, fitness = config.demo.merchants[0], config.demo.merchants[1]
    tutoring_key, fitness_key = tutoring.key.private_key, fitness.key.private_key
    consumer_keys = [consumer.key.private_key for consumer in config.demo.consumers]

    say.section("Merchant onboarding")
    tutoring_address = onboard(desk, tutoring, "Sunrise Tutoring", say)
    fitness_address = onboard(desk, fitness, "Minjiang Fitness", say)

    say.section("Standard contracts")
    training_id = show_template(system, "training", tutoring.industry, say)
    card_id = show_template(system, "named_card", fitness.industry, say)

    say.section("Insurance")
    write_policy(desk, fitness_address, "Minjiang Fitness", say)

    say.section("Plan 1: consumer 1 buys 20 lessons from Sunrise Tutoring")
    plan_1 = sign_and_fund(
        desk,
        tutoring_key,
        consumer_keys[0],
        training_id,
        "consumer 1 and Sunrise Tutoring",
        units=20,
        unit_price=10_000,
        bonus=20_000,
        say=say,
    )
    (first_record,), first_recorded = consume(desk, plan_1, tutoring_key, consumer_keys[0], 1, say)
    consume(desk, plan_1, tutoring_key, consumer_keys[0], 2, say)
    preview_refund(client, plan_1, say)

    say.section("Plan 2: consumer 2 pays for 10 lessons, then cools off")
    plan_2 = sign_and_fund(
        desk,
        tutoring_key,
        consumer_keys[1],
        training_id,
        "consumer 2 and Sunrise Tutoring",
        units=10,
        unit_price=15_000,
        say=say,
    )
    cool_off(desk, tester, plan_2, consumer_keys[1], say)

    say.section("Plan 3: consumer 3 buys a fitness card; the club defaults")
    plan_3 = sign_and_fund(
        desk,
        fitness_key,
        consumer_keys[2],
        card_id,
        "consumer 3 and Minjiang Fitness",
        units=30,
        unit_price=10_000,
        say=say,
    )
    consume(desk, plan_3, fitness_key, consumer_keys[2], 5, say)
    pay_merchant(desk, plan_3, "Minjiang Fitness", say)
    claim_id = settle_default(desk, fitness_address, "Minjiang Fitness", plan_3, say)
    pay_refund(desk, plan_3, "consumer 3", say)
    pay_claim(desk, claim_id, say)

    say.section("Complaint")
    handle_complaint(desk, plan_1, consumer_keys[0], tutoring_key, say)

    say.always()
    say.always("== Ledgers in RMB (conserved: deposited = frozen + released + refunded + upfront)")
    merchants = [(tutoring_address, "Sunrise Tutoring"), (fitness_address, "Minjiang Fitness")]
    conserved = check_ledgers(client, merchants, say)

    say.always()
    say.always("== Evidence lookup")
    found = look_up_record(client, first_record, first_recorded, say)

    say.always()
    say.always("every ledger conserves its money" if conserved else "CONSERVATION FAILED")
    return conserved and found


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, play the demo and return the exit status."""
    parser = argparse.ArgumentParser(
        description="Play prepaid plans' lives on an embedded devnet and print every step."
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print only the ledgers, the evidence and the verdict"
    )
    arguments = parser.parse_args(argv)
    try:
        passed = play(arguments.quiet)
    except ChainError as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
