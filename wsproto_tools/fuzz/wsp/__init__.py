"""``wsp fuzz --suite wsp``: stateful fuzzing of the wsp protocol (docs/fuzz.md).

* :mod:`.findings` — what an oracle reports (:class:`~.findings.Finding`).
* :mod:`.model` — the model built from the codec's schema and the rule book:
  valid messages per state, mutations and the outcome each must get.
* :mod:`.steps` — a case: a handshake and a list of steps, as data.
* :mod:`.session` — one live connection that speaks wsp by the model.
* :mod:`.runner` — runs a case and judges it; :mod:`.shrink` minimises one.
* :mod:`.campaign` — a whole run: cases, jobs, the canary session, memory,
  crashes, coverage feedback; :mod:`.report` — its JSON and HTML reports.
* :mod:`.serve` — the malicious server that fuzzes a client (its parts are the
  ``serve_*`` modules: scenarios, wire, honest server, attacks, judging).
* :mod:`.credentials`, :mod:`.reproduce` — the run's credentials; reproducers.
"""
