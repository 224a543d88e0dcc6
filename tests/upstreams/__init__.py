"""Tests of gateway.upstreams."""
