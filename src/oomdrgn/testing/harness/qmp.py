"""A blocking wrapper around ``qemu.qmp.QMPClient``, one private event loop each."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional

from qemu.qmp import QMPClient

__all__ = ["Qmp"]


class Qmp:
    """Synchronous QMP connection to a QEMU unix socket."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = QMPClient("oomdrgn")
        try:
            self._run(self._client.connect(path), timeout)
        except BaseException:
            self._loop.close()
            raise

    def _run(self, coro: Any, timeout: float) -> Any:
        return self._loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def execute(self, cmd: str, args: Optional[Dict[str, Any]] = None,
                timeout: float = 30.0) -> Any:
        """Run QMP command ``cmd``; return its ``return`` value."""
        return self._run(self._client.execute(cmd, args), timeout)

    def events(self, name: str) -> List[Dict[str, Any]]:
        """The events called ``name`` received so far (others are dropped)."""
        return [dict(m) for m in self._client.events.clear() if m.get("event") == name]

    def close(self) -> None:
        """Disconnect (quietly if QEMU is already gone)."""
        if self._loop.is_closed():
            return
        try:
            self._run(self._client.disconnect(), 5.0)
        except Exception:  # QEMU died first: nothing left to say goodbye to
            pass
        finally:
            self._loop.close()
