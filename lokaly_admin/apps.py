from django.apps import AppConfig


class AdminServerConfig(AppConfig):
    """The admin server as an app: its Django admin site registrations (admin.py)."""

    name = "lokaly_admin"
    label = "lokaly_admin"
    verbose_name = "Lokaly back office"
