"""Login throttling for the auth manager's token endpoints.

A password check costs 32 MiB and 0.2-0.9 s of CPU (account_passwords), so logins are limited in
two ways:
- Gate: at most CONCURRENT_CHECKS checks run at once and MAX_WAITING more wait, each at most
  GATE_WAIT_SECONDS, for a slot; any other login is answered 429 at once. (The token endpoints
  run in the api-server's shared thread pool: a flood must not park its threads.)
- Backoff: after FREE_FAILURES wrong passwords for one user name, or FREE_FAILURES_PER_ADDRESS
  from one client address, each further attempt must wait BASE_SECONDS x 2^(extra failures),
  capped at MAX_SECONDS; until then the answer is 429 with Retry-After, without a check (so
  guessing costs the guesser time, not the server CPU). A success clears the user's count; counts
  are forgotten FORGET_SECONDS after the last failure.
The state is in memory, per api-server process (Airflow runs one by default, [api] workers).
"""
import math
import threading
import time
from collections import OrderedDict

CONCURRENT_CHECKS = 2     # the machine's cores; 2 x 32 MiB
MAX_WAITING = 4           # a few queued logins wait their turn; a flood is refused
GATE_WAIT_SECONDS = 5.0
FREE_FAILURES = 5         # typos allowed per user name before any wait
FREE_FAILURES_PER_ADDRESS = 20  # a team behind one NAT address shares this
BASE_SECONDS = 1.0
MAX_SECONDS = 300.0
FORGET_SECONDS = 900.0
MAX_ENTRIES = 10_000      # oldest forgotten first: random names cannot fill the memory


class Backoff:
    """Failure counts per key (a user name or an address) and how long the next try must wait."""

    def __init__(self, free_failures, *, base=BASE_SECONDS, cap=MAX_SECONDS, forget=FORGET_SECONDS,
                 max_entries=MAX_ENTRIES, clock=time.monotonic):
        self.free, self.base, self.cap, self.forget = free_failures, base, cap, forget
        self.max_entries, self.clock = max_entries, clock
        self._entries = OrderedDict()  # key -> (failures, time of the last one)
        self._lock = threading.Lock()

    def delay(self, failures):
        """Seconds to wait after `failures` failures (0 while within the free ones)."""
        extra = failures - self.free
        return 0.0 if extra < 0 else min(self.cap, self.base * 2 ** min(extra, 64))

    def _current(self, key, now):
        entry = self._entries.get(key)
        if entry and now - entry[1] > max(self.forget, self.delay(entry[0])):
            del self._entries[key]
            return None
        return entry

    def retry_after(self, key):
        """Seconds until key may try again (0: now)."""
        if key is None:
            return 0.0
        with self._lock:
            now = self.clock()
            entry = self._current(key, now)
            return 0.0 if entry is None else max(0.0, entry[1] + self.delay(entry[0]) - now)

    def failed(self, key):
        if key is None:
            return
        with self._lock:
            now = self.clock()
            entry = self._current(key, now)
            self._entries[key] = ((entry[0] if entry else 0) + 1, now)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def succeeded(self, key):
        with self._lock:
            self._entries.pop(key, None)


class Throttled(Exception):
    """Too many attempts: answer 429 with Retry-After `seconds` (a whole number, at least 1)."""

    def __init__(self, seconds, reason):
        super().__init__(reason)
        self.seconds = max(1, math.ceil(seconds))


class LoginThrottle:
    def __init__(self, *, concurrent=CONCURRENT_CHECKS, max_waiting=MAX_WAITING, gate_wait=GATE_WAIT_SECONDS,
                 per_user=None, per_address=None):
        self.gate = threading.BoundedSemaphore(concurrent)
        self.gate_wait = gate_wait
        self.max_inside = concurrent + max_waiting
        self._inside = 0  # running or waiting checks
        self._inside_lock = threading.Lock()
        self.per_user = per_user or Backoff(FREE_FAILURES)
        self.per_address = per_address or Backoff(FREE_FAILURES_PER_ADDRESS)

    def _refuse_if_backing_off(self, user, address):
        wait_user, wait_address = self.per_user.retry_after(user), self.per_address.retry_after(address)
        if wait_user or wait_address:
            who = "this user" if wait_user >= wait_address else "this address"
            raise Throttled(max(wait_user, wait_address), f"too many failed logins for {who}; try again later")

    def check(self, user, address, verify):
        """verify() under the throttle: its result (True: the password was right), or Throttled.
        user is None for a name that cannot be an account (only the address is counted)."""
        self._refuse_if_backing_off(user, address)
        with self._inside_lock:
            if self._inside >= self.max_inside:
                raise Throttled(1, "too many logins at once; try again in a moment")
            self._inside += 1
        try:
            if not self.gate.acquire(timeout=self.gate_wait):
                raise Throttled(1, "too many logins at once; try again in a moment")
            try:
                # Again: the failures of the checks that ran while this one waited count too.
                self._refuse_if_backing_off(user, address)
                ok = verify()
            finally:
                self.gate.release()
        finally:
            with self._inside_lock:
                self._inside -= 1
        if ok:
            if user is not None:
                self.per_user.succeeded(user)
        else:
            self.per_user.failed(user)
            self.per_address.failed(address)
        return ok
