"""The checks the licence oracle applies to a business-licence registry record.

Pure functions, no I/O: the oracle fetches the registry's answer, keeps its bytes as evidence,
and passes them here. `normalise_uscc` checks a unified social credit code (length, alphabet,
check digit) before anything is asked; `parse_registry_response` reads the registry's JSON into
a `LicenceRecord`; `assess` turns a record into a `LicenceFinding`, whose status and flag bits
are what a ``LicenceAttestation`` carries on chain::

    record = parse_registry_response(body)
    finding = assess(record, expected_name=name, industry="training", today=today)
    finding.status, finding.licensed_since, finding.flags   # -> the attestation
    finding.reasons                                         # -> the regulator's screen

The licence's age has no flag bit: the chain computes it itself from ``licensed_since`` and the
minimum age in its rules. `assess` still names a young licence among the reasons so a person
reading the finding sees every problem in one place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Final

from stdnum import exceptions as stdnum_exceptions
from stdnum.cn import uscc as unified_social_credit_code

from chain.messages import LicenceFlag, LicenceStatus

USCC_LENGTH: Final[int] = 18
# The characters a unified social credit code may use (GB 32100-2015): no I, O, S, V, Z.
USCC_ALPHABET: Final[str] = "0123456789ABCDEFGHJKLMNPQRTUWXY"

# The registry's time zone: a licence dated D starts at midnight of D in China Standard Time.
CHINA_STANDARD_TIME: Final[timezone] = timezone(timedelta(hours=8), "CST")

DEFAULT_MIN_AGE_DAYS: Final[int] = 180

# The registry's status words and the chain's status each one becomes.
REGISTRY_STATUSES: Final[Mapping[str, LicenceStatus]] = {
    "active": LicenceStatus.ACTIVE,
    "revoked": LicenceStatus.REVOKED,
    "cancelled": LicenceStatus.CANCELLED,
    "in_deregistration": LicenceStatus.IN_DEREGISTRATION,
}

# Words of a business scope (经营范围) that cover a merchant's industry. A scope must contain at
# least one of its industry's words outside parentheses. Chinese words are those the registry's
# standard scope entries use; English ones cover the devnet's English demo records.
INDUSTRY_SCOPE_KEYWORDS: Final[Mapping[str, tuple[str, ...]]] = {
    "training": ("培训", "辅导", "training", "tutoring"),
    "fitness": ("健身", "瑜伽", "游泳", "体育场地", "fitness", "gym", "yoga"),
    "beauty": ("美容", "美发", "美甲", "美体", "beauty", "salon"),
}

_DATE_PATTERN: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
# Registry scopes qualify an entry in parentheses, usually to exclude something:
# "教育咨询服务（不含涉许可审批的教育培训活动）" is consulting, *not* training.
_PARENTHESISED: Final = re.compile(r"[（(][^（()）]*[)）]")
_FULL_WIDTH_PARENTHESES: Final = str.maketrans({"（": "(", "）": ")"})
_SPACE_NEXT_TO_PARENTHESIS: Final = re.compile(r"\s*([()])\s*")

_STRING_FIELDS: Final[tuple[str, ...]] = (
    "uscc",
    "legal_name",
    "legal_representative",
    "status",
    "licensed_since",
    "business_scope",
    "registration_authority",
)
_BOOLEAN_FIELDS: Final[tuple[str, ...]] = ("abnormal_operations", "dishonest_debtor")


class LicenceCheckError(ValueError):
    """Root of the errors the licence checks raise."""


class InvalidCode(LicenceCheckError):
    """A unified social credit code is malformed; the message says how."""


class MalformedResponse(LicenceCheckError):
    """The registry's answer is not a licence record; the message names the problem."""


class UnknownIndustry(LicenceCheckError):
    """The merchant's industry has no scope keywords."""


@dataclass(frozen=True)
class LicenceRecord:
    """A business licence as the registry reports it."""

    uscc: str
    legal_name: str
    legal_representative: str
    status: str
    licensed_since: date
    business_scope: str
    registration_authority: str
    abnormal_operations: bool
    dishonest_debtor: bool


@dataclass(frozen=True)
class LicenceFinding:
    """What the licence oracle concludes from a record.

    Attributes
    ----------
    status
        The licence status as the chain knows it.
    licensed_since
        Unix seconds of midnight (UTC+8) of the day the licence was issued.
    flags
        Bits of `chain.messages.LicenceFlag`.
    reasons
        One plain sentence per problem found; empty when the licence is clean.
    age_days
        Whole days from the licence's date to the day of the check.
    """

    status: LicenceStatus
    licensed_since: int
    flags: int
    reasons: tuple[str, ...]
    age_days: int


def normalise_uscc(code: str) -> str:
    """Check a unified social credit code and return it in its compact form.

    Spaces and hyphens are dropped and letters upper-cased, as `stdnum.cn.uscc.compact` does.

    Raises
    ------
    InvalidCode
        The code is not 18 characters long, uses a character outside the USCC alphabet, or its
        check digit is wrong. The message says which and quotes the code.
    """
    compact = unified_social_credit_code.compact(code)
    try:
        return str(unified_social_credit_code.validate(compact))
    except stdnum_exceptions.InvalidLength:
        raise InvalidCode(
            f"{code!r} is not a unified social credit code: it has {len(compact)} characters, "
            f"not {USCC_LENGTH}"
        ) from None
    except stdnum_exceptions.InvalidFormat:
        raise InvalidCode(
            f"{code!r} is not a unified social credit code: the first 8 characters must be "
            f"digits and the rest from the alphabet {USCC_ALPHABET}"
        ) from None
    except stdnum_exceptions.InvalidChecksum:
        expected = unified_social_credit_code.calc_check_digit(compact)
        raise InvalidCode(
            f"{code!r} is not a unified social credit code: its check digit is "
            f"{compact[-1]!r}, the first 17 characters give {expected!r}"
        ) from None
    except stdnum_exceptions.ValidationError as problem:
        raise InvalidCode(f"{code!r} is not a unified social credit code: {problem}") from None


def parse_registry_response(body: bytes) -> LicenceRecord:
    """Read the registry's JSON answer for one licence.

    Fields the record does not use (``updated_at``) are ignored; every field it uses must be
    present with the right type.

    Raises
    ------
    MalformedResponse
        The body is not UTF-8 JSON, not an object, or a field is missing, of the wrong type or
        out of range (an unknown status, an impossible date, an invalid code).
    """
    try:
        document: Any = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as problem:
        raise MalformedResponse(f"registry response is not UTF-8: {problem}") from None
    except json.JSONDecodeError as problem:
        raise MalformedResponse(f"registry response is not JSON: {problem}") from None
    if not isinstance(document, dict):
        raise MalformedResponse(
            f"registry response is a JSON {type(document).__name__}, not an object"
        )
    for name in _STRING_FIELDS:
        _require(document, name, str)
        if not document[name].strip():
            raise MalformedResponse(f"registry response field {name!r} is empty")
    for name in _BOOLEAN_FIELDS:
        _require(document, name, bool)
    try:
        code = normalise_uscc(document["uscc"])
    except InvalidCode as problem:
        raise MalformedResponse(f"registry response field 'uscc': {problem}") from None
    status = document["status"]
    if status not in REGISTRY_STATUSES:
        raise MalformedResponse(
            f"registry response field 'status' is {status!r}, "
            f"not one of {', '.join(REGISTRY_STATUSES)}"
        )
    return LicenceRecord(
        uscc=code,
        legal_name=document["legal_name"],
        legal_representative=document["legal_representative"],
        status=status,
        licensed_since=_parse_date(document["licensed_since"]),
        business_scope=document["business_scope"],
        registration_authority=document["registration_authority"],
        abnormal_operations=document["abnormal_operations"],
        dishonest_debtor=document["dishonest_debtor"],
    )


def assess(
    record: LicenceRecord,
    *,
    expected_name: str,
    industry: str,
    today: date,
    min_age_days: int = DEFAULT_MIN_AGE_DAYS,
) -> LicenceFinding:
    """Judge a licence record against the merchant's application.

    Parameters
    ----------
    record
        The registry's record.
    expected_name
        The legal name the merchant applied with. Whitespace and full-width or half-width
        parentheses do not count as differences.
    industry
        The merchant's industry, a key of `INDUSTRY_SCOPE_KEYWORDS`.
    today
        The day of the check, in China Standard Time.
    min_age_days
        The youngest licence accepted, in days.

    Returns
    -------
    LicenceFinding
        The status, date and flags for the attestation, and one reason per problem.

    Raises
    ------
    UnknownIndustry
        The industry has no scope keywords (it is a ``ValueError``).
    LicenceCheckError
        The record's status is none of `REGISTRY_STATUSES` (only for a record not built by
        `parse_registry_response`, which refuses such a status).
    """
    keywords = scope_keywords(industry)
    status = REGISTRY_STATUSES.get(record.status)
    if status is None:
        raise LicenceCheckError(
            f"unknown licence status {record.status!r}: expected one of "
            f"{', '.join(REGISTRY_STATUSES)}"
        )

    flags = 0
    reasons: list[str] = []
    if status is not LicenceStatus.ACTIVE:
        reasons.append(f"the licence is {record.status.replace('_', ' ')}, not active")
    if normalise_name(record.legal_name) != normalise_name(expected_name):
        flags |= LicenceFlag.NAME_MISMATCH
        reasons.append(
            f"the registered legal name {record.legal_name!r} is not the name applied with, "
            f"{expected_name!r}"
        )
    if not scope_covers(record.business_scope, industry):
        flags |= LicenceFlag.SCOPE_MISMATCH
        reasons.append(
            f"the business scope covers no {industry} activity "
            f"(none of {', '.join(keywords)} outside parentheses)"
        )
    if record.abnormal_operations:
        flags |= LicenceFlag.ABNORMAL_OPERATIONS
        reasons.append("the business is on the abnormal-operations list (经营异常名录)")
    if record.dishonest_debtor:
        flags |= LicenceFlag.DISHONEST_DEBTOR
        reasons.append("the business is a listed dishonest judgment debtor (失信被执行人)")
    age_days = (today - record.licensed_since).days
    if age_days < 0:
        reasons.append(
            f"the licence is dated {record.licensed_since.isoformat()}, after the day of the "
            f"check {today.isoformat()}"
        )
    elif age_days < min_age_days:
        reasons.append(
            f"the licence was issued {age_days} days ago, on "
            f"{record.licensed_since.isoformat()}; at least {min_age_days} days are required"
        )
    return LicenceFinding(
        status=status,
        licensed_since=start_of_day(record.licensed_since),
        flags=flags,
        reasons=tuple(reasons),
        age_days=age_days,
    )


def normalise_name(name: str) -> str:
    """A legal name with full-width parentheses made half-width and whitespace tidied.

    Runs of whitespace (the ideographic space included) become one space, and none is kept
    next to a parenthesis, so ``"美容店（个体工商户）"`` and ``"美容店 (个体工商户)"`` are
    the same name.
    """
    half_width = name.translate(_FULL_WIDTH_PARENTHESES)
    single_spaced = " ".join(half_width.split())
    return _SPACE_NEXT_TO_PARENTHESIS.sub(r"\1", single_spaced)


def scope_covers(business_scope: str, industry: str) -> bool:
    """Whether a business scope names an activity of the industry.

    Text in parentheses is left out: there the registry qualifies an entry, typically to
    exclude an activity. English keywords match regardless of case.

    Raises
    ------
    UnknownIndustry
        The industry has no scope keywords.
    """
    keywords = scope_keywords(industry)
    unqualified = business_scope
    # Repeat so nested parentheses are removed from the inside out.
    while (shorter := _PARENTHESISED.sub("", unqualified)) != unqualified:
        unqualified = shorter
    folded = unqualified.casefold()
    return any(keyword.casefold() in folded for keyword in keywords)


def scope_keywords(industry: str) -> tuple[str, ...]:
    """The scope keywords of an industry.

    Raises
    ------
    UnknownIndustry
        The industry is not a key of `INDUSTRY_SCOPE_KEYWORDS`.
    """
    keywords = INDUSTRY_SCOPE_KEYWORDS.get(industry)
    if keywords is None:
        raise UnknownIndustry(
            f"unknown industry {industry!r}: expected one of {', '.join(INDUSTRY_SCOPE_KEYWORDS)}"
        )
    return keywords


def start_of_day(day: date) -> int:
    """Unix seconds of midnight, China Standard Time, at the start of ``day``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=CHINA_STANDARD_TIME).timestamp())


def _require(document: dict[str, Any], name: str, kind: type) -> None:
    if name not in document:
        raise MalformedResponse(f"registry response has no field {name!r}")
    if not isinstance(document[name], kind):
        raise MalformedResponse(
            f"registry response field {name!r} is {document[name]!r}, "
            f"expected a {'boolean' if kind is bool else 'string'}"
        )


def _parse_date(text: str) -> date:
    if not _DATE_PATTERN.fullmatch(text):
        raise MalformedResponse(
            f"registry response field 'licensed_since' is {text!r}, expected YYYY-MM-DD"
        )
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise MalformedResponse(
            f"registry response field 'licensed_since' is {text!r}, not a calendar date"
        ) from None
