"""The network side of ``--executor ray`` on the driver: HOST:PORT addresses, reaching a head node within seconds,
and the environment a local Ray instance starts with (loopback only, normal priority)."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import sys
from pathlib import Path

from ...core.errors import FacePolicyError

CONNECT_TIMEOUT_S = 5.0
_LOOPBACK_NAMES = ("localhost", "")


def parse_address(address: str) -> tuple[str, int]:
    """'HOST:PORT' → (host, port); FacePolicyError for anything else ('[::1]:6379' is accepted too)."""
    text = str(address).strip()
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^\s:/\[\]]+):(\d+)", text)
    if not m:
        raise FacePolicyError(f"--address {address!r}: expected HOST:PORT of a Ray head node, e.g. 10.0.0.5:6379")
    host, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    port_n = int(port)
    if not 0 < port_n < 65536:
        raise FacePolicyError(f"--address {address!r}: the port must be between 1 and 65535")
    return host, port_n


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """FacePolicyError within ``timeout`` seconds when nothing accepts connections at HOST:PORT."""
    host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except socket.gaierror as exc:
        reason = f"unknown host ({exc.strerror or exc})"
    except TimeoutError:
        reason = f"no answer within {timeout:.0f} s"
    except OSError as exc:
        reason = exc.strerror or str(exc)
    raise FacePolicyError(
        f"cannot reach the Ray cluster at {address}: {reason}. Start a head node there with "
        f"'ray start --head --port {port}', check the firewall, or leave out --address to run on this machine"
    )


def prepare_environment(address: str | None) -> None:
    """A local instance (no address, or a loopback one) listens on 127.0.0.1 only.

    Ray otherwise advertises, and binds, the machine's network address. The switch is read when ray is first
    imported, so it is set before that; an address on another machine keeps Ray's default.
    """
    if address is None or is_loopback(parse_address(address)[0]):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if address is None:
        # Ray starts its workers at niceness 15, so on a machine that does anything else the rows crawl (3x slower
        # per row here next to one training job) while `--jobs` workers run at normal priority. The raylet of a
        # local instance reads this when it starts; a user's own setting wins.
        os.environ.setdefault("RAY_worker_niceness", "0")
    if address is None and "ray" not in sys.modules:
        # Ray's default for a new local instance, said explicitly so that it does not print a warning about it.
        # Only before Ray's first import: a process that already used Ray keeps the mode it read then.
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def local_auth_token() -> str | None:
    """Where this machine's Ray token comes from (the variable or the file Ray reads), or None."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    for path in (os.environ.get("RAY_AUTH_TOKEN_PATH"), Path.home() / ".ray" / "auth_token"):
        if path and Path(path).is_file():
            return str(path)
    return None
