from django.contrib import admin
from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from nnc_web import views
from nnc_web.accounts import views as accounts
from nnc_web.datasets import views as datasets
from nnc_web.evaluations import views as evaluations
from nnc_web.jobs import views as jobs
from nnc_web.plugins import views as plugins
from nnc_web.projects import views as projects
from nnc_web.serving import urls as serving

api = [
    path("auth/me/", accounts.MeView.as_view()),
    path("auth/signup/", accounts.SignUpView.as_view()),
    path("auth/login/", accounts.SignInView.as_view()),
    path("auth/logout/", accounts.SignOutView.as_view()),
    path("auth/password/", accounts.PasswordView.as_view()),
    path("auth/token/", accounts.TokenView.as_view()),
    path("auth/usage/", accounts.UsageView.as_view()),
    path("plugins/", plugins.PluginListView.as_view()),
    path("jobs/", jobs.JobListView.as_view()),
    path("jobs/<int:job_id>/", jobs.JobDetailView.as_view()),
    path("jobs/<int:job_id>/events/", jobs.JobEventsView.as_view()),
    path("jobs/<int:job_id>/cancel/", jobs.JobCancelView.as_view()),
    path("uploads/", datasets.UploadListView.as_view()),
    path("uploads/start/", datasets.UploadStartView.as_view()),
    path("uploads/<int:upload_id>/", datasets.UploadDetailView.as_view()),
    path("uploads/<int:upload_id>/chunk/", datasets.UploadChunkView.as_view()),
    path("uploads/<int:upload_id>/finish/", datasets.UploadFinishView.as_view()),
    path("imports/", datasets.ImportListView.as_view()),
    path("datasets/", datasets.DatasetListView.as_view()),
    path("datasets/<int:dataset_id>/", datasets.DatasetDetailView.as_view()),
    path("datasets/<int:dataset_id>/rows/", datasets.DatasetRowsView.as_view()),
    path("datasets/<int:dataset_id>/usage/", datasets.DatasetUsageView.as_view()),
    path("datasets/<int:dataset_id>/files/<path:relative>", datasets.DatasetFileView.as_view()),
    path("datasets/<int:dataset_id>/download/", datasets.DatasetDownloadView.as_view()),
    path("models/", projects.ModelListView.as_view()),
    path("projects/", projects.ProjectListView.as_view()),
    path("projects/config-schema/", projects.ConfigSchemaView.as_view()),
    path("projects/<int:project_id>/", projects.ProjectDetailView.as_view()),
    path("projects/<int:project_id>/runs/", projects.RunListView.as_view()),
    path("runs/<int:run_id>/", projects.RunDetailView.as_view()),
    path("runs/<int:run_id>/results/", evaluations.RunResultsView.as_view()),
    path("curves/", projects.CurvesView.as_view()),
    path("runs/<int:run_id>/resume/", projects.RunResumeView.as_view()),
    path("runs/<int:run_id>/evaluate/", evaluations.RunEvaluateView.as_view()),
    path("runs/<int:run_id>/threshold/", evaluations.RunThresholdView.as_view()),
    *evaluations.target_urls(),
    path("runs/<int:run_id>/files/<path:relative>", projects.RunFileView.as_view()),
    path("runs/<int:run_id>/bundle/", projects.RunBundleView.as_view()),
    path("runs/<int:run_id>/export/", projects.RunExportView.as_view()),
    *serving.api_urls(),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", views.healthz),
    *[path(f"api/{p.pattern}", p.callback, name=p.name) for p in api],
    re_path(r"^(?!api/|admin/|static/|ws/).*$", views.spa),
]
