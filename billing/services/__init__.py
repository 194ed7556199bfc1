"""Billing writes: tariffs, settlement (sessions → bills) and the wallet ledger.

The session use cases (the `sessions/` package: authorize, start, meter, stop) are the
gateway's.
"""
