"""`import-crontab`: a user crontab turned into script-registry entries (dags/registry.yaml).

    python -m downlink_airflow.cli import-crontab FILE [--into REGISTRY] [--scripts DIR] [--wrapper NAME ...] [--skip-unsupported]
    make import-crontab CRONTAB=FILE [INTO=dags/registry.yaml] [SCRIPTS=DIR] [ARGS=--skip-unsupported]

Pure Python + PyYAML, croniter and ruamel.yaml (the merge; no Airflow): tests call `import_crontab(text)` directly.

Modules: parse (the crontab's lines, variables, MAILTO), schedule (cron fields and @macros),
shell (cron's % rule, splitting a command list), command (one line's commands into entries),
result (what an import gives, as YAML), merge (into an existing registry), scripts (--scripts:
the scripts copied into images/astro/scripts/ and called by name), cli (the command).

How a crontab maps onto the registry
------------------------------------
* Every crontab line becomes a chain, named after its schedule (`30 2 * * *` -> cron_daily_0230,
  `15 * * * *` -> cron_hourly_15, @daily -> cron_daily, else cron_<fields>); lines with the same
  schedule share the chain (cron starts them at the same moment; entries without `after` in one
  chain run concurrently too). Schedules are kept as written: cron used the host's local time,
  chains run in UTC (CRON_TZ/TZ other than UTC is a problem).
* A command list is split at `&&` and `;`, one entry per command, each `after` the previous one:
  `a && b` -> b runs when a succeeded (when: success, Airflow's all_success); `a ; b` -> b runs once
  a is done whatever its outcome (when: always, all_done).
  Shell precedence: `;` separates and-or lists, `&&` binds tighter, so `a && b ; c` is
  `(a && b) ; c`: cron runs c after b, and also when a failed and b never ran. The importer gives
  c `after: b, when: always`. In Airflow, when a fails b ends "upstream_failed", which all_done
  counts as done, so c still runs, as in cron. c never needs a direct edge to a. A chain of entries
  each `after` the previous one, with when = the operator in front of it, therefore reproduces any
  mix of `&&` and `;`. The registry's failure watcher still marks the run failed.
* `||`, `&` (background), `( )` subshells, `{ }` groups, if/for/while/case, here-documents and
  process substitution cannot be split into tasks: the line is a problem.
* Environment set-up is dropped, because the image is the environment: wrapper scripts
  (`cron_setup.sh x.py --y` -> `x.py --y`), set-up commands in a list (`ur_setup && x`,
  `source ~/.bashrc; x`, `. /etc/profile`, anything named *_setup, *_setup.sh, *setup_env*, or
  given with --wrapper), and login shells (`bash -lc 'a && b'` -> a, b). When such a step is dropped
  from a list, the step after it runs first. It is `after` whatever ran before the set-up step:
  when: success only if every operator on the way was `&&` (the set-up is taken to succeed).
* `cd DIR`, `umask`, `ulimit`, `export X=$Y` change the shell and not a task. Each entry runs in its
  own container, so they are put in front of every later command of the line (`cd DIR && cmd`).
  `export X=value` and `X=value` on their own become `environment`.
* Crontab variables: MAILTO -> `email` of the entries below it (MAILTO="" -> `email: []`; a local
  user without @ is a problem). SHELL, PATH, HOME, USER and LOGNAME are not carried (the image is
  the environment), which a comment at the top says. Any other VAR=value -> `environment`.
* Redirects: `>/dev/null` and the like stay in the command (sh -c runs it, and stdout is dropped as
  in cron), with a comment. Redirects into log files (*.log, *.out, *.err, .../log/..., .../logs/...,
  /var/log) are removed, because a step's container is discarded: the output goes to the task log instead.
  Other file redirects stay, with a comment. Bash's `&>X` becomes `>X 2>&1`, which is what it
  meant (/bin/sh would have put the command in the background).
* Names: the script's basename without extension (`python3 /home/obs/bin/reduce.py` -> reduce,
  `python -m obs.qc` -> qc), anything but letters, digits and _ replaced by _ (the registry's house
  style), then made unique with _2, _3, ... (also against the registry given with --into). Scripts
  kept by a path outside the image get a comment: copy them into images/astro/scripts/.
* Cron's `%` (unescaped: a newline, with the rest sent to stdin) is a problem; `\\%` becomes `%`.
* Imported chains are written `paused: true`: dags/ is read live, and a chain whose scripts are
  not in the image yet would fail at its next tick. The team unpauses it (UI, `airflow dags
  unpause`) once it is ready. Imported entries are written `retries: 0`: cron never retried, and a
  non-idempotent script must not run three times.
* --scripts DIR: each script a command names (its program word, or an interpreter's first
  argument), found in DIR by basename, is copied into images/astro/scripts/ and called by name;
  a different file of that name there is never overwritten (reported); scripts with a folder that
  DIR lacks are listed with their line (see crontab/scripts.py).
* Host paths in a line's variables and arguments (not the script's own path) are listed at the
  top as suggested `mounts:`; they are never written as mounts (the admin's allow-list decides).
"""
from downlink_airflow.crontab.parse import import_crontab

__all__ = ["import_crontab"]
