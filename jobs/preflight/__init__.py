"""Preflight: refuse a job that could not start, before it is submitted."""
