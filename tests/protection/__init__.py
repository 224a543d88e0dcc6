"""Tests of gateway.protection."""
