"""Tests of gateway.local."""
