"""A fake on-prem monolith: the legacy upstream the gateway strangles."""
