"""The `landslide` command: one sub-command per DVC stage (stage name = command name).

Each command loads params.yaml, calls the core and writes its outputs; a user error (bad
setting, bad input file) is one line on stderr and exit code 2, never a stack trace.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
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
    model: Annotated[str, typer.Argument(help="Which model: ssgan or baseline.")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Train the SSGAN (discriminator with N + 1 outputs, generator, labelled plus unlabelled
    windows) or the supervised baseline (same discriminator, two outputs, labels only), log
    the run to MLflow (params, data hashes, per-epoch loss components and validation scores,
    generator images, the model) and save it under models/<model>/. An interrupted run
    resumes from its last finished epoch."""
    from landslide_ssgan import tracking, workflows
    from landslide_ssgan.config import load_params
    from landslide_ssgan.errors import ConfigError
    from landslide_ssgan.training import MODEL_KINDS

    if model not in MODEL_KINDS:
        raise ConfigError(f"model: {model!r} is not one of {', '.join(MODEL_KINDS)}")
    cfg = load_params(params)
    tracking.use_tracking_store(cfg.tracking.default_uri, cfg.tracking.experiment)
    out = workflows.train_and_log(model, cfg)  # type: ignore[arg-type]
    typer.echo(f"{model} trained for {cfg.train.epochs} epochs -> {out}")


@app.command()
@stage
def evaluate(params: ParamsOption = Path("params.yaml")) -> None:
    """Score both trained models on the test windows (precision, recall, F1, kappa, MIoU,
    accuracy, confusion matrix), write reports/metrics.json, reports/evaluation.md and the
    loss curves, and add the test metrics to each model's MLflow run."""
    from landslide_ssgan import tracking, workflows
    from landslide_ssgan.config import load_params

    cfg = load_params(params)
    tracking.use_tracking_store(cfg.tracking.default_uri, cfg.tracking.experiment)
    results = workflows.evaluate_and_log(cfg)
    for kind, row in results.items():
        typer.echo(f"{kind}: F1 {row['f1']:.3f}  kappa {row['kappa']:.3f}  "
                   f"MIoU {row['miou']:.3f}")


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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
