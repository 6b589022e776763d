"""Tests for chain/config.py: the shipped devnet file loads, and each kind of mistake is refused.

Each refusal test writes a copy of the shipped file with one edit into `tmp_path` and
checks that `load_config` raises `ConfigError` naming the offending key's dotted path.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from eth_utils import is_checksum_address, keccak
from stdnum.cn import uscc

from chain.config import DEFAULT_CONFIG_PATH, ConfigError, DevnetConfig, load_config
from chain.errors import ChainError

SHIPPED_TEXT = DEFAULT_CONFIG_PATH.read_text(encoding="utf-8")

BANK_KEY = "0x4365a36d91440661ba9cb07605c73961e49e93430f1a2486c4f4e32709c87b74"
INSURER_KEY = "0xcc4d88d09c93e2ed251f360a072dcff81d7f0c4a92cefe524e034968e53dca32"
SUNRISE_USCC = "91350111498229274M"


def write_variant(tmp_path: Path, old: str, new: str) -> Path:
    """Write the shipped file with its single occurrence of `old` replaced by `new`."""
    assert SHIPPED_TEXT.count(old) == 1, f"edit target must occur once: {old!r}"
    path = tmp_path / "hardhat-free-devnet.toml"
    path.write_text(SHIPPED_TEXT.replace(old, new), encoding="utf-8")
    return path


def refusal(tmp_path: Path, old: str, new: str) -> ConfigError:
    """Load an edited copy and return the ConfigError it must raise."""
    path = write_variant(tmp_path, old, new)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    return caught.value


@pytest.fixture(scope="module")
def config() -> DevnetConfig:
    return load_config()


# --- the shipped file -----------------------------------------------------------


def test_shipped_file_loads_from_default_path(config: DevnetConfig) -> None:
    assert config.path == DEFAULT_CONFIG_PATH
    assert config.chain.chain_id == 20211
    assert config.chain.block_period_seconds == 1
    assert config.chain.gas_limit == 30_000_000
    assert config.chain.empty_blocks is False
    assert config.data_path == DEFAULT_CONFIG_PATH.parent / ".yufu" / "devnet"


def test_shipped_file_has_regulator_and_bank_validators(config: DevnetConfig) -> None:
    assert [v.organisation for v in config.validators] == ["regulator", "bank"]
    organisation_addresses = {org.address for org in config.organisations.values()}
    assert not organisation_addresses & {v.address for v in config.validators}


def test_shipped_file_has_every_member_role(config: DevnetConfig) -> None:
    roles = {handle: org.role for handle, org in config.organisations.items()}
    assert roles == {
        "regulator": "regulator",
        "bank": "bank",
        "insurer": "insurer",
        "auditor": "auditor",
        "operator": "operator",
        "bank_feed": "oracle",
        "licence_feed": "oracle",
        "risk_feed": "oracle",
    }
    assert config.regulator is config.organisations["regulator"]


def test_shipped_feeds_are_two_of_three(config: DevnetConfig) -> None:
    assert set(config.oracle_feeds) == {"bank_feed", "licence_feed", "risk_feed"}
    for feed in config.oracle_feeds.values():
        assert feed.threshold == 2
        assert len(feed.signers) == 3


def test_shipped_rules_match_the_product(config: DevnetConfig) -> None:
    rules = config.rules
    assert rules.cooling_off_days == 7
    assert rules.min_licence_age_days == 180
    assert rules.licence_validity_days == 30
    assert rules.oracle_max_report_age_seconds == 3600
    floors = rules.custody_floor_bps
    assert (floors.low, floors.medium, floors.high, floors.blocked) == (3000, 5000, 8000, 10000)
    assert floors.for_tier("blocked") == 10000


def test_shipped_templates_carry_the_regulatory_limits(config: DevnetConfig) -> None:
    templates = config.rules.templates
    assert list(templates) == ["training", "named_card", "anonymous_card"]
    training = templates["training"]
    assert training.industries == ("training",)
    assert training.max_amount_fen == 500_000
    assert training.max_term_days == 92
    assert training.max_units == 60
    assert training.cooling_off_days == 7
    assert training.min_custody_bps == 3000
    assert training.refund_rule == "bonus_conversion"
    assert training.refund_rounding_fen == 100
    assert templates["named_card"].max_amount_fen == 500_000
    assert templates["named_card"].max_term_days == 365
    assert templates["named_card"].max_units == 0
    assert templates["anonymous_card"].max_amount_fen == 100_000


def test_shipped_services_listen_on_the_agreed_ports(config: DevnetConfig) -> None:
    services = config.services
    assert services.host == "127.0.0.1"
    assert (
        services.node_rpc_port,
        services.api_port,
        services.dashboard_port,
        services.bank_simulator_port,
        services.licence_simulator_port,
        services.oracle_metrics_port,
    ) == (8545, 8000, 8080, 8601, 8602, 8603)
    assert services.http_url(services.api_port) == "http://127.0.0.1:8000"


def test_shipped_demo_merchants_have_valid_codes_and_covered_industries(
    config: DevnetConfig,
) -> None:
    covered = {i for t in config.rules.templates.values() for i in t.industries}
    assert len(config.demo.merchants) == 3
    assert len(config.demo.consumers) == 3
    for merchant in config.demo.merchants:
        assert uscc.is_valid(merchant.uscc)
        assert merchant.industry in covered


def test_every_shipped_address_is_checksummed_and_distinct(config: DevnetConfig) -> None:
    addresses = [v.address for v in config.validators]
    addresses += [org.address for org in config.organisations.values()]
    addresses += [a for feed in config.oracle_feeds.values() for a in feed.signer_addresses]
    addresses += [m.address for m in config.demo.merchants]
    addresses += [c.address for c in config.demo.consumers]
    assert len(addresses) == 25
    assert len(set(addresses)) == len(addresses)
    assert all(is_checksum_address(address) for address in addresses)


def test_shipped_keys_follow_the_documented_derivation(config: DevnetConfig) -> None:
    def derived(label: str) -> str:
        return "0x" + keccak(text=f"yufu-devnet/{label}").hex()

    assert config.validators[0].key.private_key == derived("validator/regulator-node")
    assert config.organisations["bank"].key.private_key == derived("bank")
    assert config.oracle_feeds["risk_feed"].signers[2].private_key == derived("risk_feed/signer-3")
    assert config.demo.consumers[0].key.private_key == derived("consumer/1")


def test_loaded_config_is_immutable(config: DevnetConfig) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.chain.chain_id = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.organisations["thief"] = config.regulator  # type: ignore[index]


def test_private_keys_stay_out_of_reprs(config: DevnetConfig) -> None:
    assert config.organisations["bank"].key.private_key not in repr(config)


# --- refusals -------------------------------------------------------------------


def test_config_error_is_a_chain_error() -> None:
    assert issubclass(ConfigError, ChainError)


def test_missing_file_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match="config file not found") as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "chain_id = 20211", "chain_id = ")
    assert "not valid TOML" in str(error)


def test_missing_key_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "chain_id = 20211\n", "")
    assert "missing key chain.chain_id" in str(error)
    assert error.key == "chain.chain_id"


def test_missing_section_is_refused(tmp_path: Path) -> None:
    start = SHIPPED_TEXT.index("[services]")
    end = SHIPPED_TEXT.index("[[demo.merchants]]")
    path = tmp_path / "devnet.toml"
    path.write_text(SHIPPED_TEXT[:start] + SHIPPED_TEXT[end:], encoding="utf-8")
    with pytest.raises(ConfigError, match="missing key services$"):
        load_config(path)


def test_misspelt_section_is_refused_as_unknown(tmp_path: Path) -> None:
    error = refusal(tmp_path, "[services]\n", "[servces]\n")
    assert "servces: unknown key; did you mean 'services'?" in str(error)


def test_missing_oracle_threshold_is_refused(tmp_path: Path) -> None:
    old = "threshold = 2\n# Report signers. Labels: bank_feed"
    error = refusal(tmp_path, old, "# Report signers. Labels: bank_feed")
    assert "missing key organisations.bank_feed.threshold" in str(error)


def test_string_where_integer_expected_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "gas_limit = 30_000_000", 'gas_limit = "30000000"')
    assert "chain.gas_limit: expected an integer" in str(error)
    assert "got '30000000'" in str(error)


def test_boolean_where_integer_expected_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "block_period_seconds = 1", "block_period_seconds = true")
    assert "chain.block_period_seconds: expected an integer" in str(error)


def test_string_where_boolean_expected_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "empty_blocks = false", 'empty_blocks = "no"')
    assert "chain.empty_blocks: expected true or false, got 'no'" in str(error)


def test_string_where_array_expected_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, 'industries = ["training"]', 'industries = "training"')
    assert "rules.templates[0].industries: expected a non-empty array" in str(error)


def test_table_where_array_of_tables_expected_is_refused(tmp_path: Path) -> None:
    consumers_start = SHIPPED_TEXT.index("[[demo.consumers]]")
    single_table = f'[demo.consumers]\nprivate_key = "{BANK_KEY}"\n'
    path = tmp_path / "devnet.toml"
    path.write_text(SHIPPED_TEXT[:consumers_start] + single_table, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (
        "demo.consumers: expected a non-empty array of tables ([[demo.consumers]]), got a table"
        in str(caught.value)
    )


def test_bps_above_ten_thousand_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "medium = 5000", "medium = 12000")
    assert (
        "rules.custody_floor_bps.medium: expected an integer between 0 and 10000, got 12000"
        in str(error)
    )


@pytest.mark.parametrize("days", [0, 367])
def test_licence_validity_outside_a_day_to_a_leap_year_is_refused(
    tmp_path: Path, days: int
) -> None:
    error = refusal(tmp_path, "licence_validity_days = 30", f"licence_validity_days = {days}")
    assert error.key == "rules.licence_validity_days"
    assert f"expected an integer between 1 and 366, got {days}" in str(error)


def test_negative_template_custody_is_refused(tmp_path: Path) -> None:
    old = 'refund_rule = "face_value"'
    error = refusal(tmp_path, f"min_custody_bps = 3000\n{old}", f"min_custody_bps = -1\n{old}")
    assert "rules.templates[1].min_custody_bps: expected an integer between 0 and 10000" in str(
        error
    )


def test_decreasing_custody_floors_are_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "high = 8000", "high = 4000")
    assert "rules.custody_floor_bps.high: floors must not decrease" in str(error)
    assert error.key == "rules.custody_floor_bps.high"


def test_threshold_above_signer_count_is_refused(tmp_path: Path) -> None:
    old = "threshold = 2\n# Report signers. Labels: licence_feed"
    error = refusal(tmp_path, old, old.replace("2", "4"))
    assert "organisations.licence_feed.threshold: expected an integer between 1 and 3" in str(error)


def test_zero_threshold_is_refused(tmp_path: Path) -> None:
    old = "threshold = 2\n# Report signers. Labels: risk_feed"
    error = refusal(tmp_path, old, old.replace("2", "0"))
    assert "organisations.risk_feed.threshold" in str(error)


def test_signer_keys_on_a_non_oracle_are_refused(tmp_path: Path) -> None:
    old = 'role = "insurer"\n'
    error = refusal(tmp_path, old, old + "threshold = 1\n")
    assert "organisations.insurer.threshold: only an organisation with role 'oracle'" in str(error)


def test_duplicate_address_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, INSURER_KEY, BANK_KEY)
    assert "organisations.insurer.private_key: address" in str(error)
    assert "already used by organisations.bank.private_key" in str(error)


def test_signer_sharing_a_validator_key_is_refused(tmp_path: Path) -> None:
    signer = "0xf57dcd4147e292648a1a4036c500682f91a4fa25912d80c128ccd80c1d7f0530"
    validator = "0x79fe0499210c1d8bf64a1e23579d4df59a02774abd4e2a167a377067eecbade1"
    error = refusal(tmp_path, signer, validator)
    assert "organisations.bank_feed.signer_keys[0]: address" in str(error)
    assert "already used by validators[0].private_key" in str(error)


def test_unknown_key_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    error = refusal(tmp_path, "max_units = 60", "max_unit = 60")
    assert "rules.templates[0].max_unit: unknown key; did you mean 'max_units'?" in str(error)


def test_unknown_section_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "[services]\n", "[network]\nsize = 2\n\n[services]\n")
    assert "network: unknown key" in str(error)


def test_bad_uscc_check_digit_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, SUNRISE_USCC, SUNRISE_USCC[:-1] + "N")
    assert "demo.merchants[0].uscc: not a valid unified social credit code" in str(error)
    assert "check digit" in str(error)


def test_short_uscc_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, SUNRISE_USCC, SUNRISE_USCC[:-2])
    assert "demo.merchants[0].uscc: not a valid unified social credit code" in str(error)


def test_merchant_industry_without_template_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, 'industry = "beauty"', 'industry = "yoga"')
    assert (
        "demo.merchants[2].industry: no template in rules.templates covers industry 'yoga'"
        in str(error)
    )


def test_short_private_key_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, BANK_KEY, BANK_KEY[:-2])
    assert "organisations.bank.private_key: expected a private key" in str(error)
    # The value itself is never echoed: it might be a real key pasted by mistake.
    assert BANK_KEY[2:-2] not in str(error)


def test_non_hex_private_key_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, BANK_KEY, BANK_KEY[:-1] + "g")
    assert "organisations.bank.private_key: expected a private key" in str(error)


def test_zero_private_key_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, INSURER_KEY, "0x" + "0" * 64)
    assert "organisations.insurer.private_key: expected a private key between 1 and" in str(error)


def test_duplicate_port_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "api_port = 8000", "api_port = 8545")
    assert "services.api_port: port 8545 is already used by services.node_rpc_port" in str(error)


def test_port_out_of_range_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "dashboard_port = 8080", "dashboard_port = 70000")
    assert "services.dashboard_port: expected an integer between 1 and 65535" in str(error)


def test_unknown_refund_rule_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, 'refund_rule = "face_value"', 'refund_rule = "pro_rata"')
    assert "rules.templates[1].refund_rule: expected one of 'unspecified'" in str(error)


def test_template_shorter_cooling_off_than_statute_is_refused(tmp_path: Path) -> None:
    old = 'cooling_off_days = 7\nmin_custody_bps = 3000\nrefund_rule = "bonus_conversion"'
    error = refusal(tmp_path, old, old.replace("7", "3", 1))
    assert "rules.templates[0].cooling_off_days: expected an integer between 7 and 365" in str(
        error
    )


def test_duplicate_template_name_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, 'name = "named_card"', 'name = "training"')
    assert "rules.templates[1].name: template name 'training' is already used by" in str(error)


def test_validator_of_unknown_organisation_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, 'organisation = "bank"', 'organisation = "central_bank"')
    assert "validators[1].organisation: expected the handle of an organisation" in str(error)


def test_second_regulator_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, 'role = "auditor"', 'role = "regulator"')
    assert "organisations: expected exactly one organisation with role 'regulator'" in str(error)


def test_unknown_role_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, 'role = "auditor"', 'role = "inspector"')
    assert "organisations.auditor.role: expected one of 'regulator'" in str(error)


# --- the oracle and simulator sections ------------------------------------------------


def test_shipped_oracle_and_simulator_settings(config: DevnetConfig) -> None:
    assert config.oracle.poll_interval_ms == 500
    assert config.oracle.licence_recheck_seconds == 60
    assert config.oracle_data_path == (DEFAULT_CONFIG_PATH.parent / ".yufu/oracle").resolve()
    assert config.simulators.bank_day_seconds == 300
    assert config.simulators_data_path.name == "simulators"


def test_oracle_and_simulator_sections_are_optional(tmp_path: Path) -> None:
    start = SHIPPED_TEXT.index("[oracle]\n")
    end = SHIPPED_TEXT.index("bank_day_seconds = 300\n") + len("bank_day_seconds = 300\n")
    path = tmp_path / "devnet.toml"
    path.write_text(SHIPPED_TEXT[:start] + SHIPPED_TEXT[end:], encoding="utf-8")
    loaded = load_config(path)
    assert loaded.oracle.data_dir == ".yufu/oracle"
    assert loaded.simulators.bank_day_seconds == 0


def test_unknown_oracle_key_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "poll_interval_ms = 500\n", "poll_interval_ms = 500\npoll = 1\n")
    assert error.key == "oracle.poll"


def test_out_of_range_poll_interval_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "poll_interval_ms = 500\n", "poll_interval_ms = 0\n")
    assert error.key == "oracle.poll_interval_ms"


def test_negative_bank_day_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "bank_day_seconds = 300\n", "bank_day_seconds = -1\n")
    assert error.key == "simulators.bank_day_seconds"


# --- governance -------------------------------------------------------------------


OFFICIAL_1_KEY = "0x90daf1c8ed8f341c0e9498bb71bf11ecdb00e9474de2215ac52265ac9002b762"


def test_shipped_governance_is_two_of_three_officials_after_a_day(config: DevnetConfig) -> None:
    governance = config.governance
    assert (governance.threshold, len(governance.officials)) == (2, 3)
    assert governance.min_delay_seconds == 86_400
    assert (
        governance.officials[0].private_key
        == "0x" + keccak(text="yufu-devnet/governance/official-1").hex()
    )
    assert all(is_checksum_address(address) for address in governance.official_addresses)


def test_missing_governance_section_is_refused(tmp_path: Path) -> None:
    start = SHIPPED_TEXT.index("[governance]")
    end = SHIPPED_TEXT.index("[services]")
    path = tmp_path / "devnet.toml"
    path.write_text(SHIPPED_TEXT[:start] + SHIPPED_TEXT[end:], encoding="utf-8")
    with pytest.raises(ConfigError, match="missing key governance$"):
        load_config(path)


def test_governance_threshold_above_official_count_is_refused(tmp_path: Path) -> None:
    old = "threshold = 2\n# The officials' signing keys."
    error = refusal(tmp_path, old, old.replace("2", "4"))
    assert error.key == "governance.threshold"
    assert "expected an integer between 1 and 3 (the number of official_keys)" in str(error)


def test_zero_governance_delay_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "min_delay_seconds = 86_400\n", "min_delay_seconds = 0\n")
    assert error.key == "governance.min_delay_seconds"


def test_governance_delay_beyond_thirty_days_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, "min_delay_seconds = 86_400\n", "min_delay_seconds = 2_592_001\n")
    assert error.key == "governance.min_delay_seconds"


def test_empty_official_list_is_refused(tmp_path: Path) -> None:
    start = SHIPPED_TEXT.index("official_keys = [")
    end = SHIPPED_TEXT.index("]", start) + 1
    old = SHIPPED_TEXT[start:end]
    error = refusal(tmp_path, old, "official_keys = []")
    assert error.key == "governance.official_keys"


def test_official_sharing_the_regulators_key_is_refused(tmp_path: Path) -> None:
    regulator = "0x4305512e573b88b1bce82c693f3425c08a99e2a1f4a30285f002ed02329c35d4"
    error = refusal(tmp_path, OFFICIAL_1_KEY, regulator)
    assert error.key == "governance.official_keys[0]"
    assert "already used by organisations.regulator.private_key" in str(error)
