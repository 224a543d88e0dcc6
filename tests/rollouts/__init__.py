"""Tests of gateway.rollouts."""
