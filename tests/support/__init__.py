"""Helpers the tests share: servers on loopback, gateways, raw HTTP, AWS fakes."""
