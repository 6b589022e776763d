"""The auditor's side of Yufu: replay a node's history from genesis and verify every block.

``chain.audit.follower`` holds the follower: it downloads blocks from a node (over JSON-RPC or
straight from a data directory), checks each block's seal against the validator set at its
parent, re-executes the block on its own py-evm chain built from the same configuration and
compares every root, the gas used, the bloom and the receipts with what the node served. The
first mismatch stops it with a report naming the block and the field.

``chain.audit.ledger`` rebuilds every agreement's ledger from the AgreementBook's events and
checks that money is conserved; ``chain.audit.replay`` puts both together behind
``yufu audit replay`` and writes ``report.json`` and ``agreements.csv``.
"""
