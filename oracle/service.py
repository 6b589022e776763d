"""The oracle as a process: two feed loops and a small HTTP interface.

``python -m oracle run`` builds an :class:`OracleService`: the bank oracle and the licence oracle,
each with the outbox of its own submitting account, run in their own threads, polling every
``[oracle] poll_interval_ms``. A failing round (the node, the bank or the registry unreachable)
is logged and counted, and the next round tries again; nothing is lost, because every position
is a durable cursor.

The HTTP interface (``[services] oracle_metrics_port``):

- ``GET /health``; ``GET /metrics`` (Prometheus);
- ``GET /evidence`` (the index) and ``GET /evidence/{sha256}`` (the original bytes, for a court
  holding an on-chain hash);
- ``GET /parked``: reports set aside for the regulator, with the reason;
- ``POST /merchants``: the platform registers a merchant's plain code, name, industry and
  receiving account for licence checks and payouts; ``GET /merchants/{address}``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from fastapi import FastAPI, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel
from web3 import Web3

from chain.client import YufuClient
from chain.config import DevnetConfig
from chain.node.service import system_addresses
from chain.serving import serve_app
from oracle.bank import BANK_KINDS, BankEndpoints, BankOracle, custody_account
from oracle.licence import (
    LICENCE_KINDS,
    LicenceOracle,
    Registration,
    RegistrationConflict,
    RegistrationError,
)
from oracle.outbox import Outbox
from oracle.store import OracleStore

log = logging.getLogger("yufu.oracle")

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class OracleOptions:
    """Where the oracle keeps its data and whom it talks to."""

    data_dir: Path
    rpc_url: str
    bank_url: str
    registry_url: str
    poll_seconds: float
    licence_recheck_seconds: float


class FeedLoop:
    """Calls ``step`` every ``period`` seconds in a thread until stopped; counts failures."""

    def __init__(self, name: str, step: Callable[[], None], period: float) -> None:
        self.name = name
        self.step = step
        self.period = period
        self.rounds = 0
        self.failures = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"oracle-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
                self.rounds += 1
            except Exception as error:  # noqa: BLE001 - a feed must survive any round
                self.failures += 1
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("%s round failed: %s", self.name, self.last_error)
            self._stop.wait(self.period)


class OracleService:
    """The bank and licence oracles over one store, as the process runs them."""

    def __init__(self, config: DevnetConfig, options: OracleOptions) -> None:
        self.config = config
        self.options = options
        options.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = OracleStore(options.data_dir)
        w3 = Web3(Web3.HTTPProvider(options.rpc_url, request_kwargs={"timeout": 30}))
        self.client = YufuClient(w3, system_addresses(config))
        self.bank_outbox = self._outbox("bank_feed", BANK_KINDS)
        self.licence_outbox = self._outbox("licence_feed", LICENCE_KINDS)
        self.bank = BankOracle(
            self.store, self.client, self.bank_outbox, BankEndpoints(options.bank_url)
        )
        self.licence = LicenceOracle(
            self.store,
            self.client,
            self.licence_outbox,
            options.registry_url,
            recheck_seconds=options.licence_recheck_seconds,
            min_age_days=config.rules.min_licence_age_days,
        )
        self.loops = [
            FeedLoop("bank", self.bank.step, options.poll_seconds),
            FeedLoop("licence", self.licence.step, options.poll_seconds),
        ]

    def _outbox(self, handle: str, kinds: Any) -> Outbox:
        feed = self.config.oracle_feeds[handle]
        return Outbox(
            self.store,
            self.client,
            sender_key=self.config.organisations[handle].key.private_key,
            # k of n: the devnet holds every signer's key and signs with the first k.
            signer_keys=[signer.private_key for signer in feed.signers][: feed.threshold],
            kinds=kinds,
        )

    def start(self) -> None:
        for loop in self.loops:
            loop.start()

    def stop(self) -> None:
        for loop in self.loops:
            loop.stop()
        self.store.close()


# ---------------------------------------------------------------- HTTP


class MerchantRegistration(BaseModel):
    address: str
    uscc: str
    name: str
    industry: str
    receiving_account: str


class OracleMetrics(Collector):
    """Prometheus metrics read from the store and the loops at scrape time."""

    def __init__(self, service: OracleService) -> None:
        self.service = service

    def collect(self) -> Iterator[Any]:
        store = self.service.store
        actions = GaugeMetricFamily(
            "yufu_oracle_actions", "Chain actions by kind and state", labels=["kind", "state"]
        )
        for row in store.query("SELECT kind, state, COUNT(*) AS n FROM actions GROUP BY 1, 2"):
            actions.add_metric([row["kind"], row["state"]], row["n"])
        yield actions
        instructions = GaugeMetricFamily(
            "yufu_oracle_instructions", "Payment instructions by state", labels=["state"]
        )
        for row in store.query("SELECT state, COUNT(*) AS n FROM instructions GROUP BY 1"):
            instructions.add_metric([row["state"]], row["n"])
        yield instructions
        parked = store.one("SELECT COUNT(*) AS n FROM parked")
        yield GaugeMetricFamily(
            "yufu_oracle_parked",
            "Reports parked for the regulator",
            value=parked["n"] if parked else 0,
        )
        evidence = store.one("SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS b FROM evidence")
        yield GaugeMetricFamily(
            "yufu_oracle_evidence_files",
            "Evidence files kept",
            value=evidence["n"] if evidence else 0,
        )
        bank_cursor = int(store.cursor("bank:files", "0"))
        yield GaugeMetricFamily(
            "yufu_oracle_bank_file_cursor", "Last bank file handled", value=bank_cursor
        )
        chain_cursor = int(store.cursor("chain:entitlements", "0"))
        yield GaugeMetricFamily(
            "yufu_oracle_chain_block_cursor", "Last block read for entitlements", value=chain_cursor
        )
        rounds = CounterMetricFamily("yufu_oracle_rounds", "Feed rounds run", labels=["feed"])
        failures = CounterMetricFamily(
            "yufu_oracle_round_failures", "Feed rounds that failed", labels=["feed"]
        )
        for loop in self.service.loops:
            rounds.add_metric([loop.name], loop.rounds)
            failures.add_metric([loop.name], loop.failures)
        yield rounds
        yield failures
        yield CounterMetricFamily(
            "yufu_oracle_licence_checks", "Registry queries made", value=self.service.licence.checks
        )


def create_app(service: OracleService) -> FastAPI:
    app = FastAPI(title="Yufu oracle", docs_url=None, redoc_url=None)
    registry = CollectorRegistry()
    registry.register(OracleMetrics(service))

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "loops": {
                loop.name: {
                    "rounds": loop.rounds,
                    "failures": loop.failures,
                    "last_error": loop.last_error,
                }
                for loop in service.loops
            },
            "bank_file_cursor": int(service.store.cursor("bank:files", "0")),
        }

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/evidence")
    def evidence_index(limit: int = 1000) -> dict[str, Any]:
        if not 1 <= limit <= 10_000:
            raise HTTPException(400, "limit must be between 1 and 10000")
        return {"evidence": [record.__dict__ for record in service.store.evidence_index(limit)]}

    @app.get("/evidence/{digest}")
    def evidence(digest: str) -> Response:
        digest = digest.lower().removeprefix("0x")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise HTTPException(400, "an evidence name is a SHA-256 in 64 hex digits")
        found = service.store.evidence(digest)
        if found is None:
            raise HTTPException(404, f"no evidence with SHA-256 {digest}")
        record, data = found
        media = "application/xml" if data.lstrip().startswith(b"<") else "application/json"
        return Response(
            data,
            media_type=media,
            headers={"X-Evidence-Kind": record.kind, "X-Evidence-Source": record.source},
        )

    @app.get("/parked")
    def parked() -> dict[str, Any]:
        return {"parked": service.store.parked()}

    @app.post("/merchants", status_code=201)
    def register(body: MerchantRegistration) -> dict[str, Any]:
        try:
            accepted = service.licence.register(Registration(**body.model_dump()))
        except RegistrationConflict as error:
            raise HTTPException(409, str(error)) from None
        except RegistrationError as error:
            raise HTTPException(422, str(error)) from None
        except (OSError, requests.RequestException) as error:
            raise HTTPException(503, f"the chain cannot be asked now: {error}") from None
        return {
            "address": accepted.address,
            "uscc": accepted.uscc,
            "custody_account": custody_account(accepted.uscc),
        }

    @app.get("/merchants/{address}")
    def merchant(address: str) -> dict[str, Any]:
        row = service.store.one("SELECT * FROM merchants WHERE lower(address) = lower(?)", address)
        if row is None:
            raise HTTPException(404, f"merchant {address} is not registered with the oracle")
        return {key: row[key] for key in row.keys()}

    return app


def serve(config: DevnetConfig, options: OracleOptions, host: str, port: int) -> None:
    """Run the oracle until SIGTERM or SIGINT; prints its URL once the port is bound."""
    service = OracleService(config, options)
    try:
        serve_app(
            create_app(service),
            host,
            port,
            lambda url: f"Yufu oracle serving on {url}",
            before_serving=lambda stop: service.start(),
        )
    finally:
        service.stop()
    print("Yufu oracle stopped", flush=True)
