"""Conformance tests: docs/protocol.md's checklist (S.9), one test per rule, run
against the reference server and client through raw WebSocket frames built from
the spec's byte layouts (wire.py)."""
