"""The pluggable I/O layer under the proxy: one Upstream per target, built at startup."""
