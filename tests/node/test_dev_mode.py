"""The dev-only test controls (``run --dev``): absent by default, and correct when enabled.

``evm_snapshot``, ``evm_revert``, ``evm_increaseTime`` and ``evm_mine`` let the contract suite run
on the node over HTTP (the ``yufu-node`` backend of ``tests/conftest.py``). A node started
without ``--dev`` must not know them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from eth_account import Account

from chain.config import DevnetConfig
from chain.node.node import GENESIS_TIMESTAMP, YufuNode
from chain.node.rpc import DEV_RPC_METHODS, RPC_METHODS, RpcDispatcher

if TYPE_CHECKING:
    from conftest import NodeProcess  # tests/node/conftest.py, which pytest loads itself

DEAD = "0x000000000000000000000000000000000000dEaD"


@pytest.mark.parametrize("method", sorted(DEV_RPC_METHODS))
def test_without_dev_the_test_controls_are_method_not_found(node: NodeProcess, method: str) -> None:
    assert method not in RPC_METHODS
    params: list[Any] = ["0x1"] if method in ("evm_revert", "evm_increaseTime") else []
    assert node.rpc_error(method, *params).code == -32601


@pytest.fixture
def dev(config: DevnetConfig, tmp_path: Path) -> Any:
    node = YufuNode(config, tmp_path / "data", config.validators[0].key.private_key)
    dispatcher = RpcDispatcher(node, dev=True)

    def rpc(method: str, *params: Any) -> Any:
        answer = dispatcher.handle_request(
            {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        )
        assert answer is not None and "error" not in answer, answer
        return answer["result"]

    yield node, rpc
    node.close()


def test_time_travel_and_mining_empty_blocks(dev: Any) -> None:
    node, rpc = dev
    rpc("evm_increaseTime", 86_400)
    rpc("evm_mine")
    head = rpc("eth_getBlockByNumber", "latest", False)
    assert head["number"] == "0x1" and head["transactions"] == []
    assert int(head["timestamp"], 16) >= GENESIS_TIMESTAMP + 86_400
    assert head["yufuSealer"] is not None


def test_revert_drops_later_blocks_their_transactions_and_the_mempool(
    dev: Any, config: DevnetConfig
) -> None:
    node, rpc = dev
    rpc("evm_mine")
    snapshot = rpc("evm_snapshot")
    assert snapshot == "0x1"
    key = config.regulator.key.private_key
    sender = Account.from_key(key).address

    def transfer(nonce: int) -> str:
        signed = Account.sign_transaction(
            {
                "to": DEAD,
                "value": 1,
                "gas": 21_000,
                "maxFeePerGas": 10**11,
                "maxPriorityFeePerGas": 10**9,
                "nonce": nonce,
                "chainId": config.chain.chain_id,
            },
            key,
        )
        return str(rpc("eth_sendRawTransaction", "0x" + signed.raw_transaction.hex()))

    sealed = transfer(0)
    rpc("evm_mine")
    rpc("evm_increaseTime", 3_600)
    rpc("evm_mine")
    waiting = transfer(1)
    assert rpc("eth_getTransactionReceipt", sealed)["blockNumber"] == "0x2"
    dropped = rpc("eth_getBlockByNumber", "0x2", False)["hash"]

    assert rpc("evm_revert", snapshot) is True

    assert rpc("eth_blockNumber") == "0x1"
    assert rpc("eth_getBlockByNumber", "0x2", False) is None
    assert rpc("eth_getTransactionReceipt", sealed) is None
    assert rpc("eth_getTransactionByHash", waiting) is None
    assert rpc("eth_getTransactionCount", sender, "pending") == "0x0"
    assert rpc("eth_getBalance", DEAD) == "0x0"
    assert node.store.journaled_transactions() == []
    assert node.seal(bytes.fromhex(dropped[2:])) is None
    # The chain goes on from the snapshot, over the numbers it dropped.
    again = transfer(0)
    rpc("evm_mine")
    rpc("evm_mine")
    assert rpc("eth_getTransactionReceipt", again)["blockNumber"] == "0x2"
    assert rpc("eth_blockNumber") == "0x3"
    assert rpc("eth_getBalance", DEAD) == "0x1"
