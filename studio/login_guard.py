"""The studio's password check, slowed and locked against guessing.

Gradio's login route takes a callable for `auth`; this one compares in constant time and counts
failures. Each wrong answer is held back FAIL_DELAY_S (the route awaits it, so no server thread
waits), and after MAX_FAILURES failures within WINDOW_S every login is refused, the right
password too, for LOCKOUT_S seconds (doubling while the guessing goes on, up to MAX_LOCKOUT_S).
Gradio does not tell the callable who is asking, so the count is the studio's, not a visitor's:
someone guessing locks the owner out for a while too, which beats letting them guess on.
DARKROOM_LOGIN_LOCKOUT_S sets the first lockout (tests use a short one).
"""
import asyncio
import hmac
import os
import threading
import time

MAX_FAILURES = 5
WINDOW_S = 300.0
LOCKOUT_S = 60.0
MAX_LOCKOUT_S = 3600.0
FAIL_DELAY_S = 1.0


class LoginGuard:
    def __init__(self, user: str, password: str, lockout_s: float | None = None, clock=time.monotonic):
        self.user, self.password = user.encode(), password.encode()
        self.first_lockout = float(lockout_s if lockout_s is not None
                                   else os.environ.get("DARKROOM_LOGIN_LOCKOUT_S", LOCKOUT_S))
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: list = []        # times of recent failures
        self._locked_until = 0.0
        self._lockout = self.first_lockout

    def locked(self) -> bool:
        return self.clock() < self._locked_until

    def check(self, user: str, password: str) -> bool:
        """The answer without the delay: True only for the right pair while not locked."""
        right = hmac.compare_digest(str(user).encode(), self.user) & hmac.compare_digest(str(password).encode(), self.password)
        with self._lock:
            now = self.clock()
            if now < self._locked_until:
                return False
            if right:
                self._failures.clear()
                self._lockout = self.first_lockout
                return True
            self._failures = [t for t in self._failures if now - t < WINDOW_S] + [now]
            if len(self._failures) >= MAX_FAILURES:
                self._locked_until = now + self._lockout
                self._lockout = min(self._lockout * 2, MAX_LOCKOUT_S)
                self._failures.clear()
            return False

    async def login(self, user: str, password: str) -> bool:
        """What launch(auth=...) takes: a coroutine function (Gradio awaits only those)."""
        if self.check(user, password):
            return True
        await asyncio.sleep(FAIL_DELAY_S)
        return False
