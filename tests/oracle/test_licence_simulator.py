"""The licence registry simulator as a real process over real HTTP.

Read-only tests share one simulator per module (``registry``); tests that change records or
stop the process get their own (``licence_simulator``).
"""

from __future__ import annotations

import hashlib
import json
import signal
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest
import requests
from licence_fixtures import ANNOUNCEMENT, LicenceSimulator
from stdnum.cn import uscc as unified_social_credit_code

from chain.config import load_config
from chain.messages import LicenceFlag, LicenceStatus
from oracle.licence_checks import (
    CHINA_STANDARD_TIME,
    LicenceFinding,
    assess,
    parse_registry_response,
)
from oracle.licence_simulator import seed


def with_check_digit(first_seventeen: str) -> str:
    return first_seventeen + unified_social_credit_code.calc_check_digit(first_seventeen)


def with_wrong_check_digit(code: str) -> str:
    return code[:-1] + ("0" if code[-1] != "0" else "1")


TIMEOUT = 10
DEMO_MERCHANTS = load_config().demo.merchants
# Not in the seed set.
NEW_CODE = with_check_digit("91350111MA35P2K8Q")
NEW_RECORD: dict[str, Any] = {
    "legal_name": "福州市晋安区新芽艺术培训有限公司",
    "legal_representative": "周明",
    "status": "active",
    "licensed_since": "2022-05-20",
    "business_scope": "文化艺术培训；组织文化艺术交流活动",
    "registration_authority": "福州市晋安区市场监督管理局",
    "abnormal_operations": False,
    "dishonest_debtor": False,
}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LicenceSimulator]:
    """One simulator shared by the module's read-only tests."""
    root = tmp_path_factory.mktemp("licence-registry")
    simulator = LicenceSimulator(root / "data", root / "logs")
    simulator.start()
    yield simulator
    simulator.close()


def today_in_china() -> date:
    return datetime.now(CHINA_STANDARD_TIME).date()


def fetch(simulator: LicenceSimulator, code: str) -> requests.Response:
    return requests.get(f"{simulator.url}/licences/{code}", timeout=TIMEOUT)


def finding_of(simulator: LicenceSimulator, code: str, name: str, industry: str) -> LicenceFinding:
    answer = fetch(simulator, code)
    assert answer.status_code == 200, answer.text
    record = parse_registry_response(answer.content)
    return assess(record, expected_name=name, industry=industry, today=today_in_china())


# ---------------------------------------------------------------- reading


def test_the_simulator_announces_itself_in_one_line_and_is_healthy(
    registry: LicenceSimulator,
) -> None:
    lines = registry.stdout.splitlines()
    assert len(lines) == 1
    assert ANNOUNCEMENT.fullmatch(lines[0])
    assert lines[0].endswith(f"serving on {registry.url}")
    assert registry.port != 0
    health = requests.get(f"{registry.url}/health", timeout=TIMEOUT)
    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "simulator": True,
        "licences": len(DEMO_MERCHANTS) + len(seed.SEED_BUSINESSES),
    }


@pytest.mark.parametrize("merchant", DEMO_MERCHANTS, ids=lambda merchant: merchant.industry)
def test_the_demo_merchants_are_registered_and_clean(
    registry: LicenceSimulator, merchant: Any
) -> None:
    finding = finding_of(registry, merchant.uscc, merchant.name, merchant.industry)
    assert finding.status is LicenceStatus.ACTIVE
    assert finding.flags == 0
    assert finding.reasons == ()
    assert 2 * 365 <= finding.age_days <= 5 * 366


@pytest.mark.parametrize(
    ("code", "status", "flags", "reason"),
    [
        (seed.SEED_ACTIVE, LicenceStatus.ACTIVE, 0, None),
        (seed.SEED_INDIVIDUAL, LicenceStatus.ACTIVE, 0, None),
        (seed.SEED_REVOKED, LicenceStatus.REVOKED, 0, "revoked, not active"),
        (seed.SEED_CANCELLED, LicenceStatus.CANCELLED, 0, "cancelled, not active"),
        (
            seed.SEED_IN_DEREGISTRATION,
            LicenceStatus.IN_DEREGISTRATION,
            0,
            "in deregistration, not active",
        ),
        (seed.SEED_YOUNG, LicenceStatus.ACTIVE, 0, "issued 60 days ago"),
        (
            seed.SEED_ABNORMAL_OPERATIONS,
            LicenceStatus.ACTIVE,
            LicenceFlag.ABNORMAL_OPERATIONS,
            "abnormal-operations list",
        ),
        (
            seed.SEED_DISHONEST_DEBTOR,
            LicenceStatus.ACTIVE,
            LicenceFlag.DISHONEST_DEBTOR,
            "dishonest judgment debtor",
        ),
        (
            seed.SEED_SCOPE_MISMATCH,
            LicenceStatus.ACTIVE,
            LicenceFlag.SCOPE_MISMATCH,
            "covers no training activity",
        ),
        (
            seed.SEED_REVOKED_AND_LISTED,
            LicenceStatus.REVOKED,
            LicenceFlag.ABNORMAL_OPERATIONS | LicenceFlag.DISHONEST_DEBTOR,
            "revoked, not active",
        ),
    ],
)
def test_each_seeded_situation_gives_its_finding(
    registry: LicenceSimulator, code: str, status: LicenceStatus, flags: int, reason: str | None
) -> None:
    business = next(b for b in seed.SEED_BUSINESSES if b.uscc == code)
    finding = finding_of(registry, code, business.legal_name, seed.SEED_INDUSTRIES[code])
    assert finding.status is status
    assert finding.flags == flags
    if reason is None:
        assert finding.reasons == ()
    else:
        assert any(reason in line for line in finding.reasons), finding.reasons


def test_every_seeded_code_is_valid_and_distinct() -> None:
    codes = [business.uscc for business in seed.SEED_BUSINESSES]
    codes += [merchant.uscc for merchant in DEMO_MERCHANTS]
    assert len(set(codes)) == len(codes)
    for code in codes:
        assert unified_social_credit_code.validate(code) == code


def test_a_licence_is_served_as_deterministic_utf8_json(registry: LicenceSimulator) -> None:
    first = fetch(registry, seed.SEED_INDIVIDUAL)
    second = fetch(registry, seed.SEED_INDIVIDUAL)
    assert first.headers["content-type"] == "application/json"
    assert hashlib.sha256(first.content).digest() == hashlib.sha256(second.content).digest()
    document = json.loads(first.content)
    assert first.content == json.dumps(
        document, sort_keys=True, ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")
    assert "（个体工商户）".encode() in first.content
    assert sorted(document) == [
        "abnormal_operations",
        "business_scope",
        "dishonest_debtor",
        "legal_name",
        "legal_representative",
        "licensed_since",
        "registration_authority",
        "status",
        "updated_at",
        "uscc",
    ]


def test_an_unknown_code_is_not_found(registry: LicenceSimulator) -> None:
    answer = fetch(registry, NEW_CODE)
    assert answer.status_code == 404
    assert answer.json() == {"error": "no licence with this code"}


@pytest.mark.parametrize(
    "code",
    ["91350102MA32B7XK4", "91350102MA32B7XK4MM", "91350102ma32b7xk4m", "91350102MA32B7XKIM"],
)
def test_a_code_outside_the_uscc_alphabet_or_length_is_a_bad_request(
    registry: LicenceSimulator, code: str
) -> None:
    answer = fetch(registry, code)
    assert answer.status_code == 400
    assert "is not a unified social credit code" in answer.json()["error"]


# ---------------------------------------------------------------- refused changes


@pytest.mark.parametrize(
    ("method", "code", "payload", "http_status", "problem"),
    [
        ("PATCH", seed.SEED_ACTIVE, {"status": "closed"}, 422, "status"),
        ("PATCH", seed.SEED_ACTIVE, {"abnormal_operations": "yes"}, 422, "abnormal_operations"),
        ("PATCH", seed.SEED_ACTIVE, {"dishonest_debtor": 1}, 422, "dishonest_debtor"),
        ("PATCH", seed.SEED_ACTIVE, {"licensed_since": "2024-02-30"}, 422, "not a calendar"),
        ("PATCH", seed.SEED_ACTIVE, {"licensed_since": "2024/01/02"}, 422, "YYYY-MM-DD"),
        ("PATCH", seed.SEED_ACTIVE, {"legal_name": " "}, 422, "blank"),
        ("PATCH", seed.SEED_ACTIVE, {"status": None}, 422, "may not be null"),
        ("PATCH", seed.SEED_ACTIVE, {}, 422, "nothing to change"),
        ("PATCH", seed.SEED_ACTIVE, {"uscc": NEW_CODE}, 422, "Extra inputs"),
        ("PATCH", seed.SEED_ACTIVE, {"registration_authority": "x"}, 422, "Extra inputs"),
        (
            "PATCH",
            with_wrong_check_digit(seed.SEED_ACTIVE),
            {"status": "revoked"},
            400,
            "check digit",
        ),
        ("PUT", seed.SEED_ACTIVE, {**NEW_RECORD, "status": "open"}, 422, "status"),
        ("PUT", seed.SEED_ACTIVE, {**NEW_RECORD, "uscc": NEW_CODE}, 422, "the body says"),
        (
            "PUT",
            seed.SEED_ACTIVE,
            {k: v for k, v in NEW_RECORD.items() if k != "status"},
            422,
            "status: Field required",
        ),
        ("PUT", with_wrong_check_digit(NEW_CODE), NEW_RECORD, 400, "check digit"),
        ("PUT", "91350102MA32B7XK4", NEW_RECORD, 400, "18 characters"),
    ],
)
def test_an_invalid_change_is_refused_and_changes_nothing(
    registry: LicenceSimulator,
    method: str,
    code: str,
    payload: dict[str, Any],
    http_status: int,
    problem: str,
) -> None:
    before = fetch(registry, seed.SEED_ACTIVE).content
    answer = requests.request(
        method, f"{registry.url}/simulator/licences/{code}", json=payload, timeout=TIMEOUT
    )
    assert answer.status_code == http_status, answer.text
    assert problem in answer.json()["error"]
    assert fetch(registry, seed.SEED_ACTIVE).content == before
    if code != seed.SEED_ACTIVE:
        assert fetch(registry, code).status_code in (400, 404)
    assert fetch(registry, NEW_CODE).status_code == 404


def test_a_body_that_is_not_json_is_refused(registry: LicenceSimulator) -> None:
    answer = requests.patch(
        f"{registry.url}/simulator/licences/{seed.SEED_ACTIVE}",
        data=b'{"status": ',
        headers={"content-type": "application/json"},
        timeout=TIMEOUT,
    )
    assert answer.status_code == 422
    assert "not valid JSON" in answer.json()["error"]


def test_patching_an_unknown_licence_is_not_found(registry: LicenceSimulator) -> None:
    answer = requests.patch(
        f"{registry.url}/simulator/licences/{NEW_CODE}", json={"status": "revoked"}, timeout=TIMEOUT
    )
    assert answer.status_code == 404
    assert fetch(registry, NEW_CODE).status_code == 404


# ---------------------------------------------------------------- changes


def test_a_revocation_shows_in_the_record_and_the_finding(
    licence_simulator: LicenceSimulator,
) -> None:
    merchant = DEMO_MERCHANTS[0]
    before = fetch(licence_simulator, merchant.uscc).json()
    answer = requests.patch(
        f"{licence_simulator.url}/simulator/licences/{merchant.uscc}",
        json={"status": "revoked", "dishonest_debtor": True},
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200, answer.text
    after = fetch(licence_simulator, merchant.uscc)
    assert after.content == answer.content
    document = after.json()
    assert document == {
        **before,
        "status": "revoked",
        "dishonest_debtor": True,
        "updated_at": document["updated_at"],
    }
    assert document["updated_at"] > before["updated_at"]
    finding = finding_of(licence_simulator, merchant.uscc, merchant.name, merchant.industry)
    assert finding.status is LicenceStatus.REVOKED
    assert finding.flags == LicenceFlag.DISHONEST_DEBTOR


def test_a_put_creates_then_replaces_a_licence(licence_simulator: LicenceSimulator) -> None:
    url = f"{licence_simulator.url}/simulator/licences/{NEW_CODE}"
    created = requests.put(url, json=NEW_RECORD, timeout=TIMEOUT)
    assert created.status_code == 201, created.text
    assert fetch(licence_simulator, NEW_CODE).json() == {
        **NEW_RECORD,
        "uscc": NEW_CODE,
        "updated_at": created.json()["updated_at"],
    }
    # A record read back can be sent as it is: its uscc and updated_at are accepted.
    changed = {**created.json(), "business_scope": "餐饮服务"}
    replaced = requests.put(url, json=changed, timeout=TIMEOUT)
    assert replaced.status_code == 200, replaced.text
    finding = finding_of(licence_simulator, NEW_CODE, NEW_RECORD["legal_name"], "training")
    assert finding.flags == LicenceFlag.SCOPE_MISMATCH


# ---------------------------------------------------------------- the process


def test_records_survive_kill_and_restart(licence_simulator: LicenceSimulator) -> None:
    url = licence_simulator.url
    revoked = requests.patch(
        f"{url}/simulator/licences/{seed.SEED_ACTIVE}", json={"status": "revoked"}, timeout=TIMEOUT
    )
    created = requests.put(f"{url}/simulator/licences/{NEW_CODE}", json=NEW_RECORD, timeout=TIMEOUT)
    assert (revoked.status_code, created.status_code) == (200, 201)

    licence_simulator.kill()
    licence_simulator.restart()

    assert licence_simulator.url == url
    assert fetch(licence_simulator, seed.SEED_ACTIVE).content == revoked.content
    assert fetch(licence_simulator, NEW_CODE).content == created.content
    # Not seeded again over the changes.
    health = requests.get(f"{url}/health", timeout=TIMEOUT).json()
    assert health["licences"] == len(DEMO_MERCHANTS) + len(seed.SEED_BUSINESSES) + 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_ends_the_process_cleanly(
    licence_simulator: LicenceSimulator, signum: int
) -> None:
    code = DEMO_MERCHANTS[1].uscc
    before = fetch(licence_simulator, code).content
    assert licence_simulator.stop(signum) == 0
    assert licence_simulator.stderr == ""
    licence_simulator.restart()
    assert fetch(licence_simulator, code).content == before
