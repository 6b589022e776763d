"""The custody bank simulator's HTTP interface: a SIMULATOR, not a bank.

The bank side, as the oracle uses it:

- ``GET /health``: ``{"status": "ok", "business_day": "YYYY-MM-DD", ...}``.
- ``POST /pain001``: a ``pain.001.001.09`` as the raw body; the answer is a ``pain.002.001.12``
  (200 with ``ACCP``, or ``RJCT`` and ``DU01``/``AM04``/``AC01``; 400 with ``RJCT``/``FF01``
  for a message that fails its schema; 400 with a JSON error for one that is not ISO 20022 XML).
- ``GET /files?after=<seq>&limit=<n>``: the published ``camt.054`` and ``camt.053`` files after
  ``seq``, in order; ``GET /files/{name}``: one file's bytes.

Simulator controls, for tests and demos (no real bank has them):

- ``POST /simulator/accounts`` opens a custody account; ``GET /simulator/accounts/{id}`` shows
  it with its entries.
- ``POST /simulator/payments``: a consumer paid into custody (books a credit).
- ``POST /simulator/close-day``: statements for the business day, then the next day begins.
- ``POST /simulator/misbehave`` / ``GET /simulator/misbehave``: queue a fault for the next
  notification (``drop``, ``duplicate``, ``delay``, ``corrupt``) or statement
  (``wrong_balance``).

A refused request changes nothing (a received ``pain.001`` is kept whatever the answer) and is
answered with ``{"error": "<what is wrong>"}``: 400 for malformed JSON, a bad query or a bad
instruction, 404 for an unknown account or file, 409 for an account open for someone else, 413
for an oversized body, 422 for a JSON body that breaks the request's rules.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from oracle import iso20022 as iso
from oracle.bank_simulator.state import (
    DATABASE_FILE,
    AccountConflict,
    BankSimulatorError,
    InvalidInstruction,
    SimulatedBank,
    UnknownAccount,
    UnknownFile,
    china_today,
)

DEFAULT_BANK_NAME: Final[str] = "Yufu Custody Bank SIMULATOR"
# The characters of a unified social credit code (GB 32100-2015).
USCC_ALPHABET: Final[str] = "0123456789ABCDEFGHJKLMNPQRTUWXY"
ACCOUNT_PATTERN: Final[str] = f"^CUST-[{USCC_ALPHABET}]{{18}}$"
# Keeps every amount, and every balance they add up to, within ISO 20022's 18 digits.
MAX_AMOUNT_FEN: Final[int] = 10**15
DEFAULT_FILE_PAGE: Final[int] = 100
MAX_FILE_PAGE: Final[int] = 1000
# Characters an XML 1.0 document cannot carry, and carriage returns, which parsers fold.
_NOT_XML_TEXT: Final = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff\ufffe\uffff]")

_ERROR_STATUS: Final[dict[type[BankSimulatorError], int]] = {
    UnknownAccount: 404,
    UnknownFile: 404,
    AccountConflict: 409,
    InvalidInstruction: 400,
}


def _xml_text(value: str) -> str:
    found = _NOT_XML_TEXT.search(value)
    if found is not None:
        raise ValueError(f"character {found.group()!r} cannot be carried in an ISO 20022 message")
    return value


AccountId = Annotated[str, StringConstraints(pattern=ACCOUNT_PATTERN)]
# The ISO 20022 lengths these end up in: Max140Text, Max34Text, Max35Text.
Name = Annotated[str, StringConstraints(min_length=1, max_length=140), AfterValidator(_xml_text)]
ExternalAccount = Annotated[
    str, StringConstraints(min_length=1, max_length=34), AfterValidator(_xml_text)
]
Reference = Annotated[
    str, StringConstraints(min_length=1, max_length=35), AfterValidator(_xml_text)
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OpenAccount(_Request):
    account_id: AccountId
    owner_name: Name


class Payment(_Request):
    account_id: AccountId
    amount_fen: int = Field(gt=0, le=MAX_AMOUNT_FEN)
    payer_name: Name
    payer_account: ExternalAccount
    payer_reference: Reference
    remittance: Name


class Misbehave(_Request):
    mode: Literal["drop", "duplicate", "delay", "corrupt", "wrong_balance", "none"]
    fen: int | None = Field(default=None, ge=-MAX_AMOUNT_FEN, le=MAX_AMOUNT_FEN)


def create_app(
    data_dir: Path, *, start_day: date | None = None, bank_name: str = DEFAULT_BANK_NAME
) -> FastAPI:
    """The simulator's app over the bank kept in ``data_dir`` (created if missing).

    ``start_day`` is the first business day of a new bank (default: today in China); a bank
    reopened from ``data_dir`` keeps its own. ``app.state.bank`` is the open bank, for the
    caller to close.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    bank = SimulatedBank(data_dir / DATABASE_FILE, start_day or china_today())
    app = FastAPI(
        title=f"{bank_name} (SIMULATOR, not a bank)",
        description=__doc__,
    )
    app.state.bank = bank

    @app.exception_handler(BankSimulatorError)
    async def refused(request: Request, error: BankSimulatorError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=_ERROR_STATUS.get(type(error), 400))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        status = 400
        if problems and all(problem["loc"][:1] == ("body",) for problem in problems):
            # Malformed JSON is 400; well-formed JSON that breaks the rules is 422.
            if not any(problem["type"] == "json_invalid" for problem in problems):
                status = 422
        return JSONResponse({"error": _describe(problems)}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "business_day": bank.business_day().isoformat(),
            "bank_name": bank_name,
            "simulator": True,
        }

    # ------------------------------------------------------------ the bank side

    @app.post("/pain001")
    async def receive_pain001(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > iso.MAX_MESSAGE_BYTES:
            return _too_large()
        body = await request.body()
        if len(body) > iso.MAX_MESSAGE_BYTES:
            return _too_large()
        outcome = await run_in_threadpool(bank.execute_pain001, body)
        return Response(
            outcome.report, status_code=outcome.http_status, media_type="application/xml"
        )

    @app.get("/files")
    def list_files(
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_FILE_PAGE)] = DEFAULT_FILE_PAGE,
    ) -> dict[str, Any]:
        return {"files": bank.files(after, limit)}

    @app.get("/files/{name}")
    def get_file(name: str) -> Response:
        return Response(bank.file(name), media_type="application/xml")

    # ------------------------------------------------------------ simulator controls

    @app.post("/simulator/accounts")
    def open_account(request: OpenAccount) -> JSONResponse:
        created = bank.open_account(request.account_id, request.owner_name)
        return JSONResponse(bank.account(request.account_id), status_code=201 if created else 200)

    @app.get("/simulator/accounts/{account_id}")
    def show_account(account_id: str) -> dict[str, Any]:
        return bank.account(account_id)

    @app.post("/simulator/payments", status_code=201)
    def receive_payment(request: Payment) -> dict[str, Any]:
        bank_reference = bank.receive_payment(
            request.account_id,
            request.amount_fen,
            iso.Party(request.payer_name, request.payer_account),
            request.payer_reference,
            request.remittance,
        )
        return {"bank_reference": bank_reference}

    @app.post("/simulator/close-day")
    def close_day() -> dict[str, Any]:
        closed = bank.close_day()
        return {
            "business_day": closed.business_day.isoformat(),
            "statements": closed.statements,
        }

    @app.post("/simulator/misbehave")
    def misbehave(request: Misbehave) -> JSONResponse:
        if request.mode == "wrong_balance" and not request.fen:
            return JSONResponse(
                {"error": "wrong_balance needs a non-zero fen to be off by"}, status_code=422
            )
        if request.mode != "wrong_balance" and request.fen is not None:
            return JSONResponse(
                {"error": f"fen applies to wrong_balance only, not to {request.mode}"},
                status_code=422,
            )
        return JSONResponse({"pending": bank.misbehave(request.mode, request.fen)})

    @app.get("/simulator/misbehave")
    def pending_misbehaviour() -> dict[str, Any]:
        return {"pending": bank.pending_misbehaviour()}

    return app


def _too_large() -> JSONResponse:
    return JSONResponse(
        {"error": f"a pain.001 may be at most {iso.MAX_MESSAGE_BYTES} bytes"}, status_code=413
    )


def _describe(problems: Any) -> str:
    """Validation problems as one line: ``amount_fen: Input should be greater than 0; ...``."""
    parts = []
    for problem in problems:
        if problem["type"] == "json_invalid":
            parts.append(f"the body is not valid JSON: {problem.get('ctx', {}).get('error', '')}")
            continue
        where = ".".join(str(step) for step in problem["loc"] if step != "body")
        parts.append(f"{where}: {problem['msg']}" if where else str(problem["msg"]))
    return "; ".join(parts)
