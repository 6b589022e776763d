"""The licence oracle's pure checks: codes, registry answers, and the finding they give."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import uscc as unified_social_credit_code

from chain.config import load_config
from chain.messages import LicenceFlag, LicenceStatus
from oracle.licence_checks import (
    INDUSTRY_SCOPE_KEYWORDS,
    USCC_ALPHABET,
    InvalidCode,
    LicenceRecord,
    MalformedResponse,
    assess,
    normalise_uscc,
    parse_registry_response,
    start_of_day,
)

TODAY = date(2026, 3, 1)
DEMO_TRAINING = load_config().demo.merchants[0]

# A clean training school, licensed three years before TODAY.
CLEAN: dict[str, Any] = {
    "uscc": "91350102MA32B7XK4M",
    "legal_name": "福州市鼓楼区墨香书画艺术培训有限公司",
    "legal_representative": "黄文清",
    "status": "active",
    "licensed_since": "2023-03-01",
    "business_scope": "文化艺术培训；书法、绘画培训；组织文化艺术交流活动",
    "registration_authority": "福州市鼓楼区市场监督管理局",
    "abnormal_operations": False,
    "dishonest_debtor": False,
    "updated_at": "2026-02-28T10:00:00.000+08:00",
}


def body(**changes: Any) -> bytes:
    return json.dumps({**CLEAN, **changes}, ensure_ascii=False).encode("utf-8")


def record(**changes: Any) -> LicenceRecord:
    return dataclasses.replace(parse_registry_response(body()), **changes)


def check(rec: LicenceRecord, **overrides: Any) -> Any:
    arguments: dict[str, Any] = {
        "expected_name": CLEAN["legal_name"],
        "industry": "training",
        "today": TODAY,
    }
    return assess(rec, **{**arguments, **overrides})


# ---------------------------------------------------------------- normalise_uscc

codes_without_check_digit = st.builds(
    lambda digits, rest: digits + rest,
    st.text(alphabet="0123456789", min_size=8, max_size=8),
    st.text(alphabet=USCC_ALPHABET, min_size=9, max_size=9),
)


@given(codes_without_check_digit)
def test_every_code_with_its_check_digit_is_accepted(first_seventeen: str) -> None:
    code = first_seventeen + unified_social_credit_code.calc_check_digit(first_seventeen)
    assert normalise_uscc(code) == code


@given(codes_without_check_digit, st.sampled_from(USCC_ALPHABET))
def test_a_code_with_another_check_digit_is_refused(first_seventeen: str, digit: str) -> None:
    right = unified_social_credit_code.calc_check_digit(first_seventeen)
    if digit == right:
        digit = USCC_ALPHABET[(USCC_ALPHABET.index(right) + 1) % len(USCC_ALPHABET)]
    with pytest.raises(InvalidCode, match="check digit"):
        normalise_uscc(first_seventeen + digit)


def test_the_demo_merchants_codes_are_valid() -> None:
    for merchant in load_config().demo.merchants:
        assert normalise_uscc(merchant.uscc) == merchant.uscc


def test_spaces_hyphens_and_lower_case_are_normalised() -> None:
    assert normalise_uscc(" 9135 0102-ma32b7xk4m ") == "91350102MA32B7XK4M"


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("91350102MA32B7XK4", "17 characters, not 18"),
        ("91350102MA32B7XK4MM", "19 characters, not 18"),
        ("", "0 characters"),
        ("91350102MA32B7XKIM", "alphabet"),  # I is not in the USCC alphabet
        ("9135010AMA32B7XK4M", "first 8 characters must be digits"),
        ("91350102MA32B7XK4N", "check digit is 'N', the first 17 characters give 'M'"),
    ],
)
def test_malformed_codes_are_refused_with_the_problem_named(code: str, problem: str) -> None:
    with pytest.raises(InvalidCode, match=problem) as refused:
        normalise_uscc(code)
    assert isinstance(refused.value, ValueError)


# ---------------------------------------------------------------- parse_registry_response


def test_a_registry_answer_is_read_into_a_record() -> None:
    assert parse_registry_response(body()) == LicenceRecord(
        uscc="91350102MA32B7XK4M",
        legal_name="福州市鼓楼区墨香书画艺术培训有限公司",
        legal_representative="黄文清",
        status="active",
        licensed_since=date(2023, 3, 1),
        business_scope="文化艺术培训；书法、绘画培训；组织文化艺术交流活动",
        registration_authority="福州市鼓楼区市场监督管理局",
        abnormal_operations=False,
        dishonest_debtor=False,
    )


def test_fields_the_record_does_not_use_are_ignored() -> None:
    assert parse_registry_response(body(annual_report_filed=True)) == record()


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b'{"uscc": ', "not JSON"),
        (b"[]", "JSON list, not an object"),
        (json.dumps({k: v for k, v in CLEAN.items() if k != "status"}).encode(), "no field"),
        (body(status="closed"), "'status' is 'closed'"),
        (body(status=1), "expected a string"),
        (body(legal_name="  "), "'legal_name' is empty"),
        (body(abnormal_operations=0), "expected a boolean"),
        (body(dishonest_debtor="false"), "expected a boolean"),
        (body(licensed_since="2023/03/01"), "expected YYYY-MM-DD"),
        (body(licensed_since="20230301"), "expected YYYY-MM-DD"),
        (body(licensed_since="2023-02-29"), "not a calendar date"),
        (body(uscc="91350102MA32B7XK4N"), "check digit"),
    ],
)
def test_a_malformed_registry_answer_is_refused(raw: bytes, problem: str) -> None:
    with pytest.raises(MalformedResponse, match=problem):
        parse_registry_response(raw)


# ---------------------------------------------------------------- assess


def test_a_clean_licence_gives_a_clean_finding() -> None:
    finding = check(record())
    assert finding.status is LicenceStatus.ACTIVE
    assert finding.flags == 0
    assert finding.reasons == ()
    assert finding.age_days == (TODAY - date(2023, 3, 1)).days
    assert finding.licensed_since == start_of_day(date(2023, 3, 1))


def test_licensed_since_is_midnight_in_china() -> None:
    # 2021-01-01T00:00+08:00 is 2020-12-31T16:00Z.
    assert start_of_day(date(2021, 1, 1)) == 1_609_430_400


@pytest.mark.parametrize(
    ("registry_status", "status", "reason"),
    [
        ("revoked", LicenceStatus.REVOKED, "the licence is revoked, not active"),
        ("cancelled", LicenceStatus.CANCELLED, "the licence is cancelled, not active"),
        (
            "in_deregistration",
            LicenceStatus.IN_DEREGISTRATION,
            "the licence is in deregistration, not active",
        ),
    ],
)
def test_each_registry_status_becomes_the_chain_status(
    registry_status: str, status: LicenceStatus, reason: str
) -> None:
    finding = check(record(status=registry_status))
    assert finding.status is status
    assert finding.flags == 0
    assert finding.reasons == (reason,)


@pytest.mark.parametrize(
    ("registered", "applied"),
    [
        ("福州市晋安区丽姿美甲店（个体工商户）", "福州市晋安区丽姿美甲店(个体工商户)"),
        ("福州市晋安区丽姿美甲店（个体工商户）", "福州市晋安区丽姿美甲店 （个体工商户）"),
        ("福州市晋安区丽姿美甲店（个体工商户）", " 福州市晋安区丽姿美甲店　(个体工商户)\n"),
        (DEMO_TRAINING.name, DEMO_TRAINING.name.replace(" ", "  ")),
        (DEMO_TRAINING.name, DEMO_TRAINING.name.replace("(", "（").replace(")", "）")),
    ],
)
def test_names_differing_in_whitespace_or_parenthesis_width_match(
    registered: str, applied: str
) -> None:
    finding = check(record(legal_name=registered), expected_name=applied)
    assert finding.flags == 0
    assert finding.reasons == ()


def test_another_name_is_a_name_mismatch() -> None:
    finding = check(record(), expected_name="福州市鼓楼区墨香书画培训有限公司")
    assert finding.flags == LicenceFlag.NAME_MISMATCH
    assert finding.reasons == (
        "the registered legal name '福州市鼓楼区墨香书画艺术培训有限公司' is not the name "
        "applied with, '福州市鼓楼区墨香书画培训有限公司'",
    )


@pytest.mark.parametrize(
    ("scope", "industry"),
    [
        ("文化艺术培训；教育咨询服务", "training"),
        ("课外辅导", "training"),
        ("Off-campus TUTORING services", "training"),
        ("健身休闲活动；体育用品零售", "fitness"),
        ("瑜伽馆经营", "fitness"),
        ("Fitness club operation", "fitness"),
        ("生活美容服务（不含医疗美容）", "beauty"),
        ("美甲服务", "beauty"),
        ("Beauty salon services", "beauty"),
    ],
)
def test_a_scope_naming_the_industry_covers_it(scope: str, industry: str) -> None:
    finding = check(record(business_scope=scope), industry=industry)
    assert finding.flags == 0


@pytest.mark.parametrize(
    ("scope", "industry"),
    [
        ("软件开发；教育咨询服务（不含涉许可审批的教育培训活动）", "training"),
        ("餐饮服务；食品销售", "training"),
        ("文化艺术培训", "fitness"),
        ("体育用品及器材零售（不含健身服务）", "fitness"),
        ("健身休闲活动", "beauty"),
        ("化妆品零售（含美容(美发)工具）", "beauty"),
    ],
)
def test_a_scope_not_naming_the_industry_is_a_scope_mismatch(scope: str, industry: str) -> None:
    finding = check(record(business_scope=scope), industry=industry)
    assert finding.flags == LicenceFlag.SCOPE_MISMATCH
    (reason,) = finding.reasons
    assert reason.startswith(f"the business scope covers no {industry} activity")


def test_the_lists_set_their_flags() -> None:
    abnormal = check(record(abnormal_operations=True))
    debtor = check(record(dishonest_debtor=True))
    both = check(record(abnormal_operations=True, dishonest_debtor=True))
    assert abnormal.flags == LicenceFlag.ABNORMAL_OPERATIONS
    assert abnormal.reasons == ("the business is on the abnormal-operations list (经营异常名录)",)
    assert debtor.flags == LicenceFlag.DISHONEST_DEBTOR
    assert debtor.reasons == ("the business is a listed dishonest judgment debtor (失信被执行人)",)
    assert both.flags == LicenceFlag.ABNORMAL_OPERATIONS | LicenceFlag.DISHONEST_DEBTOR
    assert len(both.reasons) == 2


def test_a_young_licence_has_a_reason_but_no_flag() -> None:
    finding = check(record(licensed_since=TODAY - timedelta(days=179)))
    assert finding.status is LicenceStatus.ACTIVE
    assert finding.flags == 0
    assert finding.age_days == 179
    assert finding.reasons == (
        "the licence was issued 179 days ago, on 2025-09-03; at least 180 days are required",
    )


def test_a_licence_exactly_the_minimum_age_is_old_enough() -> None:
    assert check(record(licensed_since=TODAY - timedelta(days=180))).reasons == ()
    assert check(record(licensed_since=TODAY - timedelta(days=30)), min_age_days=30).reasons == ()


def test_a_licence_dated_after_the_check_is_named() -> None:
    finding = check(record(licensed_since=TODAY + timedelta(days=1)))
    assert finding.age_days == -1
    assert finding.reasons == (
        "the licence is dated 2026-03-02, after the day of the check 2026-03-01",
    )


def test_every_problem_is_reported_at_once() -> None:
    finding = check(
        record(
            status="revoked",
            business_scope="餐饮服务",
            abnormal_operations=True,
            dishonest_debtor=True,
            licensed_since=TODAY - timedelta(days=10),
        ),
        expected_name="someone else",
    )
    assert finding.status is LicenceStatus.REVOKED
    assert finding.flags == sum(LicenceFlag)
    assert len(finding.reasons) == 6


def test_an_unknown_industry_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown industry 'catering'"):
        check(record(), industry="catering")


def test_every_template_industry_has_scope_keywords() -> None:
    industries = {
        industry
        for template in load_config().rules.templates.values()
        for industry in template.industries
    }
    assert industries <= set(INDUSTRY_SCOPE_KEYWORDS)
