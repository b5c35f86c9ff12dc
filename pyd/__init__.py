"""pyd: a container engine daemon on Twisted that speaks the Docker Engine API."""

__version__ = "0.1.0"
