"""The Yufu node: a persistent, permissioned py-evm chain that seals blocks and serves JSON-RPC."""
