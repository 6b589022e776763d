"""The node's JSON-RPC, spoken by real clients (web3.py, Foundry's cast) and by raw HTTP.

Every test here talks to one node process over HTTP; none of them reaches into the node.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from subprocess import CompletedProcess
from typing import TYPE_CHECKING, Any

import pytest
from eth_account import Account
from eth_utils import event_abi_to_log_topic, keccak, to_checksum_address
from hexbytes import HexBytes
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound

from chain.client import abi_of
from chain.config import DevnetConfig
from chain.deploy import DeployedSystem
from chain.errors import ContractRevert
from chain.messages import recover_signer
from chain.node.node import GENESIS_BALANCE_WEI, PRIORITY_FEE_WEI
from chain.node.rpc import RPC_METHODS
from chain.node.service import system_addresses
from chain.scenario import PlanDesk

if TYPE_CHECKING:
    from conftest import NodeProcess  # tests/node/conftest.py, which pytest loads itself

Cast = Callable[..., CompletedProcess[str]]
DEAD = "0x000000000000000000000000000000000000dEaD"


def _topic(contract: str, event: str) -> bytes:
    entry = next(e for e in abi_of(contract) if e.get("type") == "event" and e["name"] == event)
    return bytes(event_abi_to_log_topic(entry))  # type: ignore[arg-type]


def _send_value(w3: Web3, key: str, to: str, value: int, nonce: int | None = None) -> HexBytes:
    sender = Account.from_key(key).address
    signed = Account.sign_transaction(
        {
            "to": to,
            "value": value,
            "gas": 21_000,
            "maxFeePerGas": w3.eth.gas_price * 2,
            "maxPriorityFeePerGas": w3.eth.max_priority_fee,
            "nonce": w3.eth.get_transaction_count(sender, "pending") if nonce is None else nonce,
            "chainId": w3.eth.chain_id,
        },
        key,
    )
    return w3.eth.send_raw_transaction(signed.raw_transaction)


# ---------------------------------------------------------------- web3.py


def test_web3_sees_the_configured_chain(w3: Web3, config: DevnetConfig) -> None:
    assert w3.eth.chain_id == config.chain.chain_id
    assert w3.net.version == str(config.chain.chain_id)
    assert w3.client_version.startswith("Yufu/")
    assert w3.client_version.endswith("/python")
    assert w3.eth.syncing is False
    assert w3.eth.accounts == []
    assert w3.eth.block_number >= 32  # the bootstrap's transactions, one block each at least


def test_blocks_come_with_and_without_full_transactions(
    w3: Web3, node: NodeProcess, config: DevnetConfig
) -> None:
    by_number = w3.eth.get_block(1)
    assert by_number["number"] == 1
    assert len(by_number["transactions"]) == 1
    assert isinstance(by_number["transactions"][0], bytes)

    full = w3.eth.get_block(by_number["hash"], full_transactions=True)
    assert full["hash"] == by_number["hash"]
    transaction = full["transactions"][0]
    assert transaction["hash"] == by_number["transactions"][0]
    assert transaction["from"] == config.regulator.address
    assert transaction["to"] is None  # the Membership contract's creation
    assert transaction["blockNumber"] == 1
    assert transaction["transactionIndex"] == 0
    assert transaction["nonce"] == 0

    genesis = w3.eth.get_block("earliest")
    assert genesis["number"] == 0
    assert by_number["parentHash"] == genesis["hash"]
    latest = w3.eth.get_block("latest")
    for tag in ("safe", "finalized", "pending"):
        assert w3.eth.get_block(tag)["number"] >= latest["number"]
    assert latest["gasLimit"] == config.chain.gas_limit
    with pytest.raises(BlockNotFound):
        w3.eth.get_block(latest["number"] + 1_000)


def test_blocks_carry_their_seal_and_yufu_get_seal_serves_it(
    node: NodeProcess, config: DevnetConfig
) -> None:
    block = node.rpc("eth_getBlockByNumber", "0x1", False)
    seal = node.rpc("yufu_getSeal", block["hash"])
    assert seal["blockNumber"] == "0x1"
    assert seal["blockHash"] == block["hash"]
    assert seal["sealer"] == block["yufuSealer"]
    assert seal["signature"] == block["yufuSeal"]
    signer = recover_signer(bytes.fromhex(block["hash"][2:]), bytes.fromhex(seal["signature"][2:]))
    assert to_checksum_address(signer) == config.validators[0].address
    validators = node.rpc("yufu_validators")
    assert [to_checksum_address(v) for v in validators] == [v.address for v in config.validators]
    genesis = node.rpc("eth_getBlockByNumber", "earliest", False)
    assert genesis["yufuSeal"] is None
    assert node.rpc("yufu_getSeal", genesis["hash"]) is None


def test_receipt_of_a_contract_creation(w3: Web3, config: DevnetConfig) -> None:
    block = w3.eth.get_block(1)
    receipt = w3.eth.get_transaction_receipt(block["transactions"][0])
    assert receipt["status"] == 1
    assert receipt["contractAddress"] == system_addresses(config).membership
    assert receipt["to"] is None
    assert receipt["from"] == config.regulator.address
    assert receipt["blockHash"] == block["hash"]
    assert receipt["blockNumber"] == 1
    assert receipt["type"] == 2
    assert 21_000 < receipt["gasUsed"] <= receipt["cumulativeGasUsed"]
    assert receipt["effectiveGasPrice"] >= block["baseFeePerGas"]
    assert len(receipt["logsBloom"]) == 256
    admitted = _topic("Membership", "MemberAdmitted")
    assert receipt["logs"], "the constructor admits the regulator and the validators"
    for index, log in enumerate(receipt["logs"]):
        assert log["logIndex"] == index
        assert log["transactionIndex"] == 0
        assert log["transactionHash"] == receipt["transactionHash"]
        assert log["blockHash"] == block["hash"]
        assert log["topics"][0] == admitted


def test_transaction_by_hash_of_sealed_and_pending_transactions(
    w3: Web3, config: DevnetConfig
) -> None:
    key = config.organisations["auditor"].key.private_key
    auditor = config.organisations["auditor"].address
    nonce = w3.eth.get_transaction_count(auditor, "pending")
    # A nonce gap keeps the second transaction waiting until the first arrives.
    waiting = _send_value(w3, key, DEAD, 1, nonce=nonce + 1)
    pending = w3.eth.get_transaction(waiting)
    assert pending["blockHash"] is None
    assert pending["blockNumber"] is None
    assert pending["transactionIndex"] is None
    assert pending["from"] == auditor
    assert pending["nonce"] == nonce + 1
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction_receipt(waiting)

    first = _send_value(w3, key, DEAD, 1, nonce=nonce)
    assert w3.eth.wait_for_transaction_receipt(first, timeout=60)["status"] == 1
    sealed = w3.eth.wait_for_transaction_receipt(waiting, timeout=60)
    assert sealed["status"] == 1
    mined = w3.eth.get_transaction(waiting)
    assert mined["blockNumber"] == sealed["blockNumber"]
    assert mined["blockHash"] == sealed["blockHash"]
    assert w3.eth.get_transaction_count(auditor) == nonce + 2
    assert w3.eth.get_transaction_count(auditor, "pending") == nonce + 2


def test_balances_nonces_code_and_storage(w3: Web3, config: DevnetConfig) -> None:
    addresses = system_addresses(config)
    regulator = config.regulator.address
    assert w3.eth.get_balance(regulator, 0) == GENESIS_BALANCE_WEI
    assert 0 < w3.eth.get_balance(regulator) < GENESIS_BALANCE_WEI  # it paid for bootstrap
    assert w3.eth.get_balance(Account.create().address) == 0
    assert w3.eth.get_transaction_count(regulator, 0) == 0
    assert w3.eth.get_transaction_count(regulator) >= 32
    assert w3.eth.get_code(addresses.membership, 0) == b""
    assert len(w3.eth.get_code(addresses.membership)) > 100
    assert w3.eth.get_code(regulator) == b""
    # Membership keeps its validator list in slot 3: the array's length is there.
    assert int.from_bytes(w3.eth.get_storage_at(addresses.membership, 3), "big") == len(
        config.validators
    )
    # _roles (slot 0) of the regulator: some role bit is set.
    slot = keccak(bytes(12) + bytes.fromhex(regulator[2:]) + bytes(32))
    assert int.from_bytes(w3.eth.get_storage_at(addresses.membership, slot), "big") != 0


def test_calls_estimates_and_reverts(
    w3: Web3, node: NodeProcess, system: DeployedSystem, config: DevnetConfig
) -> None:
    client = system.client
    assert client.is_member(config.regulator.address)
    assert client.is_member(config.organisations["bank"].address)
    assert not client.is_member(Account.create().address)

    admit = client.membership.functions.admit(Account.create().address, 7, bytes(32))
    assert admit.estimate_gas({"from": config.regulator.address}) > 21_000

    # Only the regulator may admit: the call reverts with Membership's custom error.
    stranger = config.organisations["bank"].address
    with pytest.raises(ContractRevert) as refused:
        client.call(_CallAs(admit, stranger))
    assert refused.value.error.startswith("Membership")

    payload = admit._encode_transaction_data()
    for method in ("eth_call", "eth_estimateGas"):
        error = node.rpc_error(
            method, {"from": stranger, "to": client.membership.address, "data": payload}
        )
        assert error.code == 3
        assert error.message == "execution reverted"
        assert error.data.startswith("0x") and len(error.data) >= 10


class _CallAs:
    """A contract function called with a chosen ``from`` (what ``client.call`` expects)."""

    def __init__(self, function: Any, sender: str) -> None:
        self.function = function
        self.sender = sender

    def call(self) -> Any:
        return self.function.call({"from": self.sender})


def test_logs_by_address_topic_and_block_hash(
    w3: Web3, system: DeployedSystem, config: DevnetConfig
) -> None:
    membership = system.client.addresses.membership
    everything = w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": membership})
    assert everything
    assert all(log["address"] == membership for log in everything)
    admitted = _topic("Membership", "MemberAdmitted")
    by_topic = w3.eth.get_logs({"fromBlock": 0, "topics": [admitted]})
    assert by_topic and all(log["topics"][0] == admitted for log in by_topic)
    assert {log["address"] for log in by_topic} == {membership}

    # Topic positions: null matches anything, a list matches any of its entries.
    bank = HexBytes(bytes(12) + bytes.fromhex(config.organisations["bank"].address[2:]))
    insurer = HexBytes(bytes(12) + bytes.fromhex(config.organisations["insurer"].address[2:]))
    either = w3.eth.get_logs({"fromBlock": 0, "topics": [admitted, [bank, insurer]]})
    assert {log["topics"][1] for log in either} == {bank, insurer}
    any_first = w3.eth.get_logs({"fromBlock": 0, "topics": [None, bank]})
    assert {log["topics"][1] for log in any_first} == {bank}

    several = w3.eth.get_logs(
        {"fromBlock": 0, "address": [membership, system.client.addresses.templates]}
    )
    assert {log["address"] for log in several} == {membership, system.client.addresses.templates}

    first = everything[0]
    in_block = w3.eth.get_logs({"blockHash": first["blockHash"], "address": membership})
    assert first in in_block
    assert all(log["blockNumber"] == first["blockNumber"] for log in in_block)
    assert w3.eth.get_logs({"fromBlock": 0, "toBlock": 0}) == []


def test_fees(w3: Web3, node: NodeProcess) -> None:
    assert w3.eth.max_priority_fee == PRIORITY_FEE_WEI
    assert w3.eth.gas_price > PRIORITY_FEE_WEI
    history = w3.eth.fee_history(5, "latest", [10.0, 50.0, 90.0])
    latest = w3.eth.block_number
    assert history["oldestBlock"] <= latest - 4
    assert len(history["baseFeePerGas"]) == 6
    assert len(history["gasUsedRatio"]) == 5
    assert all(0 <= ratio <= 1 for ratio in history["gasUsedRatio"])
    assert len(history["reward"]) == 5 and all(len(r) == 3 for r in history["reward"])
    block = w3.eth.get_block(history["oldestBlock"])
    assert history["baseFeePerGas"][0] == block["baseFeePerGas"]
    without = node.rpc("eth_feeHistory", "0x2", "latest")
    assert "reward" not in without and len(without["baseFeePerGas"]) == 3


def test_merchant_onboarding_and_a_plan_through_the_node(
    system: DeployedSystem, config: DevnetConfig
) -> None:
    desk = PlanDesk(system, config)
    demo = config.demo.merchants[0]
    consumer = config.demo.consumers[0]
    merchant = desk.onboard(demo.key.private_key, demo.uscc, demo.name, demo.industry)
    assert system.client.can_sell(merchant)

    template_id = system.template_ids[("training", demo.industry)]
    signed = desk.sign_agreement(
        demo.key.private_key, consumer.key.private_key, template_id, units=10, unit_price=10_000
    )
    agreement_id, opened = desk.open(signed)
    assert opened.event("AgreementOpened").args["agreementId"] == agreement_id
    desk.fund(agreement_id, signed.terms.total_paid)
    record = desk.sign_record(
        agreement_id, 1, demo.key.private_key, consumer.key.private_key, units=2
    )
    consumed = desk.consume(record)
    assert consumed.block_number > opened.block_number

    ledger = system.client.get_ledger(agreement_id)
    assert ledger.deposited == 100_000
    assert ledger.released == 30_000 * 2 // 10
    assert ledger.is_conserved()


# ---------------------------------------------------------------- Foundry's cast


def test_cast_reads_the_chain(
    cast: Cast, node: NodeProcess, config: DevnetConfig, w3: Web3
) -> None:
    chain_id = cast("chain-id", "--rpc-url", node.url)
    assert chain_id.returncode == 0, chain_id.stderr
    assert chain_id.stdout.strip() == str(config.chain.chain_id)

    before = w3.eth.block_number
    number = cast("block-number", "--rpc-url", node.url)
    assert number.returncode == 0, number.stderr
    assert int(number.stdout.strip()) >= before

    membership = system_addresses(config).membership
    for account, expected in ((config.regulator.address, "true"), (DEAD, "false")):
        called = cast("call", membership, "isMember(address)(bool)", account, "--rpc-url", node.url)
        assert called.returncode == 0, called.stderr
        assert called.stdout.strip() == expected

    block = cast("block", "1", "--full", "--json", "--rpc-url", node.url)
    assert block.returncode == 0, block.stderr
    assert json.loads(block.stdout)["number"] in ("0x1", 1)


def test_cast_send_from_a_member_is_sealed(
    cast: Cast, node: NodeProcess, config: DevnetConfig, w3: Web3
) -> None:
    bank = config.organisations["bank"]
    before = w3.eth.get_balance(DEAD)
    sent = cast(
        "send",
        DEAD,
        "--value",
        "7",
        "--private-key",
        bank.key.private_key,
        "--rpc-url",
        node.url,
        "--json",
    )
    assert sent.returncode == 0, sent.stderr
    receipt = json.loads(sent.stdout)
    assert receipt["status"] in ("0x1", 1)
    assert w3.eth.get_balance(DEAD) == before + 7


def test_cast_send_from_a_non_member_is_refused_with_the_reason(
    cast: Cast, node: NodeProcess, config: DevnetConfig, w3: Web3, system: DeployedSystem
) -> None:
    # A demo merchant has gas from genesis but is not admitted by any test.
    outsider = config.demo.merchants[2]
    assert not system.client.is_member(outsider.address)
    sent = cast(
        "send",
        DEAD,
        "--value",
        "1",
        "--private-key",
        outsider.key.private_key,
        "--rpc-url",
        node.url,
    )
    assert sent.returncode != 0
    assert "-32003" in sent.stderr
    assert "not permitted" in sent.stderr
    assert outsider.address.lower()[2:] in sent.stderr.lower()
    assert w3.eth.get_transaction_count(outsider.address, "pending") == 0


# ---------------------------------------------------------------- malformed requests


def _error_of(answer: Any) -> dict[str, Any]:
    assert isinstance(answer, dict) and "error" in answer, answer
    return dict(answer["error"])


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(b"{not json", -32700, id="invalid-json"),
        pytest.param(b"", -32700, id="empty-body"),
        pytest.param(b"\xff\xfe\x00garbage", -32700, id="not-utf8"),
        pytest.param(b"[" * 100_000, -32700, id="deeply-nested"),
        pytest.param(b"1" * 5_000, -32700, id="integer-of-5000-digits"),
        pytest.param(b"42", -32600, id="a-number"),
        pytest.param(b'"eth_blockNumber"', -32600, id="a-string"),
        pytest.param(b"[]", -32600, id="empty-batch"),
        pytest.param(b'{"jsonrpc":"2.0","id":1}', -32600, id="no-method"),
        pytest.param(b'{"jsonrpc":"2.0","id":1,"method":7}', -32600, id="method-not-a-string"),
        pytest.param(b'{"id":1,"method":"eth_blockNumber"}', -32600, id="no-jsonrpc"),
        pytest.param(b'{"jsonrpc":"2.0","id":{},"method":"eth_blockNumber"}', -32600, id="id"),
        pytest.param(b'{"jsonrpc":"2.0","id":NaN,"method":"eth_blockNumber"}', -32600, id="nan-id"),
        pytest.param(b'{"jsonrpc":"2.0","id":1,"method":"eth_nope"}', -32601, id="unknown"),
        pytest.param(
            b'{"jsonrpc":"2.0","id":1,"method":"eth_getProof","params":[]}',
            -32602,
            id="get-proof-without-params",
        ),
        pytest.param(
            b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":{"a":1}}',
            -32602,
            id="params-object",
        ),
        pytest.param(
            b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":"x"}',
            -32602,
            id="params-string",
        ),
    ],
)
def test_malformed_requests_get_an_error_object(node: NodeProcess, body: bytes, code: int) -> None:
    answer = node.post(body, raw=True)
    assert answer.status_code == 200
    assert _error_of(answer.json())["code"] == code
    assert node.rpc("eth_chainId")


@pytest.mark.parametrize(
    ("method", "params", "named"),
    [
        ("eth_getBalance", [], "address"),
        ("eth_getBalance", ["0x12"], "address"),
        ("eth_getBalance", [DEAD, "0x" + "f" * 200], "block"),
        ("eth_getBalance", [DEAD, "yesterday"], "block"),
        ("eth_getBalance", [DEAD, "latest", "extra"], "too many"),
        ("eth_getBalance", [12345, "latest"], "address"),
        ("eth_getBlockByNumber", ["0x1", "yes"], "full_transactions"),
        ("eth_getBlockByNumber", [-1, False], "block"),
        ("eth_getTransactionByHash", ["0x1234"], "transaction_hash"),
        ("eth_getStorageAt", [DEAD, "0x" + "1" * 65], "slot"),
        ("eth_call", ["not an object"], "transaction"),
        ("eth_call", [{"to": DEAD, "value": "0x" + "f" * 65}], "transaction.value"),
        ("eth_call", [{"to": DEAD, "data": "0x123"}], "transaction.data"),
        ("eth_sendRawTransaction", ["0x"], "raw_transaction"),
        ("eth_sendRawTransaction", ["0xdeadbeef"], "invalid raw transaction"),
        ("eth_getLogs", [{"topics": [None, None, None, None, None]}], "filter.topics"),
        ("eth_getLogs", [{"fromBlock": "0x5", "toBlock": "0x1"}], "filter"),
        ("eth_getLogs", [{"address": ["0x00"]}], "filter.address[0]"),
        ("eth_getLogs", [{"blockHash": "0x" + "00" * 32, "fromBlock": "0x1"}], "blockHash"),
        ("eth_feeHistory", ["0x2", "latest", [90, 10]], "reward_percentiles"),
        ("eth_feeHistory", ["many", "latest"], "block_count"),
        ("yufu_getSeal", [None], "block_hash"),
    ],
)
def test_bad_params_are_refused_naming_the_parameter(
    node: NodeProcess, method: str, params: list[Any], named: str
) -> None:
    refused = node.rpc_error(method, *params)
    assert refused.code == -32602, refused.message
    assert named in str(refused.message)


def test_batches_answer_each_entry_in_order(node: NodeProcess, config: DevnetConfig) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": "two", "method": "eth_getBalance", "params": ["0x12"]},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_nope"},
        {"jsonrpc": "2.0", "method": "eth_blockNumber"},  # a notification: no answer
        7,
        {"jsonrpc": "2.0", "id": 5, "method": "eth_blockNumber"},
    ]
    answers = node.post(batch).json()
    assert [answer["id"] for answer in answers] == [1, "two", 3, None, 5]
    assert answers[0]["result"] == hex(config.chain.chain_id)
    assert answers[1]["error"]["code"] == -32602
    assert answers[2]["error"]["code"] == -32601
    assert answers[3]["error"]["code"] == -32600
    assert int(answers[4]["result"], 16) > 0

    only_notifications = node.post([{"jsonrpc": "2.0", "method": "eth_chainId"}])
    assert only_notifications.status_code == 204


def test_unknown_hashes_and_future_blocks_are_null_or_not_found(node: NodeProcess) -> None:
    unknown = "0x" + os.urandom(32).hex()
    assert node.rpc("eth_getTransactionByHash", unknown) is None
    assert node.rpc("eth_getTransactionReceipt", unknown) is None
    assert node.rpc("eth_getBlockByHash", unknown, False) is None
    assert node.rpc("eth_getBlockByNumber", "0xffffffff", False) is None
    assert node.rpc_error("eth_getBalance", DEAD, "0xffffffff").code == -32001
    broke = {"from": Account.create().address, "to": DEAD, "value": hex(10**18)}
    refused = node.rpc_error("eth_call", broke)
    assert refused.code == -32000 and "balance" in str(refused.message)
    assert node.rpc_error("eth_getLogs", {"blockHash": unknown}).code == -32001


# ---------------------------------------------------------------- health and metrics


def test_health_reports_the_head(node: NodeProcess, config: DevnetConfig) -> None:
    health = node.session.get(node.url + "/health", timeout=10).json()
    assert health["status"] == "ok"
    assert health["chainId"] == config.chain.chain_id
    assert health["head"] >= 32
    assert health["producerRunning"] is True
    assert to_checksum_address(health["validator"]) == config.validators[0].address
    status = node.rpc("yufu_status")
    assert int(status["head"]["number"], 16) >= health["head"]
    assert status["permissioningDeployed"] is True
    assert status["chainId"] == hex(config.chain.chain_id)


def test_metrics_are_prometheus_text(node: NodeProcess) -> None:
    node.rpc("eth_blockNumber")
    answer = node.session.get(node.url + "/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(answer.text)}
    for name in (
        "yufu_blocks_produced",
        "yufu_transactions_sealed",
        "yufu_mempool_transactions",
        "yufu_head_block_number",
        "yufu_head_block_timestamp_seconds",
        "yufu_last_block_production_seconds",
        "yufu_rpc_requests",
    ):
        assert name in families, name
    head = families["yufu_head_block_number"].samples[0].value
    assert head >= 32
    requests = {
        sample.labels["method"]
        for sample in families["yufu_rpc_requests"].samples
        if sample.name == "yufu_rpc_requests_total"
    }
    assert "eth_blockNumber" in requests


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**300)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["latest", "pending", "0x", "0x0", "0x1", DEAD, "0x" + "ab" * 32]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
FILTER_KEYS = st.sampled_from(["fromBlock", "toBlock", "address", "topics", "blockHash", "to"])


@settings(max_examples=150, derandomize=True, deadline=None)
@given(
    method=st.sampled_from(sorted(RPC_METHODS)) | st.text(max_size=12),
    params=st.lists(
        JSON_VALUES | st.dictionaries(FILTER_KEYS, JSON_VALUES, max_size=4), max_size=4
    ),
)
def test_any_params_get_a_result_or_a_standard_error(
    node: NodeProcess, method: str, params: list[Any]
) -> None:
    answer = node.post({"jsonrpc": "2.0", "id": 9, "method": method, "params": params})
    assert answer.status_code == 200
    body = answer.json()
    assert body["id"] == 9
    assert ("result" in body) != ("error" in body)
    if "error" in body:
        # -32603 would mean a handler failed in a way nobody thought of.
        assert body["error"]["code"] in (3, -32000, -32001, -32003, -32005, -32601, -32602), body
