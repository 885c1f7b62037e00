"""Mail to the team, only when something needs them: a step that failed for good (retries
exhausted), a step that succeeded but wrote to stderr (cron's habit, opt-in per script), and the
optional nightly digest. A step that keeps failing is throttled (ThrottledAlerts: one mail, a
reminder per DOWNLINK_ALERT_REPEAT, one "recovered"). Sent with the smtp provider's SmtpNotifier through the `smtp_default`
connection (AIRFLOW_CONN_SMTP_DEFAULT / DOWNLINK_SMTP_CONN): no SMTP code of our own.
"""
import logging
import re
from datetime import datetime, timezone

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from downlink_airflow import alert_throttle
from downlink_airflow.alert_state import VariableStore

log = logging.getLogger(__name__)

OUTPUT_LINES = 40
EXIT_CODE = re.compile(r"'StatusCode':\s*(-?\d+)")

_ROWS = """
<table role="presentation" cellpadding="3">
<tr><td>DAG</td><td>{{ dag.dag_id }}</td></tr>
<tr><td>Task</td><td>{{ ti.task_id }}</td></tr>
<tr><td>Night</td><td>{{ downlink.night }}</td></tr>
<tr><td>Run</td><td>{{ ti.run_id }}</td></tr>
<tr><td>Try</td><td>{{ ti.try_number }} of {{ ti.max_tries + 1 }}</td></tr>
<tr><td>Exit code</td><td>{{ downlink.exit_code }}</td></tr>
<tr><td>Reason</td><td>{{ downlink.reason | e }}</td></tr>
<tr><td>Log</td><td><a href="{{ ti.log_url }}">{{ ti.log_url }}</a></td></tr>
</table>
"""

FAILURE_SUBJECT = ("[Downlink] FAILED {{ dag.dag_id }}.{{ ti.task_id }} night {{ downlink.night }}"
                   " (exit {{ downlink.exit_code }})")
FAILURE_HTML = (
    "<p>The step <b>{{ ti.task_id }}</b> of <b>{{ dag.dag_id }}</b> failed after all its tries.</p>"
    + _ROWS
    + "<p>Last {{ downlink.output_lines }} lines of its output:</p>"
    "<pre>{{ downlink.output | e }}</pre>"
)
REMINDER_SUBJECT = ("[Downlink] STILL FAILING {{ dag.dag_id }}.{{ ti.task_id }} since {{ downlink.since }}"
                    " night {{ downlink.night }} (exit {{ downlink.exit_code }})")
REMINDER_HTML = (
    "<p>The step <b>{{ ti.task_id }}</b> of <b>{{ dag.dag_id }}</b> is still failing: it has failed "
    "since {{ downlink.since }} and has not succeeded since (one reminder every {{ downlink.repeat }}).</p>"
    + _ROWS
    + "<p>Last {{ downlink.output_lines }} lines of its output:</p>"
    "<pre>{{ downlink.output | e }}</pre>"
)
RECOVERED_SUBJECT = "[Downlink] RECOVERED {{ dag.dag_id }}.{{ ti.task_id }} night {{ downlink.night }}"
RECOVERED_HTML = (
    "<p>The step <b>{{ ti.task_id }}</b> of <b>{{ dag.dag_id }}</b> succeeded again; it had failed "
    "since {{ downlink.since }}.</p>"
    "<table role=\"presentation\" cellpadding=\"3\">"
    "<tr><td>Night</td><td>{{ downlink.night }}</td></tr>"
    "<tr><td>Run</td><td>{{ ti.run_id }}</td></tr>"
    "<tr><td>Log</td><td><a href=\"{{ ti.log_url }}\">{{ ti.log_url }}</a></td></tr>"
    "</table>"
)
STDERR_SUBJECT = "[Downlink] WARNING {{ dag.dag_id }}.{{ ti.task_id }} night {{ downlink.night }} wrote to stderr"
STDERR_HTML = (
    "<p>The step <b>{{ ti.task_id }}</b> of <b>{{ dag.dag_id }}</b> succeeded but wrote to stderr "
    "(this script asks for a warning when it does, as cron did).</p>"
    + _ROWS
    + "<p>What it wrote to stderr:</p><pre>{{ downlink.output | e }}</pre>"
)


def _text(line):
    return line.decode("utf-8", "replace") if isinstance(line, bytes) else str(line)


def describe_failure(exception, limit=OUTPUT_LINES):
    """(exit code, one-line reason, last lines of output) from what the task raised."""
    if exception is None:
        return "n/a", "the task failed (no exception recorded: killed or timed out?)", []
    logs = [_text(line).rstrip("\n") for line in (getattr(exception, "logs", None) or [])]
    match = EXIT_CODE.search(str(exception))
    if match:
        exit_code = match.group(1)
        # A step prints its reason last, on stderr ("downlink STEP: error: ..."); out-of-memory
        # kills say so themselves (StepOutOfMemory.reason).
        reason = getattr(exception, "reason", None) or next(
            (line for line in reversed(logs) if line.strip()), str(exception))
    else:
        exit_code = "n/a"
        reason = f"{type(exception).__name__}: {exception}"
    return exit_code, reason.strip(), logs[-limit:]


class DownlinkNotifier(SmtpNotifier):
    """SmtpNotifier with Downlink's facts about the failed step in the template context
    (`downlink.night`, `.exit_code`, `.reason`, `.output`)."""

    def __init__(self, *, to, subject, html_content, facts=None, **kwargs):
        super().__init__(to=list(to), subject=subject, html_content=html_content, **kwargs)
        self.facts = facts or failure_facts

    def render_template_fields(self, context, jinja_env=None):
        context["downlink"] = self.facts(context)
        return super().render_template_fields(context, jinja_env)


def _night(context):
    task = context.get("task")
    env = getattr(task, "environment", None) or {}
    return env.get("DOWNLINK_NIGHT") or (context.get("params") or {}).get("night") or "?"


def failure_facts(context):
    exit_code, reason, lines = describe_failure(context.get("exception"))
    return {"night": _night(context), "exit_code": exit_code, "reason": reason,
            "output": "\n".join(lines), "output_lines": len(lines)}


def _when(iso):
    """'2026-12-02T18:20:31.5+00:00' -> '2026-12-02 18:20 UTC' (mail subjects stay short)."""
    if not iso:
        return "?"
    return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _duration(delta):
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


MAILS = {alert_throttle.FAILED: (FAILURE_SUBJECT, FAILURE_HTML),
         alert_throttle.STILL_FAILING: (REMINDER_SUBJECT, REMINDER_HTML),
         alert_throttle.RECOVERED: (RECOVERED_SUBJECT, RECOVERED_HTML)}


def throttled_notifier(kind, recipients, state, repeat):
    """The notifier of one throttled mail: `kind` from alert_throttle, `state` its streak."""
    subject, html = MAILS[kind]

    def facts(context):
        return {**failure_facts(context), "since": _when((state or {}).get("since")), "repeat": _duration(repeat)}

    return DownlinkNotifier(to=recipients, subject=subject, html_content=html, facts=facts)


class ThrottledAlerts:
    """A step's on_failure_callback and on_success_callback, throttled per (dag_id, task_id):
    FAILED once, STILL FAILING at most once per `repeat`, RECOVERED on the next success.

    `store` keeps the state (alert_state.VariableStore), `clock` gives the time, `send(kind,
    context, state)` mails; all three are replaced in the unit tests.
    """

    def __init__(self, recipients, repeat, store=None, clock=None, send=None):
        self.recipients = tuple(recipients)
        self.repeat = repeat
        self.store = store or VariableStore()
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.send = send or self._mail

    def _mail(self, kind, context, state):
        throttled_notifier(kind, self.recipients, state, self.repeat)(context)

    @staticmethod
    def _ids(context):
        ti = context["ti"]
        dag = context.get("dag")
        return getattr(dag, "dag_id", None) or ti.dag_id, ti.task_id

    def _read(self, ids):
        try:
            return self.store.get(*ids), True
        except Exception:  # the state is lost, not the alert: mail as a first failure
            log.warning("alert state of %s.%s unreadable; mailing without throttling", *ids, exc_info=True)
            return None, False

    def _write(self, ids, state):
        try:
            self.store.put(*ids, state)
        except Exception:  # the mail went out; the next failure may mail once more
            log.warning("alert state of %s.%s not saved", *ids, exc_info=True)

    def on_failure(self, context):
        ids = self._ids(context)
        state, readable = self._read(ids)
        kind, new = alert_throttle.on_failure(state, self.clock(), self.repeat)
        if kind:
            # Mail first, then record it: a relay that refuses leaves the streak unmailed, so
            # the next failure tries again instead of staying silent for `repeat`.
            self.send(kind, context, new)
        else:
            log.info("%s.%s still failing; last mailed %s, next reminder after %s", *ids,
                     (state or {}).get("last_mailed"), _duration(self.repeat))
        if readable and new != state:
            self._write(ids, new)

    def on_success(self, context):
        ids = self._ids(context)
        state, _readable = self._read(ids)
        kind, new = alert_throttle.on_success(state)
        if kind:
            self.send(kind, context, new)
            self._write(ids, new)


def throttled_alerts(recipients, repeat):
    """The throttled callbacks for a step mailing `recipients` (None: nobody to mail)."""
    if not recipients:
        return None
    return ThrottledAlerts(recipients, repeat)


def stderr_facts(context):
    lines = context.get("downlink_stderr") or []
    return {"night": _night(context), "exit_code": 0, "reason": f"{len(lines)} line(s) on stderr",
            "output": "\n".join(lines[-OUTPUT_LINES:]), "output_lines": min(len(lines), OUTPUT_LINES)}


def stderr_notifier(recipients):
    if not recipients:
        return None
    return DownlinkNotifier(to=recipients, subject=STDERR_SUBJECT, html_content=STDERR_HTML, facts=stderr_facts)


DIGEST_SUBJECT = "[Downlink] {{ dag.dag_id }} night {{ downlink.night }}: {{ downlink.summary }}"
DIGEST_HTML = (
    "<p>{{ dag.dag_id }}, night {{ downlink.night }} (run {{ ti.run_id }}): {{ downlink.summary }}.</p>"
    "<table role=\"presentation\" cellpadding=\"3\">"
    "{% for task, state in downlink.states %}<tr><td>{{ task }}</td><td>{{ state }}</td></tr>{% endfor %}"
    "</table>"
    "<p>Nightly report: <a href=\"{{ downlink.report_url }}\">{{ downlink.report_url }}</a></p>"
)


def digest_facts(context):
    ti = context["ti"]
    runs = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id])
    states = sorted((task, state or "none") for task, state in (runs.get(ti.run_id) or {}).items()
                    if task not in ("digest", "watcher"))
    failed = [task for task, state in states if state in ("failed", "upstream_failed")]
    summary = f"{len(failed)} step(s) did not succeed: {', '.join(failed)}" if failed else "all steps succeeded"
    from airflow.configuration import conf

    night = context.get("downlink_night") or "?"
    base = conf.get("api", "base_url", fallback="http://127.0.0.1:8080").rstrip("/")
    return {"night": night, "states": states, "summary": summary, "report_url": f"{base}/reports/{night}/"}


def digest_task(recipients, night):
    """The optional nightly digest (DOWNLINK_DIGEST_EMAIL): one mail per chain run, whatever happened."""
    from airflow.sdk import task

    notifier = DownlinkNotifier(to=recipients, subject=DIGEST_SUBJECT, html_content=DIGEST_HTML, facts=digest_facts)

    @task(task_id="digest", trigger_rule="all_done", retries=0)
    def digest(night, **context):
        context["downlink_night"] = night
        notifier(context)

    return digest(night)
