"""The ALB (and API Gateway HTTP API) wire shapes, both ways."""
