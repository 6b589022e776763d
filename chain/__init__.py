"""The chain package: compiler, config and client for Yufu's contracts."""
