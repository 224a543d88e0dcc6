"""The `gateway` command: main and one module per verb group."""
