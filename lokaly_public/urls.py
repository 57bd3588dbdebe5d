from django.urls import path

from lokaly_core.web import errors
from lokaly_core.web.urls import service_urlpatterns
from lokaly_public import courier_views, notification_views, views

urlpatterns = [
    *service_urlpatterns,
    path("api/auth/register", views.RegisterApi.as_view()),
    path("api/auth/token", views.TokenApi.as_view()),
    path("api/auth/token/refresh", views.TokenRefreshApi.as_view()),
    path("api/auth/logout", views.LogoutApi.as_view()),
    path("api/auth/password", views.PasswordApi.as_view()),
    path("api/me", views.MeApi.as_view()),
    path("api/stores", views.StoreListApi.as_view()),
    path("api/stores/<uuid:store_id>/products", views.StoreProductListApi.as_view()),
    path("api/orders", views.OrderListCreateApi.as_view()),
    path("api/orders/<uuid:order_id>", views.OrderDetailApi.as_view()),
    path("api/orders/<uuid:order_id>/history", views.OrderHistoryApi.as_view()),
    path("api/orders/<uuid:order_id>/cancel", views.OrderCancelApi.as_view()),
    path(
        "api/orders/<uuid:order_id>/substitutions/<uuid:product_id>",
        views.OrderSubstitutionAnswerApi.as_view(),
    ),
    path("api/courier/shift", courier_views.CourierShiftApi.as_view()),
    path("api/courier/location", courier_views.CourierLocationApi.as_view()),
    path("api/courier/deliveries", courier_views.CourierDeliveryListApi.as_view()),
    path(
        "api/courier/deliveries/<uuid:delivery_id>/pickup",
        courier_views.CourierDeliveryPickupApi.as_view(),
    ),
    path(
        "api/courier/deliveries/<uuid:delivery_id>/complete",
        courier_views.CourierDeliveryCompleteApi.as_view(),
    ),
    path(
        "api/courier/deliveries/<uuid:delivery_id>/decline",
        courier_views.CourierDeliveryDeclineApi.as_view(),
    ),
    path("api/notifications", notification_views.NotificationListApi.as_view()),
    path(
        "api/notifications/<uuid:notification_id>/read",
        notification_views.NotificationReadApi.as_view(),
    ),
]

handler400 = errors.bad_request
handler403 = errors.permission_denied
handler404 = errors.not_found
handler500 = errors.server_error
