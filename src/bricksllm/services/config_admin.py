"""What every admin use case on the configuration holds."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from bricksllm.ports import ConfigStore


class ConfigAdmin:
    """The config store, the hook that refreshes this instance's snapshot after a write (others
    learn of it by notification or polling), and the clock that stamps writes."""

    def __init__(
        self,
        config: ConfigStore,
        on_change: Callable[[], Awaitable[None]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._on_change = on_change
        self._clock = clock
