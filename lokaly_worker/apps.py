from django.apps import AppConfig


class WorkerConfig(AppConfig):
    name = "lokaly_worker"
    label = "lokaly_worker"
    verbose_name = "Lokaly worker"
