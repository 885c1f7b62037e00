"""Mail to the team, only when something needs them: a step that failed for good (retries
exhausted), a step that succeeded but wrote to stderr (cron's habit, opt-in per script), and the
optional nightly digest. Sent with the smtp provider's SmtpNotifier through the `smtp_default`
connection (AIRFLOW_CONN_SMTP_DEFAULT / DOWNLINK_SMTP_CONN): no SMTP code of our own.
"""
import re

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

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


def failure_notifier(recipients):
    """on_failure_callback for a step: one mail when it fails for good (none per retry)."""
    if not recipients:
        return None
    return DownlinkNotifier(to=recipients, subject=FAILURE_SUBJECT, html_content=FAILURE_HTML)


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
