"""The licence oracle: the business-licence registry's word about each merchant, on chain.

A merchant's application on chain carries only hashes of its unified social credit code and
legal name. The platform hands the oracle the plain values (:meth:`LicenceOracle.register`);
the oracle checks the code (``stdnum.cn.uscc``) and that the values hash to what the merchant
applied with, then asks the registry, keeps the registry's response byte for byte as evidence,
assesses it (:func:`oracle.licence_checks.assess`) and queues a signed attestation carrying the
response's SHA-256. Every registered merchant is checked again on a schedule; a changed finding
(a revoked licence, a new flag) is attested at once, which suspends new sales on chain. An
unchanged finding is attested again when the merchant's last check on chain nears the end of the
registry's licence validity (``MerchantRegistry.licenceValidity``): a check older than that no
longer lets the merchant sell.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime

import requests
from eth_utils import is_address, to_checksum_address

from chain import messages as m
from chain.client import YufuClient
from oracle.bank import custody_account
from oracle.faults import crash_point
from oracle.licence_checks import (
    CHINA_STANDARD_TIME,
    LicenceCheckError,
    LicenceFinding,
    assess,
    normalise_uscc,
    parse_registry_response,
    scope_keywords,
)
from oracle.outbox import ActionKind, Outbox
from oracle.store import OracleStore

log = logging.getLogger("yufu.oracle.licence")

FEED = "licence_feed"
HTTP_TIMEOUT = 10.0
# An unchanged finding is attested again once less than this share of the on-chain licence
# validity is left (a fifth: six days of the devnet's thirty) ...
RENEWAL_SHARE: int = 5
# ... and at least this many re-check periods before the check expires, so that a round
# that fails (the registry down for a while) still leaves time for the next one.
RENEWAL_PERIODS: int = 2

ATTESTATION = ActionKind(
    name="attest_licence",
    feed=FEED,
    message=m.LicenceAttestation,
    subject=lambda attestation: m.address_subject(attestation.merchant),
    build=lambda client, attestation, report, sigs: client.merchants.functions.attestLicence(
        attestation.as_abi(), report.as_abi(), sigs
    ),
)
LICENCE_KINDS = (ATTESTATION,)


class RegistrationError(ValueError):
    """A merchant's registration was refused; the message says which value is wrong."""


class RegistrationConflict(RegistrationError):
    """The code is already registered for another merchant."""


def _is_registry_refusal(body: bytes) -> bool:
    """Whether a 404 body is the registry's own "no such licence" (JSON with an error)."""
    try:
        document = json.loads(body)
    except ValueError:
        return False
    return isinstance(document, dict) and isinstance(document.get("error"), str)


@dataclass(frozen=True)
class Registration:
    """What the platform tells the oracle about a merchant that applied on chain."""

    address: str
    uscc: str
    name: str
    industry: str
    receiving_account: str


def sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class LicenceOracle:
    """Checks merchants' licences against the registry and attests them on chain."""

    def __init__(
        self,
        store: OracleStore,
        client: YufuClient,
        outbox: Outbox,
        registry_url: str,
        *,
        recheck_seconds: float,
        min_age_days: int,
        http: requests.Session | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.outbox = outbox
        self.registry_url = registry_url.rstrip("/")
        self.recheck_seconds = recheck_seconds
        self.min_age_days = min_age_days
        self.http = http or requests.Session()
        self.checks = 0

    def step(self) -> None:
        """One round: check merchants that are due, then send attestations."""
        due_before = time.time() - self.recheck_seconds
        failure: Exception | None = None
        try:
            for row in self.store.query(
                "SELECT address FROM merchants WHERE checked_at IS NULL OR checked_at <= ? "
                "ORDER BY checked_at",
                due_before,
            ):
                try:
                    self.check(row["address"])
                except (OSError, requests.RequestException, LicenceCheckError) as error:
                    # One merchant the registry cannot answer about waits a period; the rest
                    # are checked.
                    failure = failure or error
                    log.warning("licence check of %s failed: %s", row["address"], error)
                    with self.store.transaction() as db:
                        db.execute(
                            "UPDATE merchants SET checked_at = ? WHERE address = ?",
                            (time.time(), row["address"]),
                        )
        finally:
            self.outbox.pump()
        if failure is not None:
            raise failure

    # ------------------------------------------------------------ registration

    def register(self, registration: Registration) -> Registration:
        """Accept a merchant's plain code, name, industry and receiving account.

        Raises
        ------
        RegistrationError
            The code is invalid, or a value does not hash to what the merchant applied with
            on chain, or the merchant has not applied. Nothing is stored then.
        """
        if not is_address(registration.address):
            raise RegistrationError(f"not an address: {registration.address!r}")
        for field, text, longest in (
            ("name", registration.name, 140),
            ("receiving_account", registration.receiving_account, 34),
        ):
            if not 0 < len(text) <= longest or not text.isprintable():
                raise RegistrationError(
                    f"{field} must be 1 to {longest} printable characters (ISO 20022), got {text!r}"
                )
        address = to_checksum_address(registration.address)
        try:
            code = normalise_uscc(registration.uscc)
            scope_keywords(registration.industry)
        except LicenceCheckError as error:
            raise RegistrationError(str(error)) from None
        merchant = self.client.get_merchant(address)
        if merchant.status == m.MerchantStatus.NONE:
            raise RegistrationError(f"merchant {address} has not applied on chain")
        expected = {
            "uscc": (sha256(code), bytes(merchant.uscc_hash)),
            "name": (sha256(registration.name), bytes(merchant.name_hash)),
            "industry": (m.industry_id(registration.industry), bytes(merchant.industry)),
            "receiving_account": (
                sha256(registration.receiving_account),
                bytes(merchant.receiving_account_hash),
            ),
        }
        for field, (given, on_chain) in expected.items():
            if given != on_chain:
                raise RegistrationError(
                    f"{field} does not match the merchant's application on chain "
                    f"(sha256 0x{given.hex()} vs 0x{on_chain.hex()})"
                )
        accepted = Registration(
            address,
            code,
            registration.name,
            registration.industry,
            registration.receiving_account,
        )
        taken = self.store.one(
            "SELECT address FROM merchants WHERE uscc = ? AND address != ?", code, address
        )
        if taken is not None:
            raise RegistrationConflict(
                f"code {code} is already registered for merchant {taken['address']}"
            )
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO merchants (address, uscc, name, industry, custody_account, "
                "receiving_account) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (address) DO UPDATE "
                "SET receiving_account = excluded.receiving_account",
                (
                    address,
                    code,
                    registration.name,
                    registration.industry,
                    custody_account(code),
                    registration.receiving_account,
                ),
            )
        log.info("merchant %s registered for licence checks (%s)", address, code)
        return accepted

    # ------------------------------------------------------------ checks

    def check(self, address: str) -> LicenceFinding | None:
        """Ask the registry about one merchant; attest if the finding changed."""
        row = self.store.one("SELECT * FROM merchants WHERE address = ?", address)
        if row is None:
            raise RegistrationError(f"merchant {address} is not registered with the oracle")
        response = self.http.get(
            f"{self.registry_url}/licences/{row['uscc']}", timeout=HTTP_TIMEOUT
        )
        if response.status_code not in (200, 404) or (
            response.status_code == 404 and not _is_registry_refusal(response.content)
        ):
            # Not the registry's answer about this code (a gateway, a wrong URL): no finding.
            raise LicenceCheckError(
                f"the registry answered HTTP {response.status_code}: {response.text[:200]!r}"
            )
        body = response.content
        today = datetime.now(CHINA_STANDARD_TIME).date()
        expiring = self.check_expiring(address)
        self.checks += 1
        with self.store.transaction() as db:
            digest = self.store.keep(
                body,
                kind="registry-response",
                source=self.registry_url,
                name=f"licence-{row['uscc']}-{int(time.time())}.json",
                refs={
                    "merchant": address,
                    "uscc": row["uscc"],
                    "http_status": response.status_code,
                },
                db=db,
            )
            finding: LicenceFinding | None
            if response.status_code == 404:
                finding = None
                status, since, flags = m.LicenceStatus.UNKNOWN, 0, 0
                reasons: tuple[str, ...] = ("the registry has no licence with this code",)
            else:
                try:
                    record = parse_registry_response(body)
                    if record.uscc != row["uscc"]:
                        raise LicenceCheckError(
                            f"asked about {row['uscc']}, the registry answered about {record.uscc}"
                        )
                except LicenceCheckError as error:
                    OracleStore.park(
                        db,
                        f"registry:{digest}",
                        feed=FEED,
                        reason="malformed registry response",
                        detail={"merchant": address, "problem": str(error)},
                        evidence=digest,
                    )
                    db.execute(
                        "UPDATE merchants SET checked_at = ? WHERE address = ?",
                        (time.time(), address),
                    )
                    return None
                finding = assess(
                    record,
                    expected_name=row["name"],
                    industry=row["industry"],
                    today=today,
                    min_age_days=self.min_age_days,
                )
                status, since, flags = finding.status, finding.licensed_since, finding.flags
                reasons = finding.reasons
            summary = json.dumps(
                {"status": int(status), "licensed_since": since, "flags": flags}, sort_keys=True
            )
            changed = summary != row["last_finding"]
            renewal = not changed and expiring and not self._attestation_queued(db, address)
            if changed or renewal:
                attestation = m.LicenceAttestation(
                    merchant=address,
                    status=int(status),
                    # A licence from before 1970 is simply old enough.
                    licensed_since=max(0, since),
                    flags=flags,
                    checked_at=int(time.time()) - 1,
                    response_hash=bytes.fromhex(digest),
                )
                # Keyed by the check, not the response: the same bytes may mean a new finding
                # (a licence gone, back, gone again).
                Outbox.add(db, f"licence:{address}:{time.time_ns()}", ATTESTATION, attestation)
                log.info(
                    "licence of %s: %s flags=%d %s%s",
                    address,
                    m.LicenceStatus(status).name,
                    flags,
                    "; ".join(reasons) or "clean",
                    " (unchanged; the last check on chain is about to expire)" if renewal else "",
                )
            db.execute(
                "UPDATE merchants SET last_finding = ?, checked_at = ? WHERE address = ?",
                (summary, time.time(), address),
            )
            if changed:
                crash_point("licence-checked")
        return finding

    def check_expiring(self, address: str) -> bool:
        """Whether the merchant's last licence check on chain is close to expiring.

        Close means less than ``1 / RENEWAL_SHARE`` of the validity left, or less than
        ``RENEWAL_PERIODS`` re-check periods, whichever is longer. Time is the next block's:
        the registry judges expiry by block time, which the node keeps at or after the wall
        clock and may run ahead of it after a burst of blocks.
        """
        validity = self.client.licence_validity()
        checked_at = self.client.get_merchant(address).licence_checked_at
        margin = max(validity // RENEWAL_SHARE, RENEWAL_PERIODS * self.recheck_seconds)
        now = max(self.client.latest_timestamp(), int(time.time()))
        return now >= checked_at + validity - margin

    @staticmethod
    def _attestation_queued(db: sqlite3.Connection, address: str) -> bool:
        """Whether an attestation of the merchant is still waiting in the outbox (not done)."""
        row = db.execute(
            "SELECT 1 FROM actions WHERE key LIKE ? AND state IN ('pending', 'sent') LIMIT 1",
            (f"licence:{address}:%",),
        ).fetchone()
        return row is not None
