"""Tests of the migration: stages, guarded moves, the ledger."""
