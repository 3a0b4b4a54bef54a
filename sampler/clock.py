"""The one clock the daemon reads, injected wherever time matters (window, decisions, policies,
forwarding), so a test or the offline simulator can supply its own."""

from __future__ import annotations

import time
from collections.abc import Callable

# Seconds on a monotonic scale: only the difference between two readings means anything.
Clock = Callable[[], float]

# The event loop's own clock is time.monotonic too, so deadlines read from this one and the
# loop's timeouts agree.
monotonic: Clock = time.monotonic
