"""The `landslide` command: one sub-command per DVC stage (stage name = command name).

Each command loads params.yaml, calls the core and writes its outputs; a user error (bad
setting, bad input file) is one line on stderr and exit code 2, never a stack trace.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from landslide_ssgan.errors import LandslideError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ chatter off stderr

app = typer.Typer(
    help="Landslide identification with a semi-supervised GAN: the pipeline's stages.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode="markdown",  # docstring lines join into paragraphs in --help
)

ParamsOption = Annotated[Path, typer.Option("--params", "-p", help="The params.yaml to read.")]
F = TypeVar("F", bound=Callable[..., Any])


def stage(func: F) -> F:
    """Turn a user error into one line on stderr and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LandslideError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


@app.command()
@stage
def prepare(params: ParamsOption = Path("params.yaml")) -> None:
    """Build the aligned stack on the metric reference grid (every layer resampled, slope,
    aspect, NDVI and distances derived, classes one-hot encoded), rasterise the inventory to
    labels, and write reports/prepare.json and a preview of every layer."""
    from landslide_ssgan import plots, reporting
    from landslide_ssgan.config import load_params
    from landslide_ssgan.data.inventory import rasterize_inventory
    from landslide_ssgan.data.stack import build_stack, write_single_band, write_stack
    from landslide_ssgan.files import write_json

    cfg = load_params(params)
    stack = build_stack(cfg.prepare)
    labels, ids = rasterize_inventory(cfg.prepare.inventory, stack.grid)
    summary = reporting.prepare_summary(stack, labels, ids)
    write_stack(stack, cfg.paths.stack)
    write_single_band(labels, stack.grid, cfg.paths.labels, 255, "label")
    write_single_band(ids, stack.grid, cfg.paths.inventory_ids, 0, "landslide_id")
    reports = Path(cfg.paths.reports)
    write_json(reports / "prepare.json", summary)
    plots.stack_preview(stack, labels, reports / "prepare_layers.png")
    typer.echo(f"stack {stack.data.shape[0]} bands x {stack.grid.height} x {stack.grid.width}, "
               f"{summary['valid_fraction']:.1%} valid -> {cfg.paths.stack}")


@app.command()
@stage
def sample(params: ParamsOption = Path("params.yaml")) -> None:
    """Draw the window centres of the landslide, stable and unlabelled sets, split them into
    train / validation / test (spatially separated by default), and compute the per-band
    normalisation from training pixels only. Writes index files, not windows."""
    from landslide_ssgan import plots, reporting
    from landslide_ssgan.config import load_params
    from landslide_ssgan.data.normalisation import Normalisation
    from landslide_ssgan.data.sampling import draw_samples, training_statistics, write_samples
    from landslide_ssgan.data.stack import read_single_band, read_stack
    from landslide_ssgan.files import write_json

    cfg = load_params(params)
    stack = read_stack(cfg.paths.stack)
    labels, _ = read_single_band(cfg.paths.labels)
    ids, _ = read_single_band(cfg.paths.inventory_ids)
    samples = draw_samples(labels, ids, stack.valid, cfg.sample, cfg.seed)
    mean, std = training_statistics(stack.data, samples, cfg.sample.window)
    summary = reporting.sample_summary(samples, labels.shape, cfg.sample.window,
                                       cfg.sample.split.method)
    write_samples(samples, cfg.paths.samples)
    Normalisation(stack.grid.band_names, mean, std).save(cfg.paths.norm)
    reports = Path(cfg.paths.reports)
    write_json(reports / "sample.json", summary)
    table = samples.table
    plots.split_preview(labels.shape, table.row.to_numpy(), table.col.to_numpy(),
                        table.split.to_numpy(), stack.valid, reports / "sample_split.png")
    typer.echo(f"{len(table)} windows; test/train shared pixels: "
               f"{summary['shared_window_pixels']['test_train']} -> {cfg.paths.samples}")


@app.command()
@stage
def train(
    model: Annotated[str, typer.Argument(help="Which model: ssgan, baseline or forest.")],
    feature_set: Annotated[str | None, typer.Option(
        help="factors, optical or joint; default: features.set of params.yaml.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Train the SSGAN (discriminator with N + 1 outputs, generator, labelled plus unlabelled
    windows), the supervised baseline (same discriminator, two outputs, labels only) or the
    random forest on window features; log the run to MLflow (params, data hashes, per-epoch
    loss components and validation scores, generator images, the model) and save it under
    models/<feature set>/<model>/. An interrupted network training resumes from its last
    finished epoch."""
    from dataclasses import replace

    from landslide_ssgan import tracking, workflows
    from landslide_ssgan.config import load_params
    from landslide_ssgan.errors import ConfigError

    if model not in ("ssgan", "baseline", "forest"):
        raise ConfigError(f"model: {model!r} is not one of ssgan, baseline, forest")
    if feature_set not in (None, "factors", "optical", "joint"):
        raise ConfigError(f"--feature-set: {feature_set!r} is not one of factors, optical, joint")
    cfg = load_params(params)
    chosen = feature_set or cfg.features.set
    cfg = replace(cfg, features=replace(cfg.features, set=chosen))  # type: ignore[arg-type]
    tracking.use_tracking_store(cfg.tracking.default_uri, cfg.tracking.experiment)
    out = (workflows.train_forest_and_log(cfg) if model == "forest"
           else workflows.train_and_log(model, cfg))  # type: ignore[arg-type]
    typer.echo(f"{model} on {cfg.features.set} trained -> {out}")


@app.command()
@stage
def evaluate(params: ParamsOption = Path("params.yaml")) -> None:
    """Score every trained model (SSGAN, baseline, forest) of every feature set on the test
    windows (precision, recall, F1, kappa, MIoU, accuracy, confusion matrix); write
    reports/metrics.json, evaluation.md, feature_sets.md and the loss curves, and add the test
    metrics to each model's MLflow run."""
    from landslide_ssgan import tracking, workflows
    from landslide_ssgan.config import load_params

    cfg = load_params(params)
    tracking.use_tracking_store(cfg.tracking.default_uri, cfg.tracking.experiment)
    results = workflows.evaluate_and_log(cfg)
    for feature_set, rows in results.items():
        for kind, row in rows.items():
            typer.echo(f"{feature_set:8s} {kind:9s} F1 {row['f1']:.3f}  "
                       f"kappa {row['kappa']:.3f}  MIoU {row['miou']:.3f}")


@app.command()
@stage
def factors(params: ParamsOption = Path("params.yaml")) -> None:
    """Check the influencing factors before training: VIF and tolerance per factor (GVIF for
    one-hot factors), random-forest importance by out-of-bag permutation beside the impurity
    importance, on the labelled training pixels. Writes reports/factors.json and two charts
    and logs them to an MLflow run."""
    from landslide_ssgan import tracking, workflows
    from landslide_ssgan.config import load_params

    cfg = load_params(params)
    tracking.use_tracking_store(cfg.tracking.default_uri, cfg.tracking.experiment)
    summary = workflows.factor_analysis(cfg)
    top = ", ".join(summary["ranking"][:3])
    typer.echo(f"most important: {top}; collinear (VIF > 10): {summary['collinear'] or 'none'}")


@app.command()
@stage
def tune(
    params: ParamsOption = Path("params.yaml"),
    storage: Annotated[str | None, typer.Option(
        help="Optuna storage URL (default: tune.storage, e.g. sqlite:///optuna.db; "
             "postgresql://user:password@host/db to share a study across machines).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes on this machine.")] = 1,
    parent_run: Annotated[str | None, typer.Option(hidden=True)] = None,
) -> None:
    """Tune the SSGAN with Optuna: TPE over the search space of params.yaml (tune.space),
    maximising validation F1 with a median pruner fed each epoch. Every trial is an MLflow run
    nested under the study's run; a stopped study resumes, and workers (here or on other
    machines with the same --storage) share its trial budget. Writes reports/best_params.yaml,
    tune.json and Optuna's history and importance plots; never rewrites params.yaml."""
    import subprocess
    import sys

    from landslide_ssgan import tracking, tuning, workflows
    from landslide_ssgan.config import load_params

    cfg = load_params(params)
    tracking.use_tracking_store(cfg.tracking.default_uri, cfg.tracking.experiment)
    url = storage or cfg.tune.storage
    tuning.open_storage(cfg.tune, url)  # creates the study once, before any worker races
    parent = parent_run or workflows.study_parent_run(cfg, url)
    helpers = [subprocess.Popen([sys.executable, "-m", "landslide_ssgan.cli", "tune",
                                 "--params", str(params), "--storage", url, "--workers", "1",
                                 "--parent-run", parent]) for _ in range(workers - 1)]
    workflows.tune_trials(cfg, url, parent)
    failed = [p.args for p in helpers if p.wait() != 0]
    if parent_run is not None:
        return  # a helper worker: the process that started it writes the reports
    summary = workflows.report_study(cfg, url, parent)
    typer.echo(f"best trial {summary['best_trial']}: validation F1 "
               f"{summary['best_val_f1']:.3f} ({summary['finished_trials']} finished, "
               f"{summary['pruned_trials']} pruned)" + (f"; {len(failed)} workers failed"
                                                        if failed else ""))


@app.command()
@stage
def register(params: ParamsOption = Path("params.yaml")) -> None:
    """Register the model of the best SSGAN run (validation F1, this data and feature set) as
    `landslide-ssgan` and move the `champion` alias to it only if it beats the current
    champion on the same validation windows. Writes reports/champion.json."""
    from landslide_ssgan import tracking, workflows
    from landslide_ssgan.config import load_params

    cfg = load_params(params)
    tracking.use_tracking_store(cfg.tracking.default_uri, cfg.tracking.experiment)
    summary = workflows.register_champion(cfg)
    verdict = ("promoted to" if summary["promoted"] else "kept as")
    typer.echo(f"{summary['name']} version {summary['version']} {verdict} "
               f"@{summary['alias']} (candidate validation F1 "
               f"{summary['candidate']['val_f1']:.3f}, previous "
               f"{summary['previous_champion_val_f1']})")


@app.command("map")
@stage
def map_area(
    model_uri: Annotated[str | None, typer.Option(
        help="models:/..., runs:/... or a model folder; default: map.model_uri, else "
             "models:/<registry.model_name>@<registry.alias>.")] = None,
    dask: Annotated[bool, typer.Option(
        "--dask", help="Spread blocks over a local Dask cluster (see --workers).")] = False,
    scheduler: Annotated[str | None, typer.Option(
        help="Address of a running Dask scheduler (tcp://host:8786); its workers must be "
             "able to read the stack's path.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Workers of the local Dask cluster.")] = 2,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Map the whole study area with the champion: every pixel classified by its own window
    (exact dense inference, block by block), probability and class Cloud Optimized GeoTIFFs,
    landslide bodies as polygons (GeoPackage) after threshold, opening / closing and a
    minimum area; the baseline is mapped too, for reports/map_summary.json. An interrupted
    run resumes at the first block it had not finished."""
    from landslide_ssgan import tracking, workflows
    from landslide_ssgan.config import load_params

    cfg = load_params(params)
    tracking.use_tracking_store(cfg.tracking.default_uri, cfg.tracking.experiment)
    with _dask_client(dask, scheduler, workers) as client, _block_progress() as on_block:
        summary = workflows.map_area(cfg, model_uri, client, on_block)
    for name in ("champion", "baseline"):
        if name in summary:
            row = summary[name]
            typer.echo(f"{name:9s} {row['count']} landslides, {row['total_area_km2']:.3f} km2, "
                       f"{row['pixels_per_second']:,} px/s -> {row['outputs']['polygons']}")


@app.command()
@stage
def study(params: ParamsOption = Path("params.yaml")) -> None:
    """Does the semi-supervision pay? Train the SSGAN, its supervised twin and the random
    forest on shrinking label budgets (whole polygons, nested) over several seeds, on the
    spatial and the random split, plus the SSGAN variants of study.variants; score each on
    the fixed test windows. Writes reports/label_efficiency.md, .png and .csv; every run is an
    MLflow run nested under one parent. Not part of `dvc repro` (see studies/dvc.yaml)."""
    import time

    from landslide_ssgan import study as label_study
    from landslide_ssgan import tracking
    from landslide_ssgan.config import load_params

    cfg = load_params(params)
    tracking.use_tracking_store(cfg.tracking.default_uri, cfg.tracking.experiment)
    started = time.perf_counter()
    results = label_study.label_efficiency(cfg, on_run=lambda row: typer.echo(
        f"{row['split']:7s} seed {row['seed']} budget {row['budget']:<5g} "
        f"{row['model']:24s} F1 {row['f1']:.3f} kappa {row['kappa']:.3f} "
        f"({row['seconds']:.0f} s)"))
    path = label_study.write_reports(results, cfg, time.perf_counter() - started)
    typer.echo(f"{len(results)} runs -> {path}")


@app.command()
@stage
def serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5001,
    model_uri: Annotated[str | None, typer.Option(
        help="Default: models:/<registry.model_name>@<registry.alias>.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Serve the champion model on 127.0.0.1: POST {"inputs": raw windows (N, 13, 13, C)} to
    /invocations and get landslide probabilities back."""
    import subprocess
    import sys

    from landslide_ssgan import tracking
    from landslide_ssgan.config import load_params

    cfg = load_params(params)
    uri = tracking.use_tracking_store(cfg.tracking.default_uri, cfg.tracking.experiment)
    model = model_uri or f"models:/{cfg.registry.model_name}@{cfg.registry.alias}"
    typer.echo(f"serving {model} at http://127.0.0.1:{port}/invocations")
    raise typer.Exit(subprocess.call(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", model, "--env-manager",
         "local", "--host", "127.0.0.1", "--port", str(port)],
        # MLflow starts uvicorn by name: the environment's own bin must come first on PATH
        env={**os.environ, "MLFLOW_TRACKING_URI": uri,
             "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}))


@app.command()
@stage
def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Start the MLflow UI on 127.0.0.1 over the project's tracking store."""
    import subprocess
    import sys

    from landslide_ssgan import tracking
    from landslide_ssgan.config import load_params

    uri = tracking.tracking_uri(load_params(params).tracking.default_uri)
    typer.echo(f"MLflow UI for {uri} at http://127.0.0.1:{port}")
    raise typer.Exit(subprocess.call([sys.executable, "-m", "mlflow", "ui", "--host",
                                      "127.0.0.1", "--port", str(port),
                                      "--backend-store-uri", uri]))


@contextlib.contextmanager
def _dask_client(local: bool, scheduler: str | None, workers: int) -> Iterator[Any]:
    """No client (blocks computed here), a local cluster, or a client of a running scheduler."""
    if not (local or scheduler):
        yield None
        return
    from dask.distributed import Client, LocalCluster

    from landslide_ssgan.errors import InputError

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"--scheduler: {scheduler} cannot be reached ({exc})") from None
        with client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


@contextlib.contextmanager
def _block_progress() -> Iterator[Callable[[str, Any, bool, int], None]]:
    """A progress bar per mapped model, in pixels, with the pixels per second it computes."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.percentage:>3.0f}%"),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def advance(name: str, block: Any, resumed: bool, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"map {name}", total=total, rate="")
            task = bar.tasks[tasks[name]]
            pixels = block.height * block.width
            bar.update(tasks[name], advance=pixels, rate=f"{task.speed or 0:,.0f} px/s"
                       if not resumed else "resumed")

        yield advance


def main() -> None:
    app()


if __name__ == "__main__":
    main()
