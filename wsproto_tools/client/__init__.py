"""The wsp client library (see :mod:`wsproto_tools.client.api`)."""

from wsproto_tools.client.api import (
    Client,
    ClientClosed,
    ClientOptions,
    ServerMisbehaved,
    ServerRefused,
    Subscription,
)

__all__ = [
    "Client",
    "ClientClosed",
    "ClientOptions",
    "ServerMisbehaved",
    "ServerRefused",
    "Subscription",
]
