"""Operations: the Prometheus endpoint, health and readiness checks, Celery task figures.

`collect` reads what every process left in Redis (serving workers' figures, buyer counters,
the stream backlog gauge, task runs) and the database; `exposition` renders it for
Prometheus; `views` serves `/metrics`, `/healthz` and `/readyz`; `signals` records each
Celery task's runs and runtime as it finishes.
"""
