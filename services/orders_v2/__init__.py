"""orders-v2: the orders resource re-implemented outside the monolith."""
