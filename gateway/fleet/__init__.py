"""Protection state shared by every gateway instance, on Redis (issue 12).

Each mechanism has the shape of its per-process twin, so choosing "local or fleet" is one
constructor: `FleetConcurrencyLimit.slot()`, `FleetRateLimiter.check(key)`,
`FleetBreaker.allow()/record()/retry_after()`. All of them go through one `StateStore`, which
bounds every call by `timeout` and turns any failure into `StateUnavailable`.
"""
