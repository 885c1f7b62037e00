"""What each Downlink role may do, in Airflow's terms (resources x HTTP methods).

Roles are ordered: each one may do everything the roles before it may.
- viewer: read DAGs, runs, task logs, assets, pools and the UI's views; change nothing.
- operator: also trigger, clear, mark and pause/unpause runs and tasks, write asset events and
  read variables; no connections, configuration, variable or pool writes, no deleting.
- admin: everything.
Pure Python (no Airflow import) so the table can be read and tested on its own.
"""
ROLES = ("viewer", "operator", "admin")
READ = frozenset({"GET", "HEAD"})

# resource: (least role that may read it, least role that may change it)
RESOURCES = {
    "dag": ("viewer", "operator"),          # change: trigger, clear, mark state, pause, notes
    "asset": ("viewer", "operator"),        # change: asset events, materialize
    "asset_alias": ("viewer", "operator"),
    "pool": ("viewer", "admin"),
    "variable": ("operator", "admin"),
    "connection": ("admin", "admin"),       # connections hold credentials
    "configuration": ("admin", "admin"),
    "view": ("viewer", "admin"),            # cluster activity, docs, import errors, jobs, ...
    "custom_view": ("viewer", "admin"),
    "team": ("admin", "admin"),
}

# The UI's menu (airflow MenuItem values) -> the resource whose read right shows it.
MENU = {
    "Required Actions": "dag",
    "Assets": "asset",
    "Audit Log": "dag",
    "Config": "configuration",
    "Connections": "connection",
    "Dags": "dag",
    "Deadlines": "dag",
    "Docs": "view",
    "Jobs": "view",
    "Plugins": "view",
    "Pools": "pool",
    "Providers": "view",
    "Variables": "variable",
    "XComs": "dag",
}


def rank(role):
    """The role's place in ROLES; -1 for no or an unknown role (which may do nothing)."""
    return ROLES.index(role) if role in ROLES else -1


def least_role(resource, method):
    """The least role that may use method on resource (admin for anything not in the table)."""
    if resource not in RESOURCES:
        return "admin"
    if resource == "dag" and method == "DELETE":  # deleting a DAG, its runs or tasks' history
        return "admin"
    read, change = RESOURCES[resource]
    return read if method in READ else change


def allowed(role, resource, method):
    return rank(role) >= 0 and rank(role) >= rank(least_role(resource, method))


def menu_allowed(role, item):
    """Whether the menu entry (MenuItem value) is shown to role; unknown entries only to admins."""
    return allowed(role, MENU.get(item, "unknown"), "GET")
