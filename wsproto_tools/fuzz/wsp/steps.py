"""A case of the wsp suite as data, and how cases are made.

A :class:`Case` is a session: its first step is ``hello`` (the handshake, valid
or mutated), then a list of :class:`Step`, each an action of
:data:`~.actions.ACTIONS` with JSON arguments. Live values (nonces, session id,
tokens, offsets, sequence numbers) are not in the case: the steps bind them
when they run, so a case replays on a target whose ids differ from run to run.

:func:`generate` makes case ``index`` of a run from ``Random(f"{seed}:{index}")``
alone; :func:`mutate` derives a case from a kept one (a step added, removed,
replaced or given other arguments, or a mutation moved to the middle of the
session), for the coverage- and state-guided corpus.
"""

from __future__ import annotations

__all__ = ["Case", "Generator", "Step", "generate", "mutate"]

import json
import random
from dataclasses import dataclass, field, replace
from typing import Any

from wsproto_tools.fuzz.wsp.actions import ACTIONS, Plan
from wsproto_tools.fuzz.wsp.handshake import hello_args

MAX_STEPS = 24


@dataclass(frozen=True, slots=True)
class Step:
    """One step: an action name and its JSON arguments."""

    action: str
    args: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.args.items())
        return f"{self.action}({shown})"

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "args": self.args}


@dataclass(frozen=True, slots=True)
class Case:
    """A session to run: ``steps[0]`` is always the ``hello`` step."""

    index: int
    steps: tuple[Step, ...]
    parent: int | None = None  # the corpus case it was derived from

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "parent": self.parent,
            "steps": [s.to_json() for s in self.steps],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        steps = tuple(Step(str(s["action"]), dict(s.get("args") or {})) for s in data["steps"])
        if not steps or steps[0].action != "hello":
            raise ValueError("a case starts with its hello step")
        for step in steps[1:]:
            if step.action not in ACTIONS:
                raise ValueError(f"unknown action {step.action!r}")
        return cls(int(data.get("index", 0)), steps, data.get("parent"))

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)


@dataclass(frozen=True)
class Generator:
    """What the generator may use: the target's auth methods and extras."""

    methods: tuple[str, ...] = ("hmac",)
    mint: bool = False  # the fuzzer can mint JWTs (other subjects, expired…)
    token_key: bool = False  # the fuzzer knows the resume-token key
    deflate: bool = False  # offer permessage-deflate
    claims: bool = False  # JWT sessions are limited to some topics


def _plan(hello: Step, gen: Generator) -> Plan:
    return Plan(
        str(hello.args["auth"]),
        tuple(hello.args["caps"]),
        jwt_subjects=gen.mint,
        token_key=gen.token_key,
        claims=gen.claims,
    )


def _step(rng: random.Random, plan: Plan, *, valid_only: bool = False) -> Step:
    names = [n for n, a in ACTIONS.items() if a.valid or not valid_only]
    weights = [ACTIONS[n].weight for n in names]
    for _ in range(50):
        name = rng.choices(names, weights)[0]
        args = ACTIONS[name].generate(rng, plan)
        if args is not None:
            return Step(name, args)
    return Step("request", {"method": "echo", "size": 1})


def _hello(rng: random.Random, gen: Generator) -> Step:
    args = hello_args(rng, gen.methods, gen.mint)
    if gen.deflate and rng.random() < 0.5:
        args["deflate"] = True
    return Step("hello", args)


def generate(seed: int, index: int, gen: Generator) -> Case:
    """Case ``index`` of the run with ``seed``: a handshake, valid steps and,
    mostly, one mutation somewhere (in the middle as often as at the end)."""
    rng = random.Random(f"{seed}:{index}")
    hello = _hello(rng, gen)
    plan = _plan(hello, gen)
    steps = [hello]
    if hello.args["variant"] != "ok":
        return Case(index, tuple(steps))
    n = rng.choice((1, 2, 4, 8, 12))
    for _ in range(n):
        steps.append(_step(rng, plan, valid_only=True))
    if rng.random() < 0.85:
        at = rng.randrange(1, len(steps) + 1)
        mutation = _step(rng, plan)
        while ACTIONS[mutation.action].valid:
            mutation = _step(rng, plan)
        steps.insert(at, mutation)
        if ACTIONS[mutation.action].terminal:
            del steps[at + 1 :]  # nothing can follow a step that ends the session
    return Case(index, tuple(steps))


def mutate(parent: Case, seed: int, index: int, gen: Generator) -> Case:
    """A case derived from ``parent`` (a corpus case): one to three edits."""
    rng = random.Random(f"{seed}:{index}:m")
    steps = list(parent.steps)
    plan = _plan(steps[0], gen)
    for _ in range(rng.choice((1, 1, 2, 3))):
        op = rng.choice(("insert", "delete", "replace", "args", "hello"))
        body = len(steps) - 1
        if op == "hello":
            steps[0] = (
                _hello(rng, gen)
                if rng.random() < 0.5
                else replace(steps[0], args={**steps[0].args, "variant": "ok"})
            )
            plan = _plan(steps[0], gen)
        elif op == "insert" and len(steps) < MAX_STEPS:
            steps.insert(rng.randrange(1, len(steps) + 1), _step(rng, plan))
        elif op == "delete" and body > 0:
            del steps[rng.randrange(1, len(steps))]
        elif op in ("replace", "args") and body > 0:
            at = rng.randrange(1, len(steps))
            if op == "args":
                fresh = ACTIONS[steps[at].action].generate(rng, plan)
                if fresh is not None:
                    steps[at] = Step(steps[at].action, fresh)
            else:
                steps[at] = _step(rng, plan)
    # a terminal step ends the case; so does a mutated hello
    for at, step in enumerate(steps[1:], start=1):
        if ACTIONS[step.action].terminal:
            del steps[at + 1 :]
            break
    if steps[0].args.get("variant") != "ok":
        del steps[1:]
    return Case(index, tuple(steps), parent.index)
