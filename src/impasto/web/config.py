"""Settings of ``impasto serve`` (no web framework needed to read or check them)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path

#: Names and addresses that only this machine reaches.
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
#: ``impasto serve`` hands the settings to the app it runs (uvicorn's factory) in this variable.
ENV_VAR = "IMPASTO_SERVE_CONFIG"


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches."""
    if host.strip("[]").lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServerConfig:
    """Settings of one server (``impasto serve`` flags)."""

    data: Path
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    token: str | None = None
    max_upload_bytes: int = 30 * 1024 * 1024  # a whole request: content and styles
    max_pixels: int = 50_000_000  # per image, read from its header before decoding
    max_styles: int = 8
    max_active_per_client: int = 10  # queued or running jobs
    keep_hours: float = 7 * 24.0  # finished jobs older than this are removed
    max_disk_mb: float = 2048.0  # ... and the oldest finished ones beyond this much disk
    threads: int | None = None  # torch threads per worker (default: cores / workers)
    warm_up: bool = True  # workers load the fast method's networks before their first job
    cluster: str | None = None  # workers as Ray actors on this cluster (impasto.cluster.parse_address)
    cluster_actors: int | None = None  # how many (default: one per CPU of the cluster)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def to_json(self) -> str:
        return json.dumps({**dataclasses.asdict(self), "data": str(self.data)})

    @classmethod
    def from_env(cls) -> ServerConfig:
        """The settings ``impasto serve`` put in :data:`ENV_VAR`."""
        values = json.loads(os.environ[ENV_VAR])
        values["data"] = Path(values["data"])
        return cls(**values)
