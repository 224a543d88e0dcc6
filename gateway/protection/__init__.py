"""How a target is protected: breaker, retries, concurrency limits."""
