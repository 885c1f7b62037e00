"""The crontab itself: its lines, variables (MAILTO, CRON_TZ, ...) and jobs, into an ImportResult."""
import re

from downlink_airflow.crontab.command import DEFAULT_WRAPPERS, NOT_CARRIED, entries_of_line, expand_elements
from downlink_airflow.crontab.result import Chain, ImportResult, Problem, Untranslatable
from downlink_airflow.crontab.schedule import MACROS, parse_schedule
from downlink_airflow.crontab.shell import unescape_percent

ASSIGNMENT_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")

UTC_ZONES = {"utc", "etc/utc", "gmt", "etc/gmt", "utc0", "gmt0", "universal", "etc/universal", "zulu",
             "etc/zulu", "uct", "etc/uct", "gmt+0", "gmt-0", "etc/gmt+0", "etc/gmt-0"}


def import_crontab(text, source="crontab", wrappers=(), reserved_names=(), reserved_chains=()):
    """Translate a user crontab. Nothing raises for a bad line: each becomes a Problem and the line
    is left out. `reserved_names`/`reserved_chains` are names already taken (in the registry the
    result is merged into); new names never reuse them."""
    wrappers = tuple(DEFAULT_WRAPPERS) + tuple(wrappers)
    taken_names = set(reserved_names)
    taken_chains = set(reserved_chains)
    chains_by_key, chains = {}, {}
    entries, problems, notes = [], [], []
    env, email = {}, None
    tz = None  # (name=value, line number) of a CRON_TZ/TZ that is not UTC

    def unique(name, taken):
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{name}_{n}"
        taken.add(candidate)
        return candidate

    for lineno, raw in enumerate(text.split("\n"), 1):  # cron splits at \n only
        line = raw.strip(" \t\r")
        if not line or line.startswith("#"):
            continue

        def problem(reason, lineno=lineno, line=line):
            problems.append(Problem(source, lineno, reason, line))

        assign = ASSIGNMENT_LINE.match(line)
        if assign:
            name, value = assign.group(1), assign.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            if name == "MAILTO":
                addresses = [a for a in re.split(r"[,\s]+", value) if a]
                local = [a for a in addresses if "@" not in a]
                if local:
                    email = None
                    problem(f"MAILTO: {', '.join(local)} is not an email address (cron mailed a local user); "
                            "write full addresses")
                else:
                    email = addresses
            elif name in ("CRON_TZ", "TZ"):
                if value.lower() in UTC_ZONES:
                    tz = None
                    notes.append(f"{source}:{lineno}: {name}={value} not carried: chains run in UTC")
                else:
                    tz = (f"{name}={value}", lineno)
                    problem(f"{name}={value}: chains run in UTC; rewrite the schedules in UTC and remove this line")
            elif name in NOT_CARRIED:
                notes.append(f"{source}:{lineno}: {name}={value} not carried: {NOT_CARRIED[name]}")
            else:
                env[name] = value
            continue

        try:
            if line.startswith("@"):
                macro, command = (line.split(None, 1) + [""])[:2]
                macro = macro.lower()
                if macro == "@reboot":
                    raise Untranslatable("@reboot runs when cron starts, not on a schedule: no chain can run it")
                if macro not in MACROS:
                    raise Untranslatable(f"unknown macro {macro} (one of {', '.join(MACROS)}, @reboot)")
                fields, schedule = MACROS[macro][0].split(), macro
                key, cname = parse_schedule(fields)
                cname = MACROS[macro][1]
            else:
                parts = line.split(None, 5)
                if len(parts) < 6:
                    raise Untranslatable("not a cron job (5 time fields and a command) nor a VAR=value line")
                fields, command = parts[:5], parts[5]
                key, cname = parse_schedule(fields)
                schedule = " ".join(fields)
            command = command.strip()
            if not command:
                raise Untranslatable("no command")
            if tz:
                raise Untranslatable(f"scheduled in {tz[0]} (line {tz[1]}); chains run in UTC")
            steps = expand_elements(unescape_percent(command), wrappers)
            line_entries = entries_of_line(steps, lineno, line, env, email)
        except Untranslatable as exc:
            problem(str(exc))
            continue

        if key not in chains_by_key:
            chain = Chain(unique(cname, taken_chains), schedule, [])
            chains_by_key[key] = chain
            chains[chain.name] = chain
        chain = chains_by_key[key]
        chain.lines.append(lineno)
        previous = {}
        for entry in line_entries:
            previous[id(entry)] = entry
            entry.name = unique(entry.name, taken_names)
            entry.chain = chain.name
            entries.append(entry)
        for entry in line_entries:
            if entry.after is not None:
                entry.after = previous[entry.after].name
    return ImportResult(source, entries, chains, problems, notes)
