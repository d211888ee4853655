"""The `unerring` command line."""
