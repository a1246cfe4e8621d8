"""Headless plugin runs: the same jobs the UI queues (docs/plugins.md)."""
from __future__ import annotations

import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from nnc_web import config
from nnc_web.jobs import services
from nnc_web.jobs.models import Job, JobEvent
from nnc_web.plugins.registry import PLUGINS, ordered


class Command(BaseCommand):
    help = "List plugins, or queue (--wait: and follow) a plugin job; --inline runs it in this process."

    def add_arguments(self, parser) -> None:
        parser.add_argument("plugin", nargs="?")
        parser.add_argument("--list", action="store_true", help="print every plugin id, kind and title")
        parser.add_argument("--user", help="the account that owns the job and its results")
        parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--wait", action="store_true", help="stream the log until the job ends")
        parser.add_argument("--inline", action="store_true", help="run in this process (no studio needed)")
        parser.add_argument("--dataset", type=int, help="dataset context (post-processing)")
        parser.add_argument("--project", help="project context (training)")
        parser.add_argument("--result", type=int, help="result context (post-processing)")

    def handle(self, *args, **options) -> None:
        if options["list"]:
            for plugin in ordered():
                self.stdout.write(f"{plugin.id}\t{plugin.kind}\t{plugin.title}")
            return
        plugin_id = options["plugin"]
        if not plugin_id:
            raise CommandError("name a plugin id (see --list)")
        if plugin_id not in PLUGINS or PLUGINS[plugin_id].hidden:
            raise CommandError(f"unknown plugin {plugin_id!r} (see --list)")
        user = self._user(options["user"])
        plugin = PLUGINS[plugin_id]
        if plugin.kind == "training":
            self._train(user, plugin_id, options)
            return
        if options["result"] and plugin.kind != "postprocess":
            raise CommandError("--result is for post-processing plugins")
        raw = self._params(options["param"])
        if not options["inline"] and not config.redis_url():
            raise CommandError("no running studio found: start it (./dev.sh run), set REDIS_URL, "
                               "or use --inline")
        if plugin.kind == "postprocess":
            job = self._postprocess(user, plugin, raw, options)
        else:
            if options["dataset"] is not None:
                raw.setdefault("dataset", options["dataset"])
            params, errors = plugin.validate(user, raw, trusted=True)
            if errors:
                raise CommandError("; ".join(f"{k}: {v}" for k, v in errors.items()))
            job = services.create_job(user, plugin, params, send=not options["inline"])
        self.stdout.write(f"job {job.pk} queued")
        if options["inline"]:
            services.run_job(job.pk)
        if options["wait"] or options["inline"]:
            self._follow(job.pk)

    @staticmethod
    def _params(items: list[str]) -> dict:
        raw = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--param {item!r}: use KEY=VALUE")
            raw[key.strip()] = value
        return raw

    def _postprocess(self, user, plugin, raw: dict, options: dict):
        """On a run's result folder (--result), a dataset (--dataset), or server files (neither)."""
        from nnc_web.datasets.models import Dataset
        from nnc_web.evaluations.services import start_headless_postprocess, start_postprocess
        from nnc_web.projects.models import Run

        send = not options["inline"]
        if options["result"] or options["dataset"] is not None:
            run = dataset = None
            if options["result"]:
                run = Run.objects.filter(pk=options["result"], project__owner=user).first()
                if run is None:
                    raise CommandError(f"{user.username} has no run {options['result']}")
            else:
                dataset = Dataset.objects.filter(pk=options["dataset"], owner=user).first()
                if dataset is None:
                    raise CommandError(f"{user.username} has no dataset {options['dataset']}")
            postprocess, errors = start_postprocess(user, plugin_id=plugin.id, raw_params=raw, run=run,
                                                    dataset=dataset, send=send)
            if errors:
                raise CommandError("; ".join(f"{k}: {v}" for k, v in errors.items()))
            return postprocess.job
        params, errors = plugin.validate(user, raw, trusted=True)
        if errors:
            raise CommandError("; ".join(f"{k}: {v}" for k, v in errors.items()))
        return start_headless_postprocess(user, plugin, params, send=send)

    def _train(self, user, plugin_id: str, options: dict) -> None:
        """Training plugins run inside a project: `--project <name>`."""
        from nnc_web.projects.models import Project
        from nnc_web.projects.services import start_run

        if not options["project"]:
            raise CommandError(f"{plugin_id} is a training plugin: give --project <name>")
        project = Project.objects.filter(owner=user, name=options["project"]).first()
        if project is None:
            raise CommandError(f"{user.username} has no project {options['project']!r}")
        raw = dict(item.partition("=")[::2] for item in options["param"])
        if not options["inline"] and not config.redis_url():
            raise CommandError("no running studio found: start it (./dev.sh run), set REDIS_URL, or use --inline")
        run, errors = start_run(project, plugin_id, raw, send=not options["inline"])
        if errors:
            raise CommandError("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.stdout.write(f"run {run.pk}: job {run.job_id} queued")
        if options["inline"]:
            services.run_job(run.job_id)
        if options["wait"] or options["inline"]:
            self._follow(run.job_id)

    def _user(self, username: str | None):
        if not username:
            raise CommandError("--user is required")
        try:
            return get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"no user {username!r}") from exc

    def _follow(self, job_id: int) -> None:
        seq = 0
        while True:
            job = Job.objects.get(pk=job_id)  # read the state first: events stored before it are all seen
            for event in JobEvent.objects.filter(job_id=job_id, seq__gt=seq).order_by("seq"):
                seq = event.seq
                if event.kind == "log":
                    self.stdout.write(event.data.get("line", ""))
            if job.finished:
                break
            time.sleep(0.3)
        if job.state != Job.State.SUCCEEDED:
            raise CommandError(f"job {job_id} {job.state}: {job.message}")
        if job.kind == "preprocess":
            self.stdout.write(" ".join(str(pk) for pk in job.datasets.order_by("pk").values_list("pk", flat=True)))
        else:
            self.stdout.write(job.result_dir)
