"""The tracer provider's resource: hashed once, and still equal to the SDK's own."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource

from gateway.telemetry import otel


def test_the_resource_is_hashed_once_and_means_the_same_as_the_sdks() -> None:
    # GIVEN the provider the gateway builds for tracing
    provider = otel.build_provider("orders-gateway", ["console"])
    try:
        resource = provider.resource
        sdk = Resource.create({"service.name": "orders-gateway"})
        # WHEN the exporter groups spans by it (a dict keyed by the resource)
        groups = {resource: 1, sdk: 2}
        # THEN it is the SDK's resource in all but speed: equal, the same hash, one group
        assert isinstance(resource, otel.HashedResource)
        assert resource == sdk and hash(resource) == hash(sdk)
        assert groups == {sdk: 2}
        assert resource.attributes["service.name"] == "orders-gateway"
    finally:
        provider.shutdown()
