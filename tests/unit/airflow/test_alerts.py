"""Failure, stderr and digest mails: what they say (runs in the Airflow image; nothing is sent)."""
import re
from datetime import timedelta
from types import SimpleNamespace

from airflow.providers.docker.exceptions import DockerContainerFailedException  # noqa: E402

from downlink_airflow import alert_throttle, alerts  # noqa: E402


def failed(code=3, lines=60):
    logs = [f"line {i}" for i in range(lines)] + [b"downlink calibrate: error: no master bias for 2026-11-24"]
    return DockerContainerFailedException(f"Docker container failed: {{'Error': None, 'StatusCode': {code}}}", logs=logs)


def test_exit_code_reason_and_tail_come_from_the_container():
    code, reason, tail = alerts.describe_failure(failed())
    assert code == "3"
    assert reason == "downlink calibrate: error: no master bias for 2026-11-24"
    assert len(tail) == alerts.OUTPUT_LINES and tail[-1] == reason


def test_other_failures_say_what_was_raised():
    code, reason, tail = alerts.describe_failure(TimeoutError("Timeout, PID: 12"))
    assert code == "n/a" and reason == "TimeoutError: Timeout, PID: 12" and tail == []
    assert alerts.describe_failure(None)[0] == "n/a"


def context(exception=None, ti=None, **extra):
    ti = ti or SimpleNamespace(task_id="calibrate", run_id="manual__1", try_number=3, max_tries=2,
                         log_url="http://127.0.0.1:8080/dags/daily_chain/runs/manual__1/tasks/calibrate?try_number=3")
    task = SimpleNamespace(environment={"DOWNLINK_NIGHT": "2026-11-24"})
    return {"dag": SimpleNamespace(dag_id="daily_chain"), "ti": ti, "task": task, "params": {},
            "exception": exception, **extra}


def failure_mail(recipients):
    """The first mail of a failed streak (what a step that fails for good sends)."""
    return alerts.throttled_notifier(alert_throttle.FAILED, recipients, None, timedelta(hours=6))


def rendered(notifier, ctx):
    import jinja2

    ctx["downlink"] = notifier.facts(ctx)
    env = jinja2.Environment()
    return env.from_string(notifier.subject).render(ctx), env.from_string(notifier.html_content).render(ctx)


def test_the_failure_mail_has_everything_the_team_needs():
    notifier = failure_mail(["team@example.org"])
    exc = failed()
    exc.logs.insert(-1, "<script>alert(1)</script>")
    subject, body = rendered(notifier, context(exc))
    assert subject == "[Downlink] FAILED daily_chain.calibrate night 2026-11-24 (exit 3)"
    for fact in ("daily_chain", "calibrate", "2026-11-24", "3 of 3", "manual__1", "no master bias",
                 "/dags/daily_chain/runs/manual__1/tasks/calibrate?try_number=3"):
        assert fact in body, fact
    assert "<script>" not in body and "&lt;script&gt;" in body  # container output is escaped
    assert notifier.to == ["team@example.org"]


def test_nobody_to_mail_means_no_notifier():
    assert alerts.throttled_alerts((), timedelta(hours=6)) is None and alerts.stderr_notifier([]) is None


def test_the_stderr_warning_quotes_what_was_written():
    notifier = alerts.stderr_notifier(["a@example.org"])
    subject, body = rendered(notifier, context(downlink_stderr=["WARNING: 3 frames saturated"]))
    assert "WARNING daily_chain.calibrate" in subject and "wrote to stderr" in subject
    assert "WARNING: 3 frames saturated" in body and "1 line(s) on stderr" in body


def test_the_digest_lists_every_step_and_links_the_report():
    class TI(SimpleNamespace):
        def get_task_states(self, dag_id, run_ids):
            return {"manual__1": {"download": "success", "calibrate": "failed", "report": "success",
                                  "watcher": "failed", "digest": "running"}}

    ctx = context(ti=TI(task_id="digest", run_id="manual__1", dag_id="daily_chain", try_number=1, max_tries=0,
                        log_url="http://x/log"), downlink_night="2026-11-24")
    notifier = alerts.DownlinkNotifier(to=["lead@example.org"], subject=alerts.DIGEST_SUBJECT,
                                       html_content=alerts.DIGEST_HTML, facts=alerts.digest_facts)
    subject, body = rendered(notifier, ctx)
    assert subject == "[Downlink] daily_chain night 2026-11-24: 1 step(s) did not succeed: calibrate"
    assert "<td>download</td><td>success</td>" in body and "<td>calibrate</td><td>failed</td>" in body
    assert "watcher" not in body and "/reports/2026-11-24/" in body


def test_reminder_and_recovered_mails_say_since_when():
    from datetime import timedelta

    state = {"failing": True, "since": "2026-12-02T06:00:31.250000+00:00", "last_mailed": "2026-12-02T12:00:00+00:00"}
    reminder = alerts.throttled_notifier("still_failing", ["team@example.org"], state, timedelta(hours=6))
    subject, body = rendered(reminder, context(failed()))
    assert subject == ("[Downlink] STILL FAILING daily_chain.calibrate since 2026-12-02 06:00 UTC"
                       " night 2026-11-24 (exit 3)")
    assert "one reminder every 6h" in body and "no master bias" in body
    recovered = alerts.throttled_notifier("recovered", ["team@example.org"], {**state, "failing": False}, timedelta(hours=6))
    subject, body = rendered(recovered, context())
    assert subject == "[Downlink] RECOVERED daily_chain.calibrate night 2026-11-24"
    assert "failed since 2026-12-02 06:00 UTC" in body and "/tasks/calibrate" in body
    first = alerts.throttled_notifier("failed", ["team@example.org"], state, timedelta(hours=6))
    assert rendered(first, context(failed()))[0] == "[Downlink] FAILED daily_chain.calibrate night 2026-11-24 (exit 3)"


def test_with_a_public_url_every_link_of_the_mails_is_under_it(monkeypatch):
    """DOWNLINK_PUBLIC_URL reaches Airflow as [api] base_url (docker-compose.yaml); Airflow's own
    log_url (the failure mail's link) and the digest's report link are built from it."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    public = "https://downlink.example.org"
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", public + "/")
    ids = SimpleNamespace(dag_id="daily_chain", run_id="manual__1", task_id="calibrate", map_index=-1, try_number=3)
    ti = SimpleNamespace(task_id="calibrate", run_id="manual__1", dag_id="daily_chain", try_number=3, max_tries=2,
                         log_url=RuntimeTaskInstance.log_url.fget(ids))
    _subject, body = rendered(failure_mail(["team@example.org"]), context(failed(), ti=ti))
    links = re.findall(r'href="([^"]+)"', body)
    assert links == [f"{public}/dags/daily_chain/runs/manual__1/tasks/calibrate?try_number=3"]

    class DigestTI(SimpleNamespace):
        def get_task_states(self, dag_id, run_ids):
            return {"manual__1": {"calibrate": "success"}}

    digest = alerts.DownlinkNotifier(to=["lead@example.org"], subject=alerts.DIGEST_SUBJECT,
                                     html_content=alerts.DIGEST_HTML, facts=alerts.digest_facts)
    _subject, body = rendered(digest, context(ti=DigestTI(**vars(ti)), downlink_night="2026-11-24"))
    assert re.findall(r'href="([^"]+)"', body) == [f"{public}/reports/2026-11-24/"]
