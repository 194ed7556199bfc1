"""Clients of vendors we talk to over the network, one package per vendor, each with a
faithful local fake of its wire protocol (for tests and development).

Nothing here touches the database or knows a business app: services call a client
outside their transactions and record the outcome.
"""
