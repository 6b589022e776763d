"""Load and check the devnet configuration, `hardhat-free-devnet.toml`.

`load_config` reads the file once and returns a `DevnetConfig`: frozen dataclasses
with every value checked, every private key's address derived, and every problem
refused with a `ConfigError` whose message names the offending key by its dotted
path, for example::

    hardhat-free-devnet.toml: rules.custody_floor_bps.medium: expected an integer
    between 0 and 10000, got 12000

Unknown keys are refused too, so a misspelt key is an error rather than a setting
silently ignored.
"""

from __future__ import annotations

import difflib
import itertools
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, NoReturn, cast, get_args

from eth_account import Account
from stdnum import exceptions as stdnum_exceptions
from stdnum.cn import uscc as unified_social_credit_code

from chain.errors import ChainError

DEFAULT_CONFIG_PATH: Final[Path] = (
    Path(__file__).resolve().parent.parent / "hardhat-free-devnet.toml"
)

Role = Literal[
    "regulator", "bank", "insurer", "oracle", "auditor", "operator", "merchant", "validator"
]
RefundRule = Literal["unspecified", "bonus_conversion", "face_value"]
RiskTier = Literal["low", "medium", "high", "blocked"]

ROLES: Final[tuple[str, ...]] = get_args(Role)
REFUND_RULES: Final[tuple[str, ...]] = get_args(RefundRule)
# In order of rising risk; custody floors may not decrease along it.
RISK_TIERS: Final[tuple[str, ...]] = get_args(RiskTier)

BPS_DENOMINATOR: Final[int] = 10_000
# The largest chain id a JavaScript client (the dashboard) reads exactly.
MAX_CHAIN_ID: Final[int] = 2**53 - 1
# The smallest block gas limit Ethereum allows.
MIN_GAS_LIMIT: Final[int] = 5_000
MAX_INT64: Final[int] = 2**63 - 1
MAX_UINT32: Final[int] = 2**32 - 1
MAX_TERM_DAYS: Final[int] = 3_650
MAX_COOLING_OFF_DAYS: Final[int] = 365
MAX_GOVERNANCE_DELAY: Final[int] = 30 * 86_400
# A valid secp256k1 private key is an integer in [1, n - 1].
SECP256K1_ORDER: Final[int] = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

_PRIVATE_KEY_PATTERN: Final = re.compile(r"0x[0-9a-fA-F]{64}")
# Organisation handles are used as names in code, so keep them plain.
_HANDLE_PATTERN: Final = re.compile(r"[a-z][a-z0-9_]*")


class ConfigError(ChainError):
    """The devnet configuration file is missing, unreadable or breaks a rule.

    Attributes
    ----------
    path
        The configuration file.
    key
        Dotted path of the offending key (``"rules.custody_floor_bps.medium"``,
        ``"validators[1].private_key"``), or ``None`` when the problem is the
        file as a whole.
    """

    def __init__(self, path: Path, message: str, key: str | None = None) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.key = key


@dataclass(frozen=True, slots=True)
class AccountKey:
    """A devnet private key and the checksummed address it controls."""

    private_key: str = field(repr=False)
    address: str

    @classmethod
    def from_private_key(cls, private_key: str) -> AccountKey:
        """Derive the address of a ``0x``-prefixed 32-byte hex private key."""
        return cls(private_key, Account.from_key(private_key).address)


@dataclass(frozen=True, slots=True)
class ChainSettings:
    """The `[chain]` section: how the node builds blocks."""

    chain_id: int
    block_period_seconds: int
    gas_limit: int
    empty_blocks: bool
    data_dir: str


@dataclass(frozen=True, slots=True)
class Validator:
    """A `[[validators]]` entry: a node allowed to seal blocks."""

    name: str
    organisation: str
    key: AccountKey

    @property
    def address(self) -> str:
        """The sealing account's checksummed address."""
        return self.key.address


@dataclass(frozen=True, slots=True)
class Organisation:
    """An `[organisations.<handle>]` entry: a member that sends transactions."""

    handle: str
    name: str
    role: Role
    key: AccountKey

    @property
    def address(self) -> str:
        """The checksummed address the organisation sends transactions from."""
        return self.key.address


@dataclass(frozen=True, slots=True)
class OracleFeed:
    """The signer set of an organisation with role ``oracle``.

    A report from the feed counts only when `threshold` distinct `signers`
    have signed it. The feed's reports are submitted from the account of
    ``organisations[handle]``.
    """

    handle: str
    name: str
    signers: tuple[AccountKey, ...]
    threshold: int

    @property
    def signer_addresses(self) -> tuple[str, ...]:
        """The signers' checksummed addresses, in file order."""
        return tuple(signer.address for signer in self.signers)


@dataclass(frozen=True, slots=True)
class CustodyFloors:
    """The `[rules.custody_floor_bps]` section: lowest custody ratio per risk tier."""

    low: int
    medium: int
    high: int
    blocked: int

    def for_tier(self, tier: RiskTier) -> int:
        """Return the floor, in basis points, of the given risk tier."""
        return cast(int, getattr(self, tier))


@dataclass(frozen=True, slots=True)
class Template:
    """A `[[rules.templates]]` entry: a standard contract and its limits."""

    name: str
    industries: tuple[str, ...]
    max_amount_fen: int
    max_term_days: int
    max_units: int  # 0 means no limit
    cooling_off_days: int
    min_custody_bps: int
    refund_rule: RefundRule
    refund_rounding_fen: int
    document_title: str
    document_version: str


@dataclass(frozen=True, slots=True)
class Rules:
    """The `[rules]` section: what the contracts enforce from genesis."""

    cooling_off_days: int
    min_licence_age_days: int
    licence_validity_days: int
    oracle_max_report_age_seconds: int
    custody_floor_bps: CustodyFloors
    templates: Mapping[str, Template]


@dataclass(frozen=True, slots=True)
class Governance:
    """The `[governance]` section: the regulator officials who decide who may sign and write.

    Changes to sensitive roles, oracle signer sets and report consumers need `threshold`
    of the `officials` through their multisig, and wait `min_delay_seconds` in a timelock.
    """

    min_delay_seconds: int
    threshold: int
    officials: tuple[AccountKey, ...]

    @property
    def official_addresses(self) -> tuple[str, ...]:
        """The officials' checksummed addresses, in file order."""
        return tuple(official.address for official in self.officials)


@dataclass(frozen=True, slots=True)
class Services:
    """The `[services]` section: where each devnet process listens."""

    host: str
    node_rpc_port: int
    api_port: int
    dashboard_port: int
    bank_simulator_port: int
    licence_simulator_port: int
    oracle_metrics_port: int

    def http_url(self, port: int) -> str:
        """Return ``http://<host>:<port>``, e.g. ``services.http_url(services.api_port)``."""
        return f"http://{self.host}:{port}"


@dataclass(frozen=True, slots=True)
class OracleSettings:
    """The optional `[oracle]` section: how the bank and licence oracle runs."""

    data_dir: str = ".yufu/oracle"
    poll_interval_ms: int = 500
    licence_recheck_seconds: int = 60


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    """The optional `[simulators]` section: the simulated bank and licence registry."""

    data_dir: str = ".yufu/simulators"
    bank_day_seconds: int = 0  # 0: a business day closes only when asked


@dataclass(frozen=True, slots=True)
class DemoMerchant:
    """A `[[demo.merchants]]` entry: a merchant the demo onboards."""

    name: str
    uscc: str
    industry: str
    key: AccountKey

    @property
    def address(self) -> str:
        """The merchant's checksummed address."""
        return self.key.address


@dataclass(frozen=True, slots=True)
class DemoConsumer:
    """A `[[demo.consumers]]` entry: a consumer wallet that signs typed messages."""

    key: AccountKey

    @property
    def address(self) -> str:
        """The consumer's checksummed address."""
        return self.key.address


@dataclass(frozen=True, slots=True)
class Demo:
    """The optional `[demo]` section."""

    merchants: tuple[DemoMerchant, ...] = ()
    consumers: tuple[DemoConsumer, ...] = ()


@dataclass(frozen=True, slots=True)
class DevnetConfig:
    """The whole devnet configuration, checked.

    `organisations` holds every member, oracle feeds included, keyed by handle;
    `oracle_feeds` holds the signer sets of the organisations whose role is
    ``oracle``, under the same handles.
    """

    path: Path
    chain: ChainSettings
    validators: tuple[Validator, ...]
    organisations: Mapping[str, Organisation]
    oracle_feeds: Mapping[str, OracleFeed]
    rules: Rules
    governance: Governance
    services: Services
    demo: Demo
    oracle: OracleSettings = OracleSettings()
    simulators: SimulatorSettings = SimulatorSettings()

    @property
    def regulator(self) -> Organisation:
        """The one organisation with role ``regulator``."""
        return next(org for org in self.organisations.values() if org.role == "regulator")

    @property
    def data_path(self) -> Path:
        """`chain.data_dir` resolved against the folder of the configuration file."""
        return (self.path.parent / self.chain.data_dir).resolve()

    @property
    def oracle_data_path(self) -> Path:
        """`oracle.data_dir` resolved against the folder of the configuration file."""
        return (self.path.parent / self.oracle.data_dir).resolve()

    @property
    def simulators_data_path(self) -> Path:
        """`simulators.data_dir` resolved against the folder of the configuration file."""
        return (self.path.parent / self.simulators.data_dir).resolve()


def load_config(path: Path | str = DEFAULT_CONFIG_PATH) -> DevnetConfig:
    """Read and check the devnet configuration file.

    Parameters
    ----------
    path
        The TOML file; by default `hardhat-free-devnet.toml` at the repository root.

    Returns
    -------
    DevnetConfig
        Every section parsed into frozen dataclasses, addresses derived.

    Raises
    ------
    ConfigError
        If the file is missing or is not TOML, or if a key is missing, unknown,
        of the wrong type or out of range, or if two accounts share an address.
        The message names the offending key by its dotted path.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(path, "config file not found") from None
    except OSError as exc:
        raise ConfigError(path, f"cannot read the config file: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, f"not valid TOML: {exc}") from exc
    try:
        return _read_config(path, document)
    except _Invalid as problem:
        raise ConfigError(path, problem.message, problem.key) from None


# --- reading the sections -------------------------------------------------------


def _read_config(path: Path, document: dict[str, Any]) -> DevnetConfig:
    _open_table(
        document,
        "",
        ("chain", "validators", "organisations", "rules", "governance", "services"),
        ("demo", "oracle", "simulators"),
    )
    chain = _read_chain(document["chain"])
    organisations, oracle_feeds = _read_organisations(document["organisations"])
    validators = _read_validators(document["validators"], organisations)
    rules = _read_rules(document["rules"])
    governance = _read_governance(document["governance"])
    services = _read_services(document["services"])
    demo = Demo()
    if "demo" in document:
        industries = {i for t in rules.templates.values() for i in t.industries}
        demo = _read_demo(document["demo"], industries)
    oracle = OracleSettings()
    if "oracle" in document:
        oracle = _read_oracle(document["oracle"])
    simulators = SimulatorSettings()
    if "simulators" in document:
        simulators = _read_simulators(document["simulators"])
    config = DevnetConfig(
        path=path,
        chain=chain,
        validators=validators,
        organisations=MappingProxyType(organisations),
        oracle_feeds=MappingProxyType(oracle_feeds),
        rules=rules,
        governance=governance,
        services=services,
        demo=demo,
        oracle=oracle,
        simulators=simulators,
    )
    _refuse_shared_addresses(config)
    return config


def _read_chain(value: object) -> ChainSettings:
    where = "chain"
    table = _open_table(
        value,
        where,
        ("chain_id", "block_period_seconds", "gas_limit", "empty_blocks", "data_dir"),
    )
    return ChainSettings(
        chain_id=_integer(table, where, "chain_id", 1, MAX_CHAIN_ID),
        block_period_seconds=_integer(table, where, "block_period_seconds", 1, 3_600),
        gas_limit=_integer(table, where, "gas_limit", MIN_GAS_LIMIT, MAX_INT64),
        empty_blocks=_boolean(table, where, "empty_blocks"),
        data_dir=_string(table, where, "data_dir"),
    )


def _read_validators(
    value: object, organisations: Mapping[str, Organisation]
) -> tuple[Validator, ...]:
    validators: list[Validator] = []
    names: dict[str, str] = {}
    for where, item in _array_of_tables(value, "validators"):
        table = _open_table(item, where, ("name", "organisation", "private_key"))
        name = _string(table, where, "name")
        _refuse_repeat(names, name, f"{where}.name", "validator name")
        organisation = _string(table, where, "organisation")
        if organisation not in organisations:
            _fail(
                f"{where}.organisation",
                f"expected the handle of an organisation ({_listing(organisations)}), "
                f"got {organisation!r}",
            )
        key = _private_key(table["private_key"], f"{where}.private_key")
        validators.append(Validator(name, organisation, key))
    return tuple(validators)


def _read_organisations(
    value: object,
) -> tuple[dict[str, Organisation], dict[str, OracleFeed]]:
    where = "organisations"
    table = _open_table(value, where)
    if not table:
        _fail(where, "expected at least one organisation")
    organisations: dict[str, Organisation] = {}
    feeds: dict[str, OracleFeed] = {}
    for handle, item in table.items():
        entry = f"{where}.{handle}"
        if not _HANDLE_PATTERN.fullmatch(handle):
            _fail(entry, "expected a handle of lowercase letters, digits and underscores")
        fields = _open_table(
            item, entry, ("name", "role", "private_key"), ("threshold", "signer_keys")
        )
        name = _string(fields, entry, "name")
        role = cast(Role, _string(fields, entry, "role", choices=ROLES))
        key = _private_key(fields["private_key"], f"{entry}.private_key")
        organisations[handle] = Organisation(handle, name, role, key)
        if role == "oracle":
            feeds[handle] = _read_oracle_feed(fields, entry, handle, name)
        else:
            for feed_key in ("threshold", "signer_keys"):
                if feed_key in fields:
                    _fail(
                        f"{entry}.{feed_key}",
                        f"only an organisation with role 'oracle' has {feed_key}; "
                        f"this one has role {role!r}",
                    )
    regulators = [org.handle for org in organisations.values() if org.role == "regulator"]
    if len(regulators) != 1:
        _fail(
            where,
            "expected exactly one organisation with role 'regulator', "
            f"found {len(regulators)}" + (f" ({', '.join(regulators)})" if regulators else ""),
        )
    return organisations, feeds


def _read_oracle_feed(fields: dict[str, Any], where: str, handle: str, name: str) -> OracleFeed:
    for required in ("signer_keys", "threshold"):
        if required not in fields:
            _missing(f"{where}.{required}")
    signer_values = fields["signer_keys"]
    if not isinstance(signer_values, list) or not signer_values:
        _fail(
            f"{where}.signer_keys",
            f"expected a non-empty array of private keys, got {_describe(signer_values)}",
        )
    signers = tuple(
        _private_key(signer, f"{where}.signer_keys[{index}]")
        for index, signer in enumerate(signer_values)
    )
    threshold = _integer(
        fields, where, "threshold", 1, len(signers), bound_note="the number of signer_keys"
    )
    return OracleFeed(handle, name, signers, threshold)


def _read_rules(value: object) -> Rules:
    where = "rules"
    table = _open_table(
        value,
        where,
        (
            "cooling_off_days",
            "min_licence_age_days",
            "licence_validity_days",
            "oracle_max_report_age_seconds",
            "custody_floor_bps",
            "templates",
        ),
    )
    cooling_off_days = _integer(table, where, "cooling_off_days", 0, MAX_COOLING_OFF_DAYS)
    return Rules(
        cooling_off_days=cooling_off_days,
        min_licence_age_days=_integer(table, where, "min_licence_age_days", 0, 36_500),
        licence_validity_days=_integer(table, where, "licence_validity_days", 1, 366),
        oracle_max_report_age_seconds=_integer(
            table, where, "oracle_max_report_age_seconds", 1, 7 * 24 * 3_600
        ),
        custody_floor_bps=_read_custody_floors(table["custody_floor_bps"]),
        templates=MappingProxyType(_read_templates(table["templates"], cooling_off_days)),
    )


def _read_governance(value: object) -> Governance:
    where = "governance"
    table = _open_table(value, where, ("min_delay_seconds", "threshold", "official_keys"))
    official_values = table["official_keys"]
    if not isinstance(official_values, list) or not official_values:
        _fail(
            f"{where}.official_keys",
            f"expected a non-empty array of private keys, got {_describe(official_values)}",
        )
    officials = tuple(
        _private_key(official, f"{where}.official_keys[{index}]")
        for index, official in enumerate(official_values)
    )
    return Governance(
        # A change to who may sign and write always waits; 30 days is the most a devnet needs.
        min_delay_seconds=_integer(table, where, "min_delay_seconds", 1, MAX_GOVERNANCE_DELAY),
        threshold=_integer(
            table, where, "threshold", 1, len(officials), bound_note="the number of official_keys"
        ),
        officials=officials,
    )


def _read_custody_floors(value: object) -> CustodyFloors:
    where = "rules.custody_floor_bps"
    table = _open_table(value, where, RISK_TIERS)
    floors = {tier: _integer(table, where, tier, 0, BPS_DENOMINATOR) for tier in RISK_TIERS}
    # A riskier merchant never keeps less in custody than a safer one.
    for safer, riskier in itertools.pairwise(RISK_TIERS):
        if floors[riskier] < floors[safer]:
            _fail(
                f"{where}.{riskier}",
                f"floors must not decrease from low to blocked: expected at least "
                f"{safer} ({floors[safer]}), got {floors[riskier]}",
            )
    return CustodyFloors(**floors)


def _read_templates(value: object, statutory_cooling_off_days: int) -> dict[str, Template]:
    templates: dict[str, Template] = {}
    names: dict[str, str] = {}
    for where, item in _array_of_tables(value, "rules.templates"):
        table = _open_table(
            item,
            where,
            (
                "name",
                "industries",
                "max_amount_fen",
                "max_term_days",
                "max_units",
                "cooling_off_days",
                "min_custody_bps",
                "refund_rule",
                "refund_rounding_fen",
                "document_title",
                "document_version",
            ),
        )
        name = _string(table, where, "name")
        _refuse_repeat(names, name, f"{where}.name", "template name")
        max_amount_fen = _integer(table, where, "max_amount_fen", 1, MAX_INT64)
        max_term_days = _integer(table, where, "max_term_days", 1, MAX_TERM_DAYS)
        templates[name] = Template(
            name=name,
            industries=_string_array(table, where, "industries"),
            max_amount_fen=max_amount_fen,
            max_term_days=max_term_days,
            max_units=_integer(table, where, "max_units", 0, MAX_UINT32),
            cooling_off_days=_integer(
                table,
                where,
                "cooling_off_days",
                statutory_cooling_off_days,
                MAX_COOLING_OFF_DAYS,
                bound_note="at least rules.cooling_off_days",
            ),
            min_custody_bps=_integer(table, where, "min_custody_bps", 0, BPS_DENOMINATOR),
            refund_rule=cast(
                RefundRule, _string(table, where, "refund_rule", choices=REFUND_RULES)
            ),
            refund_rounding_fen=_integer(
                table,
                where,
                "refund_rounding_fen",
                1,
                max_amount_fen,
                bound_note="at most max_amount_fen",
            ),
            document_title=_string(table, where, "document_title"),
            document_version=_string(table, where, "document_version"),
        )
    return templates


def _read_services(value: object) -> Services:
    where = "services"
    port_keys = (
        "node_rpc_port",
        "api_port",
        "dashboard_port",
        "bank_simulator_port",
        "licence_simulator_port",
        "oracle_metrics_port",
    )
    table = _open_table(value, where, ("host", *port_keys))
    ports: dict[str, int] = {}
    used_by: dict[int, str] = {}
    for key in port_keys:
        port = _integer(table, where, key, 1, 65_535)
        if port in used_by:
            _fail(f"{where}.{key}", f"port {port} is already used by {used_by[port]}")
        used_by[port] = f"{where}.{key}"
        ports[key] = port
    return Services(host=_string(table, where, "host"), **ports)


def _read_oracle(value: object) -> OracleSettings:
    where = "oracle"
    table = _open_table(value, where, ("data_dir", "poll_interval_ms", "licence_recheck_seconds"))
    return OracleSettings(
        data_dir=_string(table, where, "data_dir"),
        poll_interval_ms=_integer(table, where, "poll_interval_ms", 10, 60_000),
        licence_recheck_seconds=_integer(table, where, "licence_recheck_seconds", 1, 86_400),
    )


def _read_simulators(value: object) -> SimulatorSettings:
    where = "simulators"
    table = _open_table(value, where, ("data_dir", "bank_day_seconds"))
    return SimulatorSettings(
        data_dir=_string(table, where, "data_dir"),
        bank_day_seconds=_integer(table, where, "bank_day_seconds", 0, 86_400),
    )


def _read_demo(value: object, template_industries: set[str]) -> Demo:
    table = _open_table(value, "demo", (), ("merchants", "consumers"))
    merchants: list[DemoMerchant] = []
    codes: dict[str, str] = {}
    for where, item in _array_of_tables(table.get("merchants", []), "demo.merchants"):
        fields = _open_table(item, where, ("name", "uscc", "industry", "private_key"))
        code = _uscc(fields, where, "uscc")
        _refuse_repeat(codes, code, f"{where}.uscc", "unified social credit code")
        industry = _string(fields, where, "industry")
        if industry not in template_industries:
            _fail(
                f"{where}.industry",
                f"no template in rules.templates covers industry {industry!r} "
                f"(covered: {_listing(template_industries)})",
            )
        merchants.append(
            DemoMerchant(
                name=_string(fields, where, "name"),
                uscc=code,
                industry=industry,
                key=_private_key(fields["private_key"], f"{where}.private_key"),
            )
        )
    consumers = tuple(
        DemoConsumer(
            _private_key(
                _open_table(item, where, ("private_key",))["private_key"],
                f"{where}.private_key",
            )
        )
        for where, item in _array_of_tables(table.get("consumers", []), "demo.consumers")
    )
    return Demo(tuple(merchants), consumers)


def _refuse_shared_addresses(config: DevnetConfig) -> None:
    """Refuse two keys, anywhere in the file, that control the same account.

    A shared key would let one party act in another's role, and would make the
    audit trail ambiguous about who did what.
    """
    owners: dict[str, str] = {}
    for where, key in _every_key(config):
        if key.address in owners:
            _fail(where, f"address {key.address} is already used by {owners[key.address]}")
        owners[key.address] = where


def _every_key(config: DevnetConfig) -> Iterator[tuple[str, AccountKey]]:
    for index, validator in enumerate(config.validators):
        yield f"validators[{index}].private_key", validator.key
    for handle, organisation in config.organisations.items():
        yield f"organisations.{handle}.private_key", organisation.key
        if handle in config.oracle_feeds:
            for index, signer in enumerate(config.oracle_feeds[handle].signers):
                yield f"organisations.{handle}.signer_keys[{index}]", signer
    for index, official in enumerate(config.governance.officials):
        yield f"governance.official_keys[{index}]", official
    for index, merchant in enumerate(config.demo.merchants):
        yield f"demo.merchants[{index}].private_key", merchant.key
    for index, consumer in enumerate(config.demo.consumers):
        yield f"demo.consumers[{index}].private_key", consumer.key


# --- checking single values ---------------------------------------------------


class _Invalid(Exception):
    """A problem found while reading; `load_config` adds the file path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def _fail(key: str, problem: str) -> NoReturn:
    raise _Invalid(key, f"{key}: {problem}")


def _missing(key: str) -> NoReturn:
    raise _Invalid(key, f"missing key {key}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _open_table(
    value: object,
    where: str,
    required: tuple[str, ...] | None = None,
    optional: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Check that `value` is a table with no unknown keys and no missing ones.

    With `required` left as ``None`` any key is allowed (a table keyed by handle).
    Unknown keys are refused before missing ones, because a misspelt key shows
    up as both and the misspelling is the real mistake.
    """
    if not isinstance(value, dict):
        _fail(where, f"expected a table, got {_describe(value)}")
    if required is None:
        return value
    allowed = (*required, *optional)
    for key in value:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = (
                f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(allowed)}"
            )
            _fail(_join(where, key), f"unknown key; {hint}")
    for key in required:
        if key not in value:
            _missing(_join(where, key))
    return value


def _array_of_tables(value: object, where: str) -> Iterator[tuple[str, object]]:
    if not isinstance(value, list) or not value:
        _fail(where, f"expected a non-empty array of tables ([[{where}]]), got {_describe(value)}")
    for index, item in enumerate(value):
        yield f"{where}[{index}]", item


def _integer(
    table: dict[str, Any],
    where: str,
    key: str,
    low: int,
    high: int,
    *,
    bound_note: str | None = None,
) -> int:
    value = table[key]
    # bool is a subclass of int in Python, but `true` is no number in TOML.
    if type(value) is not int or not low <= value <= high:
        note = f" ({bound_note})" if bound_note else ""
        _fail(
            _join(where, key),
            f"expected an integer between {low} and {high}{note}, got {_describe(value)}",
        )
    return value


def _boolean(table: dict[str, Any], where: str, key: str) -> bool:
    value = table[key]
    if not isinstance(value, bool):
        _fail(_join(where, key), f"expected true or false, got {_describe(value)}")
    return value


def _string(
    table: dict[str, Any], where: str, key: str, *, choices: tuple[str, ...] | None = None
) -> str:
    value = table[key]
    if choices is not None:
        if value not in choices:
            _fail(
                _join(where, key),
                f"expected one of {', '.join(map(repr, choices))}, got {_describe(value)}",
            )
    elif not isinstance(value, str) or not value.strip():
        _fail(_join(where, key), f"expected a non-empty string, got {_describe(value)}")
    return cast(str, value)


def _string_array(table: dict[str, Any], where: str, key: str) -> tuple[str, ...]:
    value = table[key]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(item, str) and item.strip() for item in value)
    ):
        _fail(
            _join(where, key),
            f"expected a non-empty array of non-empty strings, got {_describe(value)}",
        )
    seen: dict[str, str] = {}
    for index, item in enumerate(value):
        _refuse_repeat(seen, item, f"{_join(where, key)}[{index}]", "entry")
    return tuple(value)


def _private_key(value: object, where: str) -> AccountKey:
    # The message never echoes the value: it may be a real key pasted by mistake.
    if not isinstance(value, str):
        _fail(where, f"expected a private key as a string, got {_describe(value)}")
    if not _PRIVATE_KEY_PATTERN.fullmatch(value):
        _fail(
            where,
            "expected a private key written as 0x followed by 64 hex digits (32 bytes), "
            f"got a string of {len(value)} characters",
        )
    if not 0 < int(value, 16) < SECP256K1_ORDER:
        _fail(where, "expected a private key between 1 and the secp256k1 group order")
    return AccountKey.from_private_key(value.lower())


def _uscc(table: dict[str, Any], where: str, key: str) -> str:
    value = _string(table, where, key)
    try:
        code: str = unified_social_credit_code.validate(value)
    except stdnum_exceptions.InvalidLength:
        problem = "expected 18 characters"
    except stdnum_exceptions.InvalidFormat:
        problem = "expected 8 digits, then 10 digits or capital letters other than I, O, S, V, Z"
    except stdnum_exceptions.InvalidChecksum:
        problem = "the check digit (last character) is wrong"
    else:
        if code == value:
            return code
        problem = f"write it without spaces, dashes or lowercase letters: {code!r}"
    _fail(_join(where, key), f"not a valid unified social credit code ({problem}), got {value!r}")


def _refuse_repeat(seen: dict[str, str], value: str, where: str, what: str) -> None:
    if value in seen:
        _fail(where, f"{what} {value!r} is already used by {seen[value]}")
    seen[value] = where


def _listing(names: Mapping[str, object] | set[str]) -> str:
    return ", ".join(sorted(names))


def _describe(value: object) -> str:
    """Name a TOML value the way a reader of the file would recognise it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, int | float):
        return str(value)
    return f"a {type(value).__name__}"
