"""Maintainers' scripts that read the source tree (run from the repository root)."""
