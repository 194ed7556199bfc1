"""Writes of the network. `network` edits stations, piles and connectors (back office,
demo data); `live` (the gateway's) records what piles report."""
