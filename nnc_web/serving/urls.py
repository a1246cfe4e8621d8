"""The endpoint API, spliced into the `/api/` list of nnc_web/urls.py."""
from django.urls import path

from nnc_web.serving import views


def api_urls() -> list:
    return [
        path("endpoints/", views.EndpointListView.as_view()),
        path("endpoints/<int:endpoint_id>/", views.EndpointDetailView.as_view()),
        path("endpoints/<int:endpoint_id>/start/", views.EndpointStartView.as_view()),
        path("endpoints/<int:endpoint_id>/stop/", views.EndpointStopView.as_view()),
        path("endpoints/<int:endpoint_id>/tokens/", views.EndpointTokenListView.as_view()),
        path("endpoints/<int:endpoint_id>/tokens/<int:token_id>/", views.EndpointTokenDetailView.as_view()),
        path("endpoints/<int:endpoint_id>/predict/", views.PredictView.as_view()),
        path("runs/<int:run_id>/model-repository/", views.ModelRepositoryView.as_view()),
    ]
