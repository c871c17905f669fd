"""wsproto-tools: build, run and debug real-time WebSocket systems."""

__all__ = ["__version__"]

__version__ = "0.1.0"
