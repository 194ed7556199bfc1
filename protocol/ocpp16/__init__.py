"""The OCPP 1.6J adapter: what the protocol's words mean in the core's.

`values` parses meter values and pile times into platform units, `words` maps
ChargePointStatus ↔ `ConnectorState`, `AuthDecision` → idTagInfo status and an idTag →
`Credential`, and `handlers` answers each inbound CALL by translating it into a core
command and the result back. `protocol.gateway` carries the frames (connections, registry,
journal, flood limits, bounds) and knows none of this.
"""
