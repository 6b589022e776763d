"""A SIMULATOR of the business-licence registry, run as its own HTTP service.

Yufu cannot reach the market regulator's registry from a devnet, so this stands in for it:
``python -m oracle.licence_simulator`` serves licence records keyed by unified social credit
code from an SQLite file, seeded with the devnet's demo merchants and a set of businesses in
every situation the licence oracle must notice (`oracle.licence_simulator.seed`). See
docs/decisions/0008-oracle-and-bank-simulator.md.
"""
