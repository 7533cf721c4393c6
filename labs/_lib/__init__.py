"""Shared helpers for the lab checkers, the runner and the lab setup scripts (stdlib + testinfra only)."""
