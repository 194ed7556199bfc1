"""Interconnect services, one module per concern: `partners` (credentials, settings,
published stations), `inbound` (accepting a request: token, replay, message log), `orders`
(starts and stops for partners), `pushes` (the push queue and reconciliation)."""
