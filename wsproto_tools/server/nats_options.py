"""The options of ``wsp serve --broker nats://…`` (read without loading the NATS client)."""

from __future__ import annotations

__all__ = ["NatsOptions"]

from dataclasses import dataclass

from wsproto_tools.exceptions import ConfigError


@dataclass
class NatsOptions:
    """What ``--broker nats://…`` and its options say."""

    servers: list[str]
    prefix: str = "wsp"
    creds: str | None = None
    history: int = 1000
    history_age: float | None = None
    history_bytes: int | None = None
    #: the duplicate window of every topic stream: the resume lifetime
    dedup_window: float = 300.0
    replicas: int = 1
    #: seconds a JetStream request may take before it is tried again
    timeout: float = 2.0
    connect_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.servers:
            raise ConfigError("--broker: give at least one nats://HOST:PORT")
        for server in self.servers:
            if not server.startswith(("nats://", "tls://")):
                raise ConfigError(f"--broker: {server!r} is not a nats:// or tls:// address")
        if not self.prefix.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"--nats-prefix: {self.prefix!r} (letters, digits, - and _)")
