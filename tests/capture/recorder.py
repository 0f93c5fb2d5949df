"""A status callback that records what a reader reports and lets a test wait for a state."""

from __future__ import annotations

import threading

from streamrec.capture import State, Status


class StatusLog:
    """Pass as ``on_status``; it is called in the reader's thread, read in the test's."""

    def __init__(self) -> None:
        self.statuses: list[Status] = []
        self._changed = threading.Condition()

    def __call__(self, status: Status) -> None:
        with self._changed:
            self.statuses.append(status)
            self._changed.notify_all()

    def of(self, state: State) -> list[Status]:
        with self._changed:
            return [status for status in self.statuses if status.state is state]

    def wait_for(self, state: State, after: float = 0.0, timeout: float = 10.0, count: int = 1) -> Status:
        """The ``count``-th status in ``state`` reported at or after ``after`` (a ``time.time()``);
        fails the test with everything seen so far if none comes within ``timeout`` seconds."""

        def found() -> list[Status]:
            return [status for status in self.statuses if status.state is state and status.time >= after]

        with self._changed:
            if not self._changed.wait_for(lambda: len(found()) >= count, timeout):
                seen = "\n".join(str(status) for status in self.statuses)
                raise AssertionError(f"no {count} x {state.value} within {timeout} s; seen:\n{seen}")
            return found()[count - 1]

