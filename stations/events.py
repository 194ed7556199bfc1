"""The domain events stations publishes (`chargenet.events`), one name each."""

PILE_OFFLINE = "pile.offline"  # a pile went silent past its heartbeat allowance
