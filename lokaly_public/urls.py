from django.urls import path

from lokaly_core.web import errors
from lokaly_core.web.urls import service_urlpatterns
from lokaly_public import views

urlpatterns = [
    *service_urlpatterns,
    path("api/auth/register", views.RegisterApi.as_view()),
    path("api/auth/token", views.TokenApi.as_view()),
    path("api/auth/token/refresh", views.TokenRefreshApi.as_view()),
    path("api/me", views.MeApi.as_view()),
    path("api/stores", views.StoreListApi.as_view()),
    path("api/stores/<uuid:store_id>/products", views.StoreProductListApi.as_view()),
    path("api/orders", views.OrderListCreateApi.as_view()),
    path("api/orders/<uuid:order_id>", views.OrderDetailApi.as_view()),
    path("api/orders/<uuid:order_id>/history", views.OrderHistoryApi.as_view()),
    path("api/orders/<uuid:order_id>/cancel", views.OrderCancelApi.as_view()),
]

handler400 = errors.bad_request
handler403 = errors.permission_denied
handler404 = errors.not_found
handler500 = errors.server_error
