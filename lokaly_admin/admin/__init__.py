"""The Django admin site (``/admin/``) for staff accounts.

Who may see or change what follows the admin API's role table (``lokaly_admin.rbac``);
anything that changes an order or a stock level goes through the domain services.
"""

from django.contrib import admin

from lokaly_admin.admin import catalog, orders, people  # noqa: F401 (they register)
from lokaly_admin.admin.login import LockoutAdminAuthenticationForm

admin.site.site_header = "Lokaly back office"
admin.site.site_title = "Lokaly back office"
admin.site.index_title = "Operations"
# Failed logins count per account with both APIs' (lokaly_core.accounts.lockout).
admin.site.login_form = LockoutAdminAuthenticationForm
