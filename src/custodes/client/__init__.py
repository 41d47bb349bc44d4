"""Clients of a published log: fetching tiles and verifying them.

Standard library and :mod:`custodes.tlog` only, so an auditor can verify a
log without the server's dependencies.
"""
