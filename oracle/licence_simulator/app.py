"""The licence registry simulator's HTTP interface: a SIMULATOR, not the regulator's registry.

It stands in for the national enterprise credit information system so the licence oracle can be
written and tested against a real HTTP service. It shares no code with the oracle that checks
its answers.

Read side, as the oracle uses it:

- ``GET /health``
- ``GET /licences/{uscc}``: the licence as JSON, serialised deterministically (sorted keys,
  UTF-8, no ASCII escapes, no spaces), because those exact bytes are what the oracle hashes and
  keeps as evidence. 404 when there is no such licence, 400 when the path is not 18 characters
  of the USCC alphabet.

Simulator controls, for tests and demos (no real registry has them):

- ``PUT /simulator/licences/{uscc}``: create or replace a whole record.
- ``PATCH /simulator/licences/{uscc}``: change some of ``status``, ``abnormal_operations``,
  ``dishonest_debtor``, ``legal_name``, ``business_scope``, ``licensed_since``.

Every change sets ``updated_at``. A refused request changes nothing and is answered with
``{"error": "<what is wrong>"}``: 400 for a bad code in the path (its check digit included),
422 for a bad body.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Strict
from stdnum.cn import uscc as unified_social_credit_code

from chain.config import DevnetConfig, load_config
from oracle.licence_simulator.seed import seed_records
from oracle.licence_simulator.state import REGISTRY_TIME_ZONE, LicenceStore

USCC_ALPHABET: Final[str] = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_SHAPE: Final = re.compile(f"[{USCC_ALPHABET}]{{18}}")
_DATE_SHAPE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")

Status = Literal["active", "revoked", "cancelled", "in_deregistration"]


# --- errors -------------------------------------------------------------------------------


class RegistryError(Exception):
    """Root of the simulator's refusals; ``http_status`` is the answer's status code."""

    http_status: int = 400


class MalformedCode(RegistryError):
    """The code in the path is not a unified social credit code."""

    http_status = 400


class NoSuchLicence(RegistryError):
    """The registry holds no licence with this code."""

    http_status = 404

    def __init__(self) -> None:
        super().__init__("no licence with this code")


class InvalidRecord(RegistryError):
    """A record or change breaks a rule the request models cannot express."""

    http_status = 422


# --- request bodies -------------------------------------------------------------------------


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


def _calendar_date(text: str) -> str:
    if not _DATE_SHAPE.fullmatch(text):
        raise ValueError(f"{text!r} is not a date written YYYY-MM-DD")
    try:
        date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a calendar date") from None
    return text


Text = Annotated[str, Strict(), AfterValidator(_not_blank)]
DateText = Annotated[str, Strict(), AfterValidator(_calendar_date)]
Flag = Annotated[bool, Strict()]


class LicenceBody(BaseModel):
    """A whole record, for ``PUT``.

    ``uscc`` may be repeated from the path (then it must match) and ``updated_at`` may be
    present and is ignored, so a record read with ``GET`` can be sent back as it is.
    """

    model_config = ConfigDict(extra="forbid")

    uscc: Annotated[str, Strict()] | None = None
    legal_name: Text
    legal_representative: Text
    status: Status
    licensed_since: DateText
    business_scope: Text
    registration_authority: Text
    abnormal_operations: Flag
    dishonest_debtor: Flag
    updated_at: Annotated[str, Strict()] | None = None


class LicenceChange(BaseModel):
    """Some fields of a record, for ``PATCH``."""

    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    abnormal_operations: Flag | None = None
    dishonest_debtor: Flag | None = None
    legal_name: Text | None = None
    business_scope: Text | None = None
    licensed_since: DateText | None = None


# --- the code in the path ---------------------------------------------------------------


def _check_shape(code: str) -> None:
    if not _USCC_SHAPE.fullmatch(code):
        raise MalformedCode(
            f"{code!r} is not a unified social credit code: expected 18 characters of "
            f"{USCC_ALPHABET}"
        )


def _valid_code(uscc: str) -> str:
    """The path's code, refused with 400 unless its check digit is right.

    A dependency rather than a check in the route, so a bad code is reported before the body.
    """
    code = uscc
    _check_shape(code)
    if not code[:8].isdigit():
        raise MalformedCode(
            f"{code!r} is not a unified social credit code: its first 8 characters must be digits"
        )
    expected = unified_social_credit_code.calc_check_digit(code)
    if code[-1] != expected:
        raise MalformedCode(
            f"{code!r} is not a unified social credit code: its check digit is {code[-1]!r}, "
            f"the first 17 characters give {expected!r}"
        )
    return code


ValidCode = Annotated[str, Depends(_valid_code)]


# --- the app --------------------------------------------------------------------------------


def create_app(data_dir: Path, *, config: DevnetConfig | None = None) -> FastAPI:
    """Build the simulator on the SQLite registry in ``data_dir``.

    An empty registry is seeded with the demo merchants of ``config`` (by default the shipped
    devnet configuration) and the situations of `oracle.licence_simulator.seed`, dated back
    from today in China Standard Time. The store is ``app.state.store``; whoever runs the app
    closes it.
    """
    store = LicenceStore(data_dir)
    if store.count() == 0:
        merchants = (config or load_config()).demo.merchants
        today = _registry_today()
        store.seed(seed_records(merchants, today))

    app = FastAPI(
        title="Yufu licence registry simulator (SIMULATOR, not the registry)",
        description=__doc__,
    )
    app.state.store = store

    @app.exception_handler(RegistryError)
    async def refuse(request: Request, error: RegistryError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=error.http_status)

    @app.exception_handler(RequestValidationError)
    async def refuse_body(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _describe(error)}, status_code=422)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "simulator": True, "licences": store.count()}

    @app.get("/licences/{uscc}")
    def read_licence(uscc: str) -> Response:
        _check_shape(uscc)
        record = store.get(uscc)
        if record is None:
            raise NoSuchLicence()
        return _record_response(record)

    @app.put("/simulator/licences/{uscc}")
    def put_licence(uscc: ValidCode, body: LicenceBody) -> Response:
        if body.uscc is not None and body.uscc != uscc:
            raise InvalidRecord(f"uscc: the body says {body.uscc!r}, the path {uscc!r}")
        fields = body.model_dump(exclude={"updated_at"})
        record, created = store.put({**fields, "uscc": uscc})
        return _record_response(record, status_code=201 if created else 200)

    @app.patch("/simulator/licences/{uscc}")
    def patch_licence(uscc: ValidCode, body: LicenceChange) -> Response:
        changes = body.model_dump(exclude_unset=True)
        if not changes:
            raise InvalidRecord(
                f"nothing to change: give one or more of {', '.join(LicenceChange.model_fields)}"
            )
        nulls = sorted(name for name, value in changes.items() if value is None)
        if nulls:
            raise InvalidRecord(f"{', '.join(nulls)}: may not be null")
        record = store.update(uscc, changes)
        if record is None:
            raise NoSuchLicence()
        return _record_response(record)

    return app


def serialise_record(record: dict[str, Any]) -> bytes:
    """The registry's bytes for a record: sorted keys, UTF-8, no ASCII escapes, no spaces."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8"
    )


def _record_response(record: dict[str, Any], status_code: int = 200) -> Response:
    return Response(
        serialise_record(record), status_code=status_code, media_type="application/json"
    )


def _describe(error: RequestValidationError) -> str:
    problems = []
    for problem in error.errors():
        if problem["type"] == "json_invalid":
            problems.append(f"the body is not valid JSON: {problem['ctx']['error']}")
            continue
        where = ".".join(str(part) for part in problem["loc"] if part != "body") or "body"
        problems.append(f"{where}: {problem['msg']}")
    return "; ".join(problems)


def _registry_today() -> date:
    return datetime.now(REGISTRY_TIME_ZONE).date()
