"""The reference wsp server (see :mod:`wsproto_tools.server.app`)."""

from wsproto_tools.server.app import ServerConfig, WspServer
from wsproto_tools.server.broker import Broker, MemoryBroker

__all__ = ["Broker", "MemoryBroker", "ServerConfig", "WspServer"]
