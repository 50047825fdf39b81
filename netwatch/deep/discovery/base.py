"""The camera discovery-protocol registry: each protocol module registers its port and parser.

A protocol subclasses :class:`DiscoveryProtocol` with the UDP ``port`` it is sent to and its
``parse`` function (payload -> :class:`~netwatch.deep.discovery.identity.DeviceIdentity` or
None, never raising); ``__init_subclass__`` names it from the class name (``SadpDiscovery``
-> ``sadp``) and refuses a name taken twice. The package's ``BUILTIN_DISCOVERY`` tuple is
what :func:`~netwatch.deep.discovery.parse_discovery` routes to, by port.
Reads no configuration.
"""

from __future__ import annotations

from typing import Any, ClassVar

from netwatch.deep.discovery.identity import DeviceIdentity
from netwatch.registry import register, snake_name

PROTOCOLS: dict[str, type[DiscoveryProtocol]] = {}
"""Every discovery protocol class by name, filled as the classes are defined."""


class DiscoveryProtocol:
    """Base class of a discovery protocol: its port and parser (see the module docstring)."""

    name: ClassVar[str] = ""
    port: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = snake_name(cls.__name__, "Discovery")
        register(PROTOCOLS, cls.name, cls, "discovery protocol")

    @staticmethod
    def parse(payload: bytes) -> DeviceIdentity | None:
        """The identity a message of this protocol announces, or None."""
        return None
