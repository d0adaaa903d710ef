"""What TensorFlow's import costs the stages that need no network: `dvc repro` runs every
stage as a new `landslide` process (21 by default), and since 2026-12-07 the classifiers'
stage (`fit`, six processes) and `factors` import no network code, so they never load
TensorFlow. Each of those commands runs here in a fresh interpreter, as dvc runs it, side by
side with the same command after `import tensorflow` (what every one of them paid before),
`repeats` times each, alternating; the medians and their ratio are printed, and whether
TensorFlow was loaded by the end of the plain run.

Runs on the project's own data (after `dvc repro`, or `dvc pull --allow-missing && dvc repro
-s prepare`), into a temporary folder and MLflow store: nothing of the project's changes.

Usage: .venv/bin/python benchmarks/stage_startup.py [--repeats 3]   (about 3 minutes)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (["factors"], ["fit", "glm"], ["fit", "forest"])
PROBE = """import sys, time
start = time.perf_counter()
if sys.argv[2] == "tensorflow":
    import tensorflow
from landslide_ssgan.cli import app
app([*sys.argv[3:], "--params", sys.argv[1]], standalone_mode=False)
print(time.perf_counter() - start, "tensorflow" in sys.modules)
"""


def project_params(folder: Path) -> Path:
    """params.yaml with the project's inputs and this run's outputs (trained models,
    reports) in `folder`."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    paths = raw["paths"]
    for key, value in paths.items():
        paths[key] = str(folder / key if key in ("trained", "reports") else ROOT / value)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def timed(command: list[str], params: Path, first: str, folder: Path) -> tuple[float, bool]:
    """Seconds the command took in a new interpreter (`first`: "tensorflow" imports it
    before the command), and whether TensorFlow was loaded at its end."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
    done = subprocess.run([sys.executable, "-c", PROBE, str(params), first, *command],
                          capture_output=True, text=True, cwd=folder, env=env)
    if done.returncode:
        sys.exit(f"stage_startup: {' '.join(command)} failed: "
                 f"{done.stderr.strip().splitlines()[-1:]}")
    seconds, loaded = done.stdout.strip().splitlines()[-1].split()
    return float(seconds), loaded == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    if not (ROOT / "data" / "samples" / "samples.csv").is_file():
        sys.exit("stage_startup: data/samples/samples.csv is missing; run `dvc repro` first")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        params = project_params(folder)
        print(f"{'command':<16} {'as now s':>9} {'with TF s':>10} {'ratio':>6} "
              f"{'TF loaded':>10}")
        for command in COMMANDS:
            plain, with_tf, loaded = [], [], False
            for _ in range(repeats):
                seconds, loaded = timed(command, params, "-", folder)
                plain.append(seconds)
                with_tf.append(timed(command, params, "tensorflow", folder)[0])
            now, before = statistics.median(plain), statistics.median(with_tf)
            print(f"{' '.join(command):<16} {now:>9.1f} {before:>10.1f} "
                  f"{now / before:>6.2f} {'yes' if loaded else 'no':>10}")


if __name__ == "__main__":
    main()
