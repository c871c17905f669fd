"""The sans-I/O session engine (docs/architecture.md, "The session").

No sockets, no clock, no randomness: time (``now``) and nonces are arguments.

* :mod:`~wsproto_tools.engine.states` — the state transition table.
* :mod:`~wsproto_tools.engine.session` — ``ClientSession`` and ``ServerSession``:
  handshake (HMAC challenge-response or JWT), capabilities, HKDF session keys,
  resume, sequence numbers, acknowledgments, retransmission, window, heartbeats,
  topic cursors.
* :mod:`~wsproto_tools.engine.events` — what the engine reports to its driver.
* :mod:`~wsproto_tools.engine.observer` — ``SessionObserver``: follows a recorded
  conversation passively and reports violations (used by capture and replay).
* :mod:`~wsproto_tools.engine.auth`, :mod:`~wsproto_tools.engine.keys`,
  :mod:`~wsproto_tools.engine.timing`, :mod:`~wsproto_tools.engine.history`,
  :mod:`~wsproto_tools.engine.hub` — the parts: proofs and JWTs, keys and resume
  tokens, RTT/RTO, back-off, token bucket, window, topic history, replay.

Submodules are imported explicitly (``from wsproto_tools.engine.observer import
SessionObserver``); importing this package imports nothing else.
"""

__all__: list[str] = []
