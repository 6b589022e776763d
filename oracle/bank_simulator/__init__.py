"""A SIMULATOR of the custody bank, run as its own HTTP service.

Yufu cannot reach a real custody bank from a devnet, so this stands in for one: ``python -m
oracle.bank_simulator`` keeps one custody account per merchant in an SQLite file, takes
``pain.001`` payment instructions and answers them with ``pain.002`` status reports, and
publishes every booking as a ``camt.054`` notification and every business day as a
``camt.053`` statement per account, in one ordered file feed. It can be told to misbehave (drop,
repeat or delay a notification, misstate a closing balance) so the oracle's handling of a bad
feed can be tested. See docs/decisions/0008-oracle-and-bank-simulator.md.
"""
