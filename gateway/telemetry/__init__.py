"""What a request leaves behind: the exchange record, traces, metrics, the access log."""
