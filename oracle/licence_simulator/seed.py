"""The records the licence registry simulator holds on its first start.

Two groups. The devnet's demo merchants (``[[demo.merchants]]`` of `hardhat-free-devnet.toml`),
registered under exactly the names and codes the configuration gives, active and licensed a few
years ago, with business scopes that cover their industries: the demo onboards them cleanly.
And a set of invented Fuzhou businesses, one for each situation the licence oracle must notice
(revoked, cancelled, in deregistration, too young, on the abnormal-operations list, a dishonest
debtor, a scope that does not cover the industry), exported by situation as ``SEED_*`` codes.

Dates are counted back from the day of seeding, so a "young" licence is young whenever the
registry is created. Every code's check digit is computed with `stdnum.cn.uscc`, never by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

from stdnum.cn import uscc as unified_social_credit_code

from chain.config import DemoMerchant


def _code(first_seventeen: str) -> str:
    """A unified social credit code: the 17 characters given and their check digit."""
    code = first_seventeen + unified_social_credit_code.calc_check_digit(first_seventeen)
    return str(unified_social_credit_code.validate(code))


# --- the seeded situations ---------------------------------------------------------------

# Active, clean: a calligraphy and painting school (company).
SEED_ACTIVE: Final[str] = _code("91350102MA32B7XK4")
# Active, clean, an individual business (个体工商户) whose name has full-width parentheses.
SEED_INDIVIDUAL: Final[str] = _code("92350111MA8UFT2P6")
# Business licence revoked (吊销).
SEED_REVOKED: Final[str] = _code("91350103MA2XQ4LD1")
# Deregistered (注销): the company no longer exists.
SEED_CANCELLED: Final[str] = _code("91350104MA31HN0C5")
# Deregistration under way (注销中).
SEED_IN_DEREGISTRATION: Final[str] = _code("91350105MA2YKE6R8")
# Licensed SEED_YOUNG_AGE_DAYS days before seeding: younger than the six months required.
SEED_YOUNG: Final[str] = _code("91350111MAE4W9JG3")
# On the abnormal-operations list (经营异常名录).
SEED_ABNORMAL_OPERATIONS: Final[str] = _code("91350102MA34A1RT7")
# A listed dishonest judgment debtor (失信被执行人).
SEED_DISHONEST_DEBTOR: Final[str] = _code("91350103MA2Y9GBN0")
# A software firm selling tutoring: its scope excludes training ("不含...教育培训活动").
SEED_SCOPE_MISMATCH: Final[str] = _code("91350104MA33D5MW2")
# The gym that closed and ran: revoked, and on both lists.
SEED_REVOKED_AND_LISTED: Final[str] = _code("91350112MA2XRP8H9")

SEED_YOUNG_AGE_DAYS: Final[int] = 60


@dataclass(frozen=True)
class SeedBusiness:
    """A seeded licence and the industry the business would apply to Yufu under."""

    uscc: str
    legal_name: str
    legal_representative: str
    status: str
    age_days: int
    business_scope: str
    registration_authority: str
    industry: str
    abnormal_operations: bool = False
    dishonest_debtor: bool = False

    def record(self, seeded_on: date) -> dict[str, Any]:
        """The registry record, dated back from ``seeded_on`` (without ``updated_at``)."""
        return {
            "uscc": self.uscc,
            "legal_name": self.legal_name,
            "legal_representative": self.legal_representative,
            "status": self.status,
            "licensed_since": (seeded_on - timedelta(days=self.age_days)).isoformat(),
            "business_scope": self.business_scope,
            "registration_authority": self.registration_authority,
            "abnormal_operations": self.abnormal_operations,
            "dishonest_debtor": self.dishonest_debtor,
        }


_GULOU: Final[str] = "福州市鼓楼区市场监督管理局"
_TAIJIANG: Final[str] = "福州市台江区市场监督管理局"
_CANGSHAN: Final[str] = "福州市仓山区市场监督管理局"
_MAWEI: Final[str] = "福州市马尾区市场监督管理局"
_JINAN: Final[str] = "福州市晋安区市场监督管理局"
_CHANGLE: Final[str] = "福州市长乐区市场监督管理局"
# Characters 3 to 8 of a code are the registering district; its bureau issued the licence.
_AUTHORITY_BY_DISTRICT: Final[Mapping[str, str]] = {
    "350102": _GULOU,
    "350103": _TAIJIANG,
    "350104": _CANGSHAN,
    "350105": _MAWEI,
    "350111": _JINAN,
    "350112": _CHANGLE,
}
_CITY_BUREAU: Final[str] = "福州市市场监督管理局"

# The scope a demo merchant of each industry is registered with.
DEMO_SCOPES: Final[Mapping[str, str]] = {
    "training": (
        "文化艺术培训；体育培训；教育咨询服务（不含涉许可审批的教育培训活动）；组织文化艺术交流活动"
    ),
    "fitness": (
        "健身休闲活动；体育场地设施经营（不含高危险性体育运动）；体育健康服务；体育用品及器材零售"
    ),
    "beauty": "生活美容服务；美甲服务；化妆品零售；个人卫生用品销售",
}
# For an industry a future template adds and DEMO_SCOPES does not know yet.
_GENERIC_SCOPE: Final[str] = "一般项目：企业管理咨询；信息咨询服务（不含许可类信息咨询服务）"

# The demo merchants' registry details the configuration does not hold.
_DEMO_DETAILS: Final[Mapping[str, tuple[str, int]]] = {
    # industry: (legal representative, days licensed before seeding)
    "training": ("林志强", 1_100),
    "fitness": ("陈建华", 1_480),
    "beauty": ("郑晓燕", 910),
}

SEED_BUSINESSES: Final[tuple[SeedBusiness, ...]] = (
    SeedBusiness(
        uscc=SEED_ACTIVE,
        legal_name="福州市鼓楼区墨香书画艺术培训有限公司",
        legal_representative="黄文清",
        status="active",
        age_days=2_200,
        business_scope="文化艺术培训；书法、绘画培训；组织文化艺术交流活动；文具用品零售",
        registration_authority=_GULOU,
        industry="training",
    ),
    SeedBusiness(
        uscc=SEED_INDIVIDUAL,
        legal_name="福州市晋安区丽姿美甲店（个体工商户）",
        legal_representative="刘小芳",
        status="active",
        age_days=700,
        business_scope="美甲服务；生活美容服务；化妆品零售",
        registration_authority=_JINAN,
        industry="beauty",
    ),
    SeedBusiness(
        uscc=SEED_REVOKED,
        legal_name="福州市台江区力健健身服务有限公司",
        legal_representative="王海涛",
        status="revoked",
        age_days=2_600,
        business_scope="健身休闲活动；体育场地设施经营（不含高危险性体育运动）",
        registration_authority=_TAIJIANG,
        industry="fitness",
    ),
    SeedBusiness(
        uscc=SEED_CANCELLED,
        legal_name="福州市仓山区悦颜美容有限公司",
        legal_representative="李婷",
        status="cancelled",
        age_days=1_900,
        business_scope="生活美容服务；美发服务；化妆品零售",
        registration_authority=_CANGSHAN,
        industry="beauty",
    ),
    SeedBusiness(
        uscc=SEED_IN_DEREGISTRATION,
        legal_name="福州市马尾区蓝海游泳健身有限公司",
        legal_representative="吴国平",
        status="in_deregistration",
        age_days=1_500,
        business_scope="游泳场馆服务；健身休闲活动；体育用品及器材零售",
        registration_authority=_MAWEI,
        industry="fitness",
    ),
    SeedBusiness(
        uscc=SEED_YOUNG,
        legal_name="福州市晋安区悦动瑜伽健身有限公司",
        legal_representative="张丽华",
        status="active",
        age_days=SEED_YOUNG_AGE_DAYS,
        business_scope="健身休闲活动；瑜伽培训；体育健康服务",
        registration_authority=_JINAN,
        industry="fitness",
    ),
    SeedBusiness(
        uscc=SEED_ABNORMAL_OPERATIONS,
        legal_name="福州市鼓楼区丽人坊美容美体有限公司",
        legal_representative="陈美玲",
        status="active",
        age_days=1_300,
        business_scope="生活美容服务；美体服务；养生保健服务（非医疗）",
        registration_authority=_GULOU,
        industry="beauty",
        abnormal_operations=True,
    ),
    SeedBusiness(
        uscc=SEED_DISHONEST_DEBTOR,
        legal_name="福州市台江区博学艺术培训有限公司",
        legal_representative="何俊",
        status="active",
        age_days=2_000,
        business_scope="文化艺术培训；艺术考级培训；组织文化艺术交流活动",
        registration_authority=_TAIJIANG,
        industry="training",
        dishonest_debtor=True,
    ),
    SeedBusiness(
        uscc=SEED_SCOPE_MISMATCH,
        legal_name="福州市仓山区智学信息科技有限公司",
        legal_representative="郑宇航",
        status="active",
        age_days=1_000,
        business_scope=(
            "软件开发；信息技术咨询服务；教育咨询服务（不含涉许可审批的教育培训活动）；"
            "组织文化艺术交流活动"
        ),
        registration_authority=_CANGSHAN,
        industry="training",
    ),
    SeedBusiness(
        uscc=SEED_REVOKED_AND_LISTED,
        legal_name="福州市长乐区健美汇健身管理有限公司",
        legal_representative="林国栋",
        status="revoked",
        age_days=1_200,
        business_scope="健身休闲活动；体育场地设施经营（不含高危险性体育运动）；体育健康服务",
        registration_authority=_CHANGLE,
        industry="fitness",
        abnormal_operations=True,
        dishonest_debtor=True,
    ),
)

# The industry each seeded business applies under, by code.
SEED_INDUSTRIES: Final[Mapping[str, str]] = {
    business.uscc: business.industry for business in SEED_BUSINESSES
}


def demo_businesses(merchants: Iterable[DemoMerchant]) -> tuple[SeedBusiness, ...]:
    """The devnet's demo merchants as clean, active licences under their configured names."""
    businesses = []
    for merchant in merchants:
        representative, age_days = _DEMO_DETAILS.get(merchant.industry, ("周明", 1_000))
        businesses.append(
            SeedBusiness(
                uscc=merchant.uscc,
                legal_name=merchant.name,
                legal_representative=representative,
                status="active",
                age_days=age_days,
                business_scope=DEMO_SCOPES.get(merchant.industry, _GENERIC_SCOPE),
                registration_authority=_AUTHORITY_BY_DISTRICT.get(merchant.uscc[2:8], _CITY_BUREAU),
                industry=merchant.industry,
            )
        )
    return tuple(businesses)


def seed_records(merchants: Iterable[DemoMerchant], seeded_on: date) -> list[dict[str, Any]]:
    """Every record of a new registry: the demo merchants first, then `SEED_BUSINESSES`.

    A seeded business whose code is also a demo merchant's is left out, so a configuration
    can never make the registry hold one code twice.
    """
    demo = demo_businesses(merchants)
    demo_codes = {business.uscc for business in demo}
    others = tuple(b for b in SEED_BUSINESSES if b.uscc not in demo_codes)
    return [business.record(seeded_on) for business in (*demo, *others)]
