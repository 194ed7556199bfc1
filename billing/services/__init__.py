"""Billing writes: tariffs, settlement (sessions → bills) and the wallet ledger.

The session state table itself (`sessions.py`) belongs to the gateway's use cases.
"""
