"""Who may pass: request limits, API keys and JWTs, rate limits, the admin guard."""
