"""The data-arrival trigger: new files in the archive source start download + archive + index
within seconds, instead of waiting for the daily chain.

What a night's manifest lists and what the data volume holds are read by downlink_data, the
data-volume contract the steps use too (one module in both images): a naming change there
changes both sides at once.

`ArrivalTrigger` is an Airflow event trigger (BaseEventTrigger) that runs in the triggerer as the
watcher of the `downlink-arrivals` asset (dags/arrivals.py). Every `poll_seconds` it reads the
manifest of the most recent nights from the source and compares it with what the data volume
already holds (raw/<night>/ and the quarantine records of quarantine/<night>/). A file listed but
not held is pending; when a night has a pending file it has not fired for yet, it yields an event
{"night": ..., "files": [...]}, and the scheduler starts an `arrivals` run for that night.

The data volume, not the trigger's memory, says what is done: after a triggerer restart the
pending files fire once more (download skips what it already holds, index upserts), and a file
still pending `refire_seconds` after it fired (its run failed, or two nights' events fell into
one run) fires again.
"""
import asyncio
import datetime
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

import downlink_data
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

CLASSPATH = "downlink_airflow.arrivals.ArrivalTrigger"
# A night is named by the date on which it began; until noon UTC the night in progress (or just
# ended) is the one that began the day before (the daily chain at 11:00 processes that night).
ROLLOVER = datetime.timedelta(hours=12)
HTTP_TIMEOUT = 10


def recent_nights(count, now=None):
    """The `count` most recent nights, oldest first: ['2026-11-24', '2026-11-25']."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    current = (now - ROLLOVER).date()
    return [str(current - datetime.timedelta(days=k)) for k in range(count - 1, -1, -1)]


def source_names(source, night):
    """Names the source publishes for a night; [] when the night is not there (yet)."""
    if source.startswith(("http://", "https://")):
        url = f"{source.rstrip('/')}/{urllib.parse.quote(night)}/manifest.json"
        try:
            with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as resp:
                manifest = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise
        return downlink_data.manifest_names(manifest, url)
    folder = os.path.join(source, night)
    listed = os.path.join(folder, downlink_data.MANIFEST)
    if os.path.exists(listed):
        return [entry["name"] for entry in downlink_data.read_manifest(listed)]
    return downlink_data.published_names(folder)


def held_names(data_dir, night):
    """Names the data volume is done with: archived, or quarantined (a bad file is not retried
    by every poll; download itself decides whether a new copy deserves another try)."""
    return downlink_data.held_names(data_dir, night)


def pending_by_night(source, data_dir, nights):
    """{night: sorted pending names}, nights in the given order, only nights with pending files."""
    out = {}
    for night in nights:
        pending = sorted(set(source_names(source, night)) - held_names(data_dir, night))
        if pending:
            out[night] = pending
    return out


class ArrivalTrigger(BaseEventTrigger):
    """Fires once per night with files published in the source but not yet in the archive."""

    def __init__(self, source, data_dir="/data", poll_seconds=5.0, nights=2, refire_seconds=600.0, **kwargs):
        super().__init__(**kwargs)
        self.source = source
        self.data_dir = data_dir
        self.poll_seconds = float(poll_seconds)
        self.nights = int(nights)
        self.refire_seconds = float(refire_seconds)
        self.fired = {}  # (night, name) -> monotonic time it last fired

    def serialize(self):
        return CLASSPATH, {"source": self.source, "data_dir": self.data_dir, "poll_seconds": self.poll_seconds,
                           "nights": self.nights, "refire_seconds": self.refire_seconds}

    def due(self, pending, now):
        """The first night (oldest) with a file that has not fired within refire_seconds, else None."""
        still = {(n, f) for n, files in pending.items() for f in files}
        self.fired = {k: t for k, t in self.fired.items() if k in still}
        for night, files in pending.items():
            if any(now - self.fired.get((night, f), -self.refire_seconds) >= self.refire_seconds for f in files):
                for f in files:
                    self.fired[(night, f)] = now
                return night
        return None

    async def run(self):
        while True:
            try:
                pending = await asyncio.to_thread(pending_by_night, self.source, self.data_dir,
                                                  recent_nights(self.nights))
            except Exception as exc:  # the source is down or half-published: try again next poll
                self.log.warning("arrivals: cannot read %s: %s", self.source, exc)
                pending = {}
            night = self.due(pending, time.monotonic())
            if night:
                files = pending[night]
                self.log.info("arrivals: %d new file(s) for night %s: %s", len(files), night, ", ".join(files[:10]))
                yield TriggerEvent({"night": night, "files": files[:100], "count": len(files),
                                    "seen_at": datetime.datetime.now(datetime.timezone.utc).isoformat()})
            await asyncio.sleep(self.poll_seconds)
