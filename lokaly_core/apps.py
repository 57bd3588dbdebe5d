from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "lokaly_core"
    label = "core"
    verbose_name = "Lokaly"
    default_auto_field = "django.db.models.BigAutoField"
