"""Keeps TensorFlow's native log lines off the user's terminal.

TensorFlow 2.21 logs through absl from C++ straight to file descriptor 2, before and after
`TF_CPP_MIN_LOG_LEVEL` is read ("All log messages before absl::InitializeLog()", oneDNN
notices, "Could not find cuda drivers", graph attribute chatter): about eight lines before a
user's one-line error. `filter_native_logs` points descriptor 2 at a pipe whose reader drops
absl's info, warning and error lines and passes everything else (fatal lines included) on;
Python's own stderr keeps writing to the terminal directly, so no message of ours waits on
the filter. Only the `landslide` command calls it (never an import, never a test runner);
LANDSLIDE_NATIVE_LOGS=1 turns it off.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading

ABSL_LINE = re.compile(rb"^(WARNING: All log messages before absl::InitializeLog\(\)|"
                       rb"[IWE]\d{4} [\d:.]+ +\d+ \S+:\d+\])")
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "ABSL_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR",
             "MLFLOW_LOGGING_LEVEL": "WARNING",
             # MLflow draws a progress bar for every artifact it reads back, even one file
             "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def quiet_environment() -> None:
    """Log levels for TensorFlow and friends, set before any of them is imported (MLflow's
    logger also directly, in case MLflow was imported first): a user sees our lines, not
    "Creating initial MLflow database tables"."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    logging.getLogger("mlflow").setLevel(os.environ["MLFLOW_LOGGING_LEVEL"].upper())
    # Keras' predict retraces for each new batch shape and says so on TensorFlow's logger
    # ("5 out of the last 5 calls ... triggered tf.function retracing"): advice, not news
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    for name in STUDY_BOOKKEEPING:  # Optuna's "A new study created" then "Using an existing
        logging.getLogger(name).addFilter(_study_bookkeeping)  # study", and its trial lines


STUDY_BOOKKEEPING = ("optuna.storages._rdb.storage", "optuna.storages._in_memory",
                     "optuna.storages.journal._storage", "optuna.study.study",
                     "optuna.study._optimize")
OPTUNA_TRIAL_LINE = re.compile(r"Trial \d+ (finished|pruned)\b")  # failed ones stay


def _study_bookkeeping(record: logging.LogRecord) -> bool:
    """Drops Optuna's lines about creating or reusing a study, and its trial lines (a dict of
    every parameter per trial): `landslide tune` prints its own line per finished trial."""
    message = record.getMessage()
    return not (message.startswith(("A new study created", "Using an existing study"))
                or OPTUNA_TRIAL_LINE.match(message))


def filter_native_logs() -> None:
    if os.environ.get("LANDSLIDE_NATIVE_LOGS") == "1":
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    sys.stderr = os.fdopen(os.dup(terminal), "w", buffering=1, encoding="utf-8",
                           errors="backslashreplace")
    reader = threading.Thread(target=_pass_on, args=(read, terminal), daemon=True)
    reader.start()

    def restore() -> None:  # EOF for the reader once this process lets go of the pipe
        sys.stderr.flush()
        os.dup2(terminal, 2)
        reader.join(timeout=2)

    atexit.register(restore)


def _pass_on(read: int, terminal: int) -> None:
    with os.fdopen(read, "rb") as lines:
        for line in lines:
            if not ABSL_LINE.match(line):
                os.write(terminal, line)
