"""Where the alert throttle keeps its state per (dag_id, task_id): one Airflow Variable each.

Tasks may not use the metadata database in Airflow 3, but Variables go through the execution
API, and task callbacks run in the task's own process (task_runner.finalize), where
`airflow.sdk.Variable` works. One Variable per step, so two steps failing at once never write
the same record (no lock needed).
"""
PREFIX = "downlink_alert"


def key(dag_id, task_id):
    return f"{PREFIX}__{dag_id}__{task_id}"


class VariableStore:
    """get/put of a step's throttle state (a dict, stored as JSON)."""

    def get(self, dag_id, task_id):
        from airflow.sdk import Variable

        return Variable.get(key(dag_id, task_id), default=None, deserialize_json=True)

    def put(self, dag_id, task_id, state):
        from airflow.sdk import Variable

        Variable.set(key(dag_id, task_id), state, serialize_json=True,
                     description="Downlink: when this step's failure was last mailed (alerts)")
