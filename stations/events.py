"""The domain events stations publishes (`chargenet.events`), one name each."""

PILE_OFFLINE = "pile.offline"  # a pile went silent past its heartbeat allowance
PILE_STATUS_CHANGED = "pile.status_changed"  # a connector (or the pile, as 0) reported a state
# A desired configuration key of piles changed (stations.services.configuration).
PILE_CONFIGURATION_CHANGED = "pile.configuration_changed"
# A station's grid power limits (power_limit_kw, peak_power_limit_kw) changed
# (stations.services.network.station_update); payload: station_id.
STATION_POWER_CHANGED = "station.power_changed"
