"""The migration: stages, guarded moves, the ledger, progress."""
