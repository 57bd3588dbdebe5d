"""The models and the migrations agree: no change is left without its migration."""

from __future__ import annotations

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_lacks_a_migration() -> None:
    # exits 1 (SystemExit) when makemigrations would write a migration
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
