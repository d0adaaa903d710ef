"""The `landslide` command: one sub-command per DVC stage (stage name = command name).

Each command loads params.yaml (and, where it logs, opens the tracking store) through
`_params`, calls its stage's `run` in `landslide_ssgan.stages` and prints one line of result.
A user error (bad setting, bad input file) is one line on stderr and exit code 2, never a
stack trace.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer._click import exceptions as usage  # typer's own click (pinned with typer)
from typer.core import TyperGroup

from landslide_ssgan.errors import LandslideError, first_line
from landslide_ssgan.quiet import filter_native_logs, quiet_environment

if TYPE_CHECKING:
    from landslide_ssgan.config import Params

quiet_environment()  # before TensorFlow, absl or MLflow are imported by any command


class OneLineErrors(TyperGroup):
    """Typer's own usage errors (a choice that is not one, a missing argument, a number out
    of range) in the project's form: one `error:` line on stderr and exit 2, not a box."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        run = functools.partial(super().main, args, prog_name, complete_var,
                                windows_expand_args=windows_expand_args, **extra)
        if not standalone_mode:
            return run(standalone_mode=False)
        try:
            code = run(standalone_mode=False)
        except usage.NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(exc.exit_code)
        except usage.UsageError as exc:
            where = f"; see `{exc.ctx.command_path} --help`" if exc.ctx else ""
            message = exc.format_message().replace("Value error, ", "").rstrip(".")
            typer.echo(f"error: {message}{where}", err=True)
            sys.exit(exc.exit_code)
        except usage.ClickException as exc:
            typer.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    help="Landslide identification with a semi-supervised GAN: the pipeline's stages.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode="markdown",  # docstring lines join into paragraphs in --help
)

ParamsOption = Annotated[Path, typer.Option("--params", "-p", help="The params.yaml to read.")]


def _print_version(asked: bool) -> None:
    if asked:
        from landslide_ssgan import __version__

        typer.echo(f"landslide-ssgan {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit.")] = False) -> None:
    """Landslide identification with a semi-supervised GAN: the pipeline's stages."""
F = TypeVar("F", bound=Callable[..., Any])


class FeatureSetChoice(StrEnum):
    factors = "factors"
    optical = "optical"
    joint = "joint"


FeatureSetOption = Annotated[FeatureSetChoice | None, typer.Option(
    help="Which bands; default: features.set of params.yaml.")]
RestartOption = Annotated[bool, typer.Option(
    "--restart", help="Discard an interrupted training's checkpoint and start afresh.")]


def stage(func: F) -> F:
    """Turn a user error into one line on stderr and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        quiet_environment()
        try:
            return func(*args, **kwargs)
        except LandslideError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=2) from None
        except OSError as exc:
            if exc.errno not in FILE_SYSTEM_ERRORS and not _is_gdal_write_error(exc):
                raise
            typer.echo(f"error: {_file_system_message(exc)}", err=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


# what the file system refuses: a read-only or unwritable folder, a full disk, a file-size limit
FILE_SYSTEM_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EFBIG,
                      errno.EDQUOT}


def _is_gdal_write_error(exc: OSError) -> bool:
    """GDAL reports a refused write as its own error, without an errno."""
    text = str(exc)
    return exc.errno is None and any(word in text for word in (
        "Permission denied", "No space left", "Read-only file system", "File too large",
        "Disk quota exceeded"))


def _file_system_message(exc: OSError) -> str:
    """One line naming the path and what the file system said, and what to check."""
    reason = exc.strerror or first_line(exc)
    where = f"{exc.filename}: " if exc.filename else ""
    return (f"{where}{reason}; nothing was replaced (check that the folder exists, is "
            "writable and has free space)")


# a stage takes settings after its options, as `mlflow run -P name=value` passes them:
# `--epochs 2` (a setting of the stage's own section) or `--train.lr_d 0.001` (dotted)
OVERRIDES = {"allow_extra_args": True, "ignore_unknown_options": True}
SECTION = {"register": "registry"}  # a stage's section in params.yaml, where not its name


def _overrides(ctx: typer.Context | None) -> dict[str, str]:
    """`--name value` / `--name=value` pairs left over by the command's own options."""
    from landslide_ssgan.errors import ConfigError

    args, found = list(ctx.args) if ctx is not None else [], {}
    while args:
        flag = args.pop(0)
        if not flag.startswith("--") or len(flag) < 3:
            raise ConfigError(f"{flag}: not an option; settings are given as --name value")
        name, equals, value = flag[2:].partition("=")
        if not equals:
            if not args:
                raise ConfigError(f"{flag}: needs a value")
            value = args.pop(0)
        command = ctx.command.name if ctx is not None else None
        section = SECTION.get(command, command) if command else None
        found[name if "." in name or section is None or name == "seed"
              else f"{section}.{name}"] = value
    return found


def _params(path: Path, ctx: typer.Context | None = None) -> Params:
    """params.yaml with the command line's settings, validated."""
    from landslide_ssgan.config import load_params

    return load_params(path, _overrides(ctx))


def _tracked_params(path: Path, ctx: typer.Context | None = None) -> Params:
    """params.yaml, with MLflow pointed at the tracking store and experiment: the project's
    (MLFLOW_TRACKING_URI or tracking.default_uri, tracking.experiment), or, under `mlflow
    run`, the run it opened, which the stage then logs into."""
    from dataclasses import replace

    from landslide_ssgan.ops import tracking

    cfg = _params(path, ctx)
    experiment = tracking.use_tracking_store(cfg.tracking.default_uri,
                                             cfg.tracking.experiment)
    return replace(cfg, tracking=replace(cfg.tracking, experiment=experiment))


@app.command(context_settings=OVERRIDES)
@stage
def prepare(
    ctx: typer.Context, params: ParamsOption = Path("params.yaml")) -> None:
    """Build the aligned stack on the metric reference grid (every layer resampled, slope,
    aspect, NDVI and distances derived, classes one-hot encoded), rasterise the inventory to
    labels, and write reports/prepare.json and a preview of every layer."""
    from landslide_ssgan.stages import prepare as stage_module

    cfg = _params(params, ctx)
    summary = stage_module.main(cfg)
    grid = summary["grid"]
    typer.echo(f"stack {len(summary['bands'])} bands x {grid['height']} x {grid['width']}, "
               f"{summary['valid_fraction']:.1%} valid -> {cfg.paths.stack}")


@app.command(context_settings=OVERRIDES)
@stage
def sample(
    ctx: typer.Context, params: ParamsOption = Path("params.yaml")) -> None:
    """Draw the window centres of the landslide, stable and unlabelled sets, split them into
    train / validation / test (spatially separated by default), and compute the per-band
    normalisation from training pixels only. Writes index files, not windows."""
    from landslide_ssgan.stages import sample as stage_module

    cfg = _params(params, ctx)
    summary = stage_module.main(cfg)
    typer.echo(f"{summary['windows']} windows; test/train shared pixels: "
               f"{summary['shared_window_pixels']['test_train']} -> {cfg.paths.samples}")


@app.command(context_settings=OVERRIDES)
@stage
def factors(
    ctx: typer.Context, params: ParamsOption = Path("params.yaml")) -> None:
    """Check the influencing factors before training: VIF and tolerance per factor (GVIF for
    one-hot factors), random-forest importance by out-of-bag permutation beside the impurity
    importance, on the labelled training pixels. Writes reports/factors.json and two charts
    and logs them to an MLflow run."""
    from landslide_ssgan.stages import factors as stage_module

    summary = stage_module.main(_tracked_params(params, ctx))
    top = ", ".join(summary["ranking"][:3])
    typer.echo(f"most important: {top}; collinear (VIF > 10): {summary['collinear'] or 'none'}")


@app.command(context_settings=OVERRIDES)
@stage
def train(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(
        help="The model kind: one of `landslide kinds` (models/learners.py).")],
    feature_set: FeatureSetOption = None,
    restart: RestartOption = False,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Train a window network: the SSGAN (discriminator with N + 1 outputs, generator,
    labelled plus unlabelled windows), the supervised baseline (same discriminator, two
    outputs, labels only) or FixMatch (the same discriminator, labels plus pseudo-labels of
    confident weak views teaching strong views of the unlabelled windows);
    log the run to MLflow (params, data hashes, per-epoch loss components and balanced
    validation scores, generator images) and save it under `trained/<feature set>/<model>/`;
    `landslide calibrate` then gives it its map threshold. An interrupted network training
    resumes from its last finished epoch (weights, optimizer state and random streams: it
    ends where an uninterrupted run would) if the settings and data are unchanged;
    `--restart` discards it."""
    from landslide_ssgan.stages import train as stage_module

    cfg = _tracked_params(params, ctx)
    with _epoch_progress(f"{model} on {feature_set.value if feature_set else cfg.features.set}"
                         ) as on_epoch:
        out = stage_module.main(cfg, model, feature_set.value if feature_set else None,
                                restart, on_epoch)
    _say_trained(model, out)


@app.command(context_settings=OVERRIDES)
@stage
def fit(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(
        help="The classifier: one of `landslide kinds` marked classifier.")],
    feature_set: FeatureSetOption = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Fit a classifier on window features at once: the random forest (centre, mean and
    deviation of each band) or the GLM (logistic regression on the centre pixel); log the run
    to MLflow as `landslide train` does (balanced validation scores, the GLM's coefficients)
    and save it under `trained/<feature set>/<model>/`; `landslide calibrate` then gives it
    its map threshold."""
    from landslide_ssgan.stages import fit as stage_module

    cfg = _tracked_params(params, ctx)
    _say_trained(model, stage_module.main(cfg, model,
                                          feature_set.value if feature_set else None))


@app.command(context_settings=OVERRIDES)
@stage
def segment(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(
        help="The segmenter: one of `landslide kinds` marked segmenter.")],
    feature_set: FeatureSetOption = None,
    restart: RestartOption = False,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Train a patch segmenter (the U-Net) on whole patches of the training area (train.patch),
    log the run to MLflow as `landslide train` does and save it under
    `trained/<feature set>/<model>/`; `landslide calibrate` then gives it its map threshold."""
    from landslide_ssgan.stages import segment as stage_module

    cfg = _tracked_params(params, ctx)
    with _epoch_progress(f"{model} on {feature_set.value if feature_set else cfg.features.set}"
                         ) as on_epoch:
        out = stage_module.main(cfg, model, feature_set.value if feature_set else None,
                                restart, on_epoch, on_patches=typer.echo)
    _say_trained(model, out)


def _trial_line(trial: Any, finished: int, budget: int) -> None:
    """One line per trial this worker finished: its value or the epoch it was pruned at."""
    value = (f"{trial.value:.3g}" if trial.value is not None
             else f"pruned after epoch {max(trial.intermediate_values, default=0)}")
    seconds = ((trial.datetime_complete - trial.datetime_start).total_seconds()
               if trial.datetime_complete and trial.datetime_start else float("nan"))
    typer.echo(f"trial {trial.number}: {value} ({seconds:.0f} s); {finished} of "
               f"{budget} finished")


def _say_trained(model: str, out: Path) -> None:
    typer.echo(f"{model} on {out.parent.name} trained -> {out}; next: landslide calibrate "
               f"{model} --feature-set {out.parent.name}")


@app.command(context_settings=OVERRIDES)
@stage
def calibrate(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Argument(
        help="One model kind; default: every model params.yaml trains, and the tuned one.")
    ] = None,
    feature_set: FeatureSetOption = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Give each trained model (`trained/<feature set>/<model>/`) what its map needs, from
    its map of the validation area: the map threshold (best F1 there, or
    calibrate.target_recall), the validation map scores, the prior that moves its
    probabilities to the area's prevalence and, for the SSGAN, the realism check. Save it under
    `models/<feature set>/<model>/` and log all of it, with the model the registry and
    `landslide serve` take, to the model's MLflow training run."""
    from landslide_ssgan.stages import calibrate as stage_module

    cfg = _tracked_params(params, ctx)
    for target, info in stage_module.main(cfg, model,
                                          feature_set.value if feature_set else None):
        typer.echo(f"{target.name} on {target.feature_set}: map threshold "
                   f"{info['threshold']:.3g} ({info['threshold_source']}) -> "
                   f"{cfg.paths.models}/{target.feature_set}/{target.name}")


@app.command()
def kinds() -> None:
    """List the model kinds of the learner table (models/learners.py): the names that
    `landslide train`, `fit` and `segment`, the evaluate section, registry.kinds, study.models
    and tune.model take."""
    from landslide_ssgan.models import learners

    for learner in learners.LEARNERS.values():
        family = ("segmenter" if learner.patches else "network" if learner.network
                  else "classifier")
        typer.echo(f"{learner.name:9s} {family:10s} {learner.summary}")


@app.command(context_settings=OVERRIDES)
@stage
def evaluate(
    ctx: typer.Context, params: ParamsOption = Path("params.yaml")) -> None:
    """Score every trained model (SSGAN, baseline, forest, GLM) of every feature set on the
    balanced test windows (the paper's protocol), and the map of every model of features.set
    on the validation and test areas, every pixel at the real prevalence (AUPRC, AUROC, F1,
    IoU, flagged share, object recall and precision). Writes reports/metrics.json,
    evaluation.md, feature_sets.md, map_evaluation.json / .md, precision-recall curves, a
    preview of the test area, the GLM's coefficients and the loss curves; adds the scores to
    each model's MLflow run."""
    from landslide_ssgan.stages import evaluate as stage_module

    clock = _Lap()

    def row_line(feature_set: str, kind: str, row: dict[str, Any]) -> None:
        typer.echo(f"{feature_set:8s} {kind:9s} balanced windows: F1 {row['f1']:.3f}  "
                   f"kappa {row['kappa']:.3f}  MIoU {row['miou']:.3f}  ({clock.lap()})")

    def map_line(kind: str, areas: dict[str, Any]) -> None:
        test = areas["test"]["all"]
        typer.echo(f"map {kind:9s} test area: AUPRC {test['auprc']:.3f}  F1 {test['f1']:.3f}  "
                   f"flagged {test['flagged_share']:.1%} (inventory "
                   f"{areas['test']['inventory_share']:.2%})  ({clock.lap()})")

    # a line per model as it is scored: the maps take minutes on a large area
    stage_module.main(_tracked_params(params, ctx), on_row=row_line, on_map=map_line)


@app.command(context_settings=OVERRIDES)
@stage
def tune(
    ctx: typer.Context,
    params: ParamsOption = Path("params.yaml"),
    storage: Annotated[str | None, typer.Option(
        envvar="LANDSLIDE_TUNE_STORAGE",
        help="Optuna storage URL (default: tune.storage, e.g. sqlite:///optuna.db; "
             "postgresql://user:password@host/db to share a study across machines; "
             "LANDSLIDE_TUNE_STORAGE keeps a password off the command line).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes on this machine.")] = 1,
    parent_run: Annotated[str | None, typer.Option(hidden=True)] = None,
) -> None:
    """Tune a network (tune.model: the SSGAN by default) with Optuna: TPE over the search
    space of params.yaml (tune.space), maximising what register ranks by (registry.score:
    the validation area's map AUPRC by default), with a median pruner fed each epoch's
    validation F1. Every trial is an MLflow run nested under the study's run; a stopped study
    resumes, and workers (here or on other machines with the same --storage) share its trial
    budget. Writes reports/best_params.yaml, tune.json and Optuna's history and importance
    plots, and the best trial's model folder (`trained/<set>/tuned`); never rewrites
    params.yaml."""
    from landslide_ssgan.stages import tune as stage_module

    summary = stage_module.main(_tracked_params(params, ctx), params, _overrides(ctx),
                                storage=storage, workers=workers, parent_run=parent_run,
                                on_trial=_trial_line)
    if summary is not None:
        failed = summary["failed_workers"]
        typer.echo(f"best trial {summary['best_trial']}: {summary['objective']} "
                   f"{summary['best_value']:.3g} ({summary['finished_trials']} finished, "
                   f"{summary['pruned_trials']} pruned)"
                   + (f"; {failed} workers failed" if failed else ""))


@app.command(context_settings=OVERRIDES)
@stage
def register(
    ctx: typer.Context, params: ParamsOption = Path("params.yaml")) -> None:
    """Register the model of the best run of any kind in registry.kinds (this data and
    feature set; by registry.score: the AUPRC of its map over the validation area, or F1 on
    balanced validation windows) as `landslide-ssgan`, tagged with its kind, and move the
    `champion` alias to it only if it beats the current
    champion on the same validation data. Writes reports/champion.json."""
    from landslide_ssgan.stages import register as stage_module

    clock, cfg = _Lap(), _tracked_params(params, ctx)

    def score_line(model: str, score: float) -> None:
        typer.echo(f"{model}: {cfg.registry.score} on the validation data {score:.4g} "
                   f"({clock.lap()})")

    summary = stage_module.main(cfg, on_score=score_line)
    verdict = "promoted to" if summary["promoted"] else "kept as"
    previous = summary["previous_champion_score"]
    typer.echo(f"{summary['name']} version {summary['version']} ({summary['kind']}) {verdict} "
               f"@{summary['alias']} ({summary['score']}: candidate "
               f"{summary['candidate']['score']:.4g}, previous "
               f"{'none' if previous is None else format(previous, '.4g')})")


@app.command("map", context_settings=OVERRIDES)
@stage
def map_area(
    ctx: typer.Context,
    model_uri: Annotated[str | None, typer.Option(
        help="models:/..., runs:/... or a model folder; default: map.model_uri, else "
             "`models:/<registry.model_name>@<registry.alias>`.")] = None,
    dask: Annotated[bool, typer.Option(
        "--dask", help="Spread blocks over a local Dask cluster (see --workers).")] = False,
    scheduler: Annotated[str | None, typer.Option(
        help="Address of a running Dask scheduler (tcp://host:8786); its workers must be "
             "able to read the stack's path.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Workers of the local Dask cluster.")] = 2,
    stack: Annotated[Path | None, typer.Option(
        help="New imagery: a stack built by `landslide prepare` from your own layers; mapped "
             "alone, unscored, into --out.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Where --stack's map goes; default: maps/<the stack's name>/.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Map the whole study area with the champion: every pixel classified by its own window
    (exact dense inference, block by block), probability and class Cloud Optimized GeoTIFFs
    with QGIS styles beside them, landslide bodies as polygons (GeoPackage) after threshold,
    opening / closing and a minimum area; the baseline is mapped too, for
    reports/map_summary.json. An interrupted run resumes at the first block it had not
    finished. With --stack, new imagery: `landslide map --stack other/stack.tif --out
    maps/other`."""
    from landslide_ssgan.stages import map as stage_module

    cfg = _tracked_params(params, ctx)
    with _dask_client(dask, scheduler, workers) as client, _block_progress() as on_block:
        summary = stage_module.main(cfg, model_uri, client, on_block, stack, out)
    for name in stage_module.PREFIX:
        if name in summary:
            row = summary[name]
            test = row["areas"].get("test")
            scores = (f"; test area AUPRC {test['auprc']:.3g}, F1 {test['f1']:.3g}" if test
                      else "")
            typer.echo(f"{name:9s} {row['count']} landslides, {row['total_area_km2']:.3f} km2 "
                       f"({row['flagged_share']:.1%} of the area) at threshold "
                       f"{row['threshold']:.3g}{scores}; {row['pixels_per_second']:,} px/s -> "
                       f"{row['outputs']['polygons']}")


@app.command(context_settings=OVERRIDES)
@stage
def study(
    ctx: typer.Context, params: ParamsOption = Path("params.yaml")) -> None:
    """Does the semi-supervision pay? Train the SSGAN, its supervised twin and the random
    forest on shrinking label budgets (whole polygons, nested) over several seeds, on the
    spatial and the random split, plus the SSGAN variants of study.variants; score each on
    the fixed test windows. Writes reports/label_efficiency.md, .png and .csv; every run is an
    MLflow run nested under one parent. Not part of `dvc repro` (see studies/dvc.yaml)."""
    from landslide_ssgan.stages import study as stage_module

    results, path = stage_module.main(_tracked_params(params, ctx), on_run=lambda row: typer.echo(
            f"{row['split']:7s} seed {row['seed']} budget {row['budget']:<5g} "
            f"{row['model']:24s} F1 {row['f1']:.3f} kappa {row['kappa']:.3f} "
            f"map AUPRC {row['map_auprc']:.4f} ({row['seconds']:.0f} s)"))
    typer.echo(f"{len(results)} runs -> {path}")


@app.command()
@stage
def serve(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5001,
    host: Annotated[str, typer.Option(
        help="Address to listen on: 0.0.0.0 for every interface (a container).")
    ] = "127.0.0.1",
    model_uri: Annotated[str | None, typer.Option(
        help="Default: models:/<registry.model_name>@<registry.alias>.")] = None,
    max_windows: Annotated[int | None, typer.Option(
        min=1, help="Windows per request; default: serve.max_windows.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Serve the champion model (on 127.0.0.1 unless --host): POST {"inputs": raw windows
    (N, 13, 13, C)} to /invocations and get landslide probabilities back. A request over
    serve.max_windows or serve.max_request_mb is answered 413; SIGTERM or Ctrl-C stops the
    server."""
    from landslide_ssgan.ops import server, tracking

    cfg = _params(params)
    server.require_free_port(port, host)
    tracking.use_tracking_store(cfg.tracking.default_uri, cfg.tracking.experiment)
    model = model_uri or f"models:/{cfg.registry.model_name}@{cfg.registry.alias}"
    app_ = server.scoring_app(model, max_windows or cfg.serve.max_windows,
                              cfg.serve.max_request_mb)
    typer.echo(f"serving {model} at http://{host}:{port}/invocations")
    server.serve(app_, port, host)


@app.command()
@stage
def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Start the MLflow UI on 127.0.0.1 over the project's tracking store; SIGTERM or Ctrl-C
    stops it and every process it started."""
    import sys

    from mlflow.tracking import MlflowClient

    from landslide_ssgan.ops import server, tracking, urls

    cfg = _params(params)
    server.require_free_port(port)
    uri = tracking.tracking_uri(cfg.tracking.default_uri)
    found = MlflowClient(uri).get_experiment_by_name(cfg.tracking.experiment)
    ranked = tracking.metric_key(tracking.SCORE_METRICS[cfg.registry.score][0])
    page = urls.runs_url(f"http://127.0.0.1:{port}", found.experiment_id if found else None,
                         best_first=ranked)
    typer.echo(f"MLflow UI for {uri}: the runs of {cfg.tracking.experiment}, best "
               f"{ranked} first, at {page}")
    raise typer.Exit(server.run_group(
        [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", uri],
        # MLflow starts uvicorn by name: the environment's own bin must come first on PATH
        {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                               f"{os.environ.get('PATH', '')}"}))


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


class _Lap:
    """Seconds since the previous lap (or the start), for a line per finished model."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def lap(self) -> str:
        now = time.monotonic()
        seconds, self.last = now - self.last, now
        return f"{seconds:.0f} s"


@contextlib.contextmanager
def _epoch_progress(label: str) -> Iterator[Callable[[int, int, dict[str, float]], None]]:
    """One progress line per training: epochs done, the last loss and validation F1, time
    left (rich: redrawn on a terminal, printed once when done elsewhere; NO_COLOR honoured).
    A forest or GLM has no epochs and prints none."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("train {task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[scores]}"), TimeRemainingColumn())
    bar = Progress(*columns, transient=False)
    task: list[Any] = []

    def advance(epoch: int, epochs: int, logs: dict[str, float]) -> None:
        if not task:  # started at the first epoch: a forest prints no empty bar
            bar.start()
            task.append(bar.add_task(label, total=epochs, scores=""))
        losses = [k for k in logs if k.endswith("loss") and not k.startswith("val")]
        scores = "  ".join([f"{k} {logs[k]:.3g}" for k in losses[:1]] + (
            [f"val F1 {logs['val_f1']:.3f}"] if "val_f1" in logs else []))
        bar.update(task[0], completed=epoch, scores=scores)

    try:
        yield advance
    finally:
        if task:
            bar.stop()


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
    filter_native_logs()
    app()


if __name__ == "__main__":
    main()
