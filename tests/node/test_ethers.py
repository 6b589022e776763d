"""ethers.js v6 from npm against the Yufu node: the node's JSON-RPC serves it unchanged.

``tests/node/ethers_client.mjs`` does what a dapp does with ethers (a ``JsonRpcProvider``, a
``Wallet``, a ``Contract``) and prints what it read, sent and was refused; each test here checks
one part of that against what web3.py reads from the same node.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from eth_account import Account
from eth_typing import ChecksumAddress
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3

from chain.client import abi_of
from chain.config import DevnetConfig
from chain.deploy import DeployedSystem
from chain.node.node import PRIORITY_FEE_WEI

if TYPE_CHECKING:
    from conftest import NodeProcess  # tests/node/conftest.py, which pytest loads itself

NODE_JS = shutil.which("node")
pytestmark = [
    pytest.mark.yufu_node,
    pytest.mark.skipif(NODE_JS is None, reason="Node.js (`node`) is not on PATH to run ethers.js"),
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ETHERS_CLIENT = Path(__file__).with_name("ethers_client.mjs")
ETHERS_PACKAGE = PROJECT_ROOT / "node_modules" / "ethers" / "package.json"
CLIENT_TIMEOUT_SECONDS = 180
# The block the bootstrap's first transaction (Membership's creation) is sealed in.
FIRST_BLOCK = 1


def _hex(value: bytes) -> str:
    return HexBytes(value).to_0x_hex()


@pytest.fixture(scope="module")
def recipient() -> ChecksumAddress:
    """A fresh account the ethers client pays 5 wei to."""
    return to_checksum_address(Account.create().address)


@pytest.fixture(scope="module")
def ethers(
    node: NodeProcess, system: DeployedSystem, config: DevnetConfig, recipient: ChecksumAddress
) -> dict[str, Any]:
    """What ethers_client.mjs read, sent and was refused, once per module."""
    assert NODE_JS is not None  # the module is skipped without it
    if not ETHERS_PACKAGE.exists():
        pytest.fail(f"ethers is not installed at {ETHERS_PACKAGE.parent}; run `make setup`")
    addresses = system.client.addresses
    request = {
        "chainId": config.chain.chain_id,
        "account": config.regulator.address,
        "memberKey": config.organisations["operator"].key.private_key,
        "recipient": recipient,
        "blockWithTransactions": FIRST_BLOCK,
        "contracts": {
            "Membership": {"address": addresses.membership, "abi": abi_of("Membership")},
            "EvidenceRegistry": {
                "address": addresses.evidence,
                "abi": abi_of("EvidenceRegistry"),
            },
        },
    }
    done = subprocess.run(
        [NODE_JS, str(ETHERS_CLIENT), node.url],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_SECONDS,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, f"ethers_client.mjs failed:\n{done.stderr}"
    return dict(json.loads(done.stdout))


def test_ethers_is_the_version_package_json_pins(ethers: dict[str, Any]) -> None:
    pinned = json.loads((PROJECT_ROOT / "package.json").read_text())["dependencies"]["ethers"]
    assert ethers["version"] == pinned
    assert pinned.startswith("6.")


def test_ethers_detects_the_chain_id_and_reads_blocks_as_web3_does(
    ethers: dict[str, Any], w3: Web3, config: DevnetConfig
) -> None:
    assert int(ethers["chainId"]) == config.chain.chain_id == w3.eth.chain_id
    assert FIRST_BLOCK < ethers["blockNumber"] <= w3.eth.block_number

    expected = w3.eth.get_block(FIRST_BLOCK)
    for read in (ethers["block"], ethers["fullBlock"]):
        assert read["hash"] == _hex(expected["hash"])
        assert read["parentHash"] == _hex(expected["parentHash"])
        assert read["number"] == FIRST_BLOCK
        assert read["timestamp"] == expected["timestamp"]
        assert read["miner"] == expected["miner"]
        assert int(read["gasLimit"]) == expected["gasLimit"] == config.chain.gas_limit
        assert int(read["gasUsed"]) == expected["gasUsed"]
        assert int(read["baseFeePerGas"]) == expected["baseFeePerGas"]
        assert read["stateRoot"] == _hex(expected["stateRoot"])
    [creation_hash] = [HexBytes(h) for h in expected["transactions"]]  # type: ignore[arg-type]
    assert ethers["block"]["transactions"] == [_hex(creation_hash)]

    [creation] = ethers["fullBlock"]["transactions"]
    sealed = w3.eth.get_transaction(creation_hash)
    assert creation["hash"] == _hex(sealed["hash"])
    assert creation["from"] == sealed["from"] == config.regulator.address
    assert creation["to"] is None
    assert creation["nonce"] == sealed["nonce"] == 0
    assert creation["type"] == sealed["type"] == 2
    assert int(creation["chainId"]) == config.chain.chain_id
    assert creation["blockHash"] == _hex(expected["hash"])
    assert creation["index"] == 0

    pinned = w3.eth.get_block(ethers["blockNumber"])
    assert ethers["pinnedBlock"]["hash"] == _hex(pinned["hash"])
    assert ethers["missingBlock"] is None


def test_ethers_reads_balance_code_and_nonces_as_web3_does(
    ethers: dict[str, Any], w3: Web3, system: DeployedSystem, config: DevnetConfig
) -> None:
    pinned = ethers["blockNumber"]
    regulator = to_checksum_address(config.regulator.address)
    assert int(ethers["balance"]) == w3.eth.get_balance(regulator, pinned)
    assert ethers["nonce"] == w3.eth.get_transaction_count(regulator, pinned)
    assert ethers["pendingNonce"] == w3.eth.get_transaction_count(regulator, "pending")
    code = w3.eth.get_code(to_checksum_address(system.client.addresses.membership), pinned)
    assert ethers["code"]["length"] == len(code) > 100
    assert ethers["code"]["hash"] == _hex(keccak(code))


def test_ethers_fee_data_uses_the_node_priority_fee(ethers: dict[str, Any], w3: Web3) -> None:
    fees = ethers["feeData"]
    assert int(fees["maxPriorityFeePerGas"]) == PRIORITY_FEE_WEI == w3.eth.max_priority_fee
    assert int(fees["gasPrice"]) > PRIORITY_FEE_WEI
    # ethers' default: twice the latest base fee plus the priority fee.
    assert int(fees["maxFeePerGas"]) > int(fees["maxPriorityFeePerGas"])


def test_ethers_contract_calls_and_logs_match_web3(
    ethers: dict[str, Any], w3: Web3, system: DeployedSystem, config: DevnetConfig
) -> None:
    calls = ethers["calls"]
    assert calls["accountIsMember"] is True
    assert calls["strangerIsMember"] is False
    membership = system.client.membership
    expected_validators = membership.functions.getValidators().call(
        block_identifier=ethers["blockNumber"]
    )
    assert calls["validators"] == list(expected_validators)
    assert calls["validators"] == [v.address for v in config.validators]

    admitted = membership.events.MemberAdmitted().get_logs(
        from_block=0, to_block=ethers["blockNumber"]
    )
    assert [log["account"] for log in ethers["memberAdmittedLogs"]] == [
        event["args"]["account"] for event in admitted
    ]
    for read, event in zip(ethers["memberAdmittedLogs"], admitted, strict=True):
        assert read["transactionHash"] == _hex(event["transactionHash"])
        assert read["blockHash"] == _hex(event["blockHash"])
        assert read["index"] == event["logIndex"]
        assert read["address"] == membership.address

    regulator = config.regulator.address
    [own] = ethers["accountAdmittedLogs"]
    [expected] = [event for event in admitted if event["args"]["account"] == regulator]
    assert own["transactionHash"] == _hex(expected["transactionHash"])
    assert own["topics"][1] == "0x" + regulator[2:].lower().rjust(64, "0")


def test_ethers_decodes_the_custom_error_of_a_reverted_call(
    ethers: dict[str, Any], config: DevnetConfig
) -> None:
    revert = ethers["revert"]
    assert revert is not None, "a member's admit should revert"
    assert revert["code"] == "CALL_EXCEPTION"
    assert revert["errorName"] == "MembershipUnauthorized"
    assert revert["errorArgs"][0] == config.organisations["operator"].address
    assert revert["data"].startswith("0x") and len(revert["data"]) >= 10


def test_ethers_member_transactions_are_sealed_and_seen_by_web3(
    ethers: dict[str, Any],
    w3: Web3,
    system: DeployedSystem,
    config: DevnetConfig,
    recipient: ChecksumAddress,
) -> None:
    operator = to_checksum_address(config.organisations["operator"].address)
    anchor = ethers["anchor"]
    receipt = w3.eth.get_transaction_receipt(anchor["sent"]["hash"])
    assert receipt["status"] == anchor["receipt"]["status"] == 1
    assert anchor["receipt"]["hash"] == anchor["sent"]["hash"]
    assert anchor["receipt"]["blockHash"] == _hex(receipt["blockHash"])
    assert anchor["receipt"]["blockNumber"] == receipt["blockNumber"]
    assert int(anchor["receipt"]["gasUsed"]) == receipt["gasUsed"]
    assert int(anchor["receipt"]["gasPrice"]) == receipt["effectiveGasPrice"]
    assert anchor["receipt"]["logs"] == len(receipt["logs"]) >= 1
    assert anchor["receipt"]["from"] == receipt["from"] == operator
    assert anchor["receipt"]["to"] == receipt["to"] == system.client.addresses.evidence
    assert anchor["event"] == {"hash": anchor["digest"], "submitter": operator}
    assert anchor["stored"]["blockNumber"] == str(receipt["blockNumber"])
    assert anchor["stored"]["submitter"] == operator
    stored = system.client.lookup_member_anchor(HexBytes(anchor["digest"]))
    assert stored.block_number == receipt["blockNumber"]

    sent = w3.eth.get_transaction(anchor["sent"]["hash"])
    assert anchor["sent"]["nonce"] == sent["nonce"]
    assert anchor["sent"]["type"] == sent["type"] == 2
    assert int(anchor["sent"]["maxPriorityFeePerGas"]) == sent["maxPriorityFeePerGas"]
    assert int(anchor["sent"]["maxFeePerGas"]) == sent["maxFeePerGas"]
    assert anchor["fetched"]["blockHash"] == _hex(receipt["blockHash"])
    assert anchor["fetched"]["index"] == receipt["transactionIndex"]

    transfer = ethers["transfer"]
    paid = w3.eth.get_transaction_receipt(transfer["sent"]["hash"])
    assert paid["status"] == transfer["receipt"]["status"] == 1
    assert transfer["receipt"]["blockHash"] == _hex(paid["blockHash"])
    assert transfer["sent"]["nonce"] == anchor["sent"]["nonce"] + 1
    assert paid["gasUsed"] == 21_000
    assert w3.eth.get_balance(recipient) == 5
    assert w3.eth.get_transaction_count(operator) >= transfer["sent"]["nonce"] + 1


def test_ethers_send_from_a_non_member_is_refused_with_the_permission_error(
    ethers: dict[str, Any], w3: Web3, system: DeployedSystem
) -> None:
    outsider = ethers["outsider"]
    assert not system.client.is_member(outsider)
    refusal = ethers["refusal"]
    assert refusal is not None, f"the node sealed {ethers.get('outsiderSent')} from a non-member"
    assert refusal["method"] == "eth_sendRawTransaction"
    assert refusal["rpcCode"] == -32003
    membership = system.client.addresses.membership.lower()
    assert refusal["rpcMessage"] == (
        f"account {outsider.lower()} is not permitted to send this transaction "
        f"(permissioning contract {membership})"
    )
    # ethers knows no code of its own for a permissioning refusal (nor does it for Besu's).
    assert refusal["code"] == "UNKNOWN_ERROR"
    assert w3.eth.get_transaction_count(to_checksum_address(outsider), "pending") == 0
