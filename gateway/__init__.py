"""Strangler-fig migration gateway: routes each request to the legacy or a new service."""
