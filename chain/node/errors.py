"""Errors of the Yufu node, each carrying the JSON-RPC error code it is answered with."""

from __future__ import annotations

from chain.errors import ChainError

# Standard JSON-RPC 2.0 codes, and the ones Ethereum clients use for execution.
INVALID_REQUEST: int = -32600
METHOD_NOT_FOUND: int = -32601
INVALID_PARAMS: int = -32602
INTERNAL_ERROR: int = -32603
PARSE_ERROR: int = -32700
EXECUTION_REVERTED: int = 3
TRANSACTION_REJECTED: int = -32003
RESOURCE_NOT_FOUND: int = -32001
LIMIT_EXCEEDED: int = -32005


class NodeError(ChainError):
    """Root of the node's errors; ``code`` is the JSON-RPC error code."""

    code: int = INTERNAL_ERROR

    def __init__(self, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class InvalidParams(NodeError):
    """A request's parameters are malformed; the message names the parameter."""

    code = INVALID_PARAMS


class TransactionRejected(NodeError):
    """The node refused a raw transaction; the message says why."""

    code = TRANSACTION_REJECTED


class PermissionDenied(TransactionRejected):
    """The permissioning contract does not allow the transaction's sender."""


class ExecutionReverted(NodeError):
    """A call or estimate reverted; ``data`` is the revert data as hex."""

    code = EXECUTION_REVERTED


class NotFound(NodeError):
    """A block or other resource asked for does not exist."""

    code = RESOURCE_NOT_FOUND


class LimitExceeded(NodeError):
    """A query asks for more than the node serves at once."""

    code = LIMIT_EXCEEDED
