"""Cron schedules: the five fields (expanded by croniter), the @macros, the chain name each gives."""
import re

from croniter import croniter

from downlink_airflow.crontab.result import Untranslatable

# macro -> (its five fields, the chain name it gives)
MACROS = {
    "@hourly": ("0 * * * *", "cron_hourly"),
    "@daily": ("0 0 * * *", "cron_daily"),
    "@midnight": ("0 0 * * *", "cron_daily"),
    "@weekly": ("0 0 * * 0", "cron_weekly"),
    "@monthly": ("0 0 1 * *", "cron_monthly"),
    "@yearly": ("0 0 1 1 *", "cron_yearly"),
    "@annually": ("0 0 1 1 *", "cron_yearly"),
}
MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]
FIELDS = (  # name, low, high, names
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, DAYS),
)


def check_field(text, field):
    """Raise Untranslatable, naming the field and what is wrong, for a field cron would reject.
    croniter expands the fields but its errors name neither, and it accepts what cron does not
    (ranges that wrap around, `5/10`, its L, # and H extensions), so the syntax is checked here."""
    name, low, high, names = field

    def number(token):
        if names and token.lower() in names:
            return names[token.lower()]
        if not token.isdigit():
            raise Untranslatable(f"{name} field {text!r}: {token!r} is not a number"
                                 + (f" or a name ({'/'.join(list(names)[:3])}...)" if names else ""))
        value = int(token)
        if not low <= value <= high:
            raise Untranslatable(f"{name} field {text!r}: {value} is out of range {low}-{high}")
        return value

    for item in text.split(","):
        if not item:
            raise Untranslatable(f"{name} field {text!r}: empty list item")
        rng, slash, step = item.partition("/")
        if slash and (not step.isdigit() or int(step) < 1):
            raise Untranslatable(f"{name} field {text!r}: step {step!r} must be a whole number of at least 1")
        if rng == "*":
            continue
        if "-" in rng:
            first, _, last = rng.partition("-")
            if number(first) > number(last):
                raise Untranslatable(f"{name} field {text!r}: range {rng} goes backwards")
        else:
            number(rng)
            if slash:
                raise Untranslatable(f"{name} field {text!r}: a step needs a range or * ({rng}-{high}/{step}?)")


def expand(fields):
    """The values each field matches, as croniter expands them (Sunday is 0, never 7)."""
    try:
        expanded, _ = croniter.expand(" ".join(fields))
    except (ValueError, KeyError) as exc:  # check_field lets nothing through that croniter rejects
        raise Untranslatable(f"schedule {' '.join(fields)!r}: {exc}") from exc
    full = [range(low, 7 if name == "day of week" else high + 1) for name, low, high, _ in FIELDS]
    return tuple(frozenset(every if values == ["*"] else values) for values, every in zip(expanded, full))


def parse_schedule(fields):
    """(key, chain name) for five cron fields; key is equal for schedules that fire at the same times."""
    for text, field in zip(fields, FIELDS):
        check_field(text, field)
    # Cron's day rule: when both day fields are restricted, either matching is enough.
    key = expand(fields) + (fields[2].startswith("*"), fields[4].startswith("*"))
    return key, chain_name(fields)


def chain_name(fields):
    minute, hour, dom, month, dow = [f.lower() for f in fields]
    for expansion, name in MACROS.values():
        if fields == expansion.split():
            return name

    def num(text):
        return text.isdigit()

    hhmm = f"{int(hour):02d}{int(minute):02d}" if num(minute) and num(hour) else None
    if num(minute) and (hour, dom, month, dow) == ("*", "*", "*", "*"):
        return f"cron_hourly_{int(minute):02d}"
    if hhmm and (dom, month, dow) == ("*", "*", "*"):
        return f"cron_daily_{hhmm}"
    if hhmm and (dom, month) == ("*", "*") and (num(dow) or dow in DAYS):
        return f"cron_weekly_{DAY_NAMES[int(dow)] if num(dow) else dow}_{hhmm}"
    if hhmm and (dom, month) == ("*", "*") and dow in ("1-5", "mon-fri"):
        return f"cron_weekdays_{hhmm}"
    if hhmm and (dom, month) == ("*", "*") and dow in ("0,6", "6,0", "6,7", "sat,sun", "sun,sat", "6-7", "sat-sun"):
        return f"cron_weekends_{hhmm}"
    if hhmm and num(dom) and (month, dow) == ("*", "*"):
        return f"cron_monthly_{int(dom):02d}_{hhmm}"
    if minute == "*" and (hour, dom, month, dow) == ("*", "*", "*", "*"):
        return "cron_every_minute"
    every = re.match(r"^\*/(\d+)$", minute)
    if every and (hour, dom, month, dow) == ("*", "*", "*", "*"):
        return f"cron_every_{int(every.group(1))}min"
    every = re.match(r"^\*/(\d+)$", hour)
    if every and num(minute) and (dom, month, dow) == ("*", "*", "*"):
        return f"cron_every_{int(every.group(1))}h" + (f"_{int(minute):02d}" if int(minute) else "")

    def slug(text):
        text = re.sub(r"^\*/", "every", text)
        return text.replace("*", "x").replace(",", ".").replace("/", "-every")

    return "cron_" + "_".join(slug(f) for f in (minute, hour, dom, month, dow))

