"""The code MLflow runs to load a logged landslide model (MLflow's "models from code": the
file is logged with the model and run on load, so nothing is pickled). The model itself is
pyfunc.WindowClassifier; this file only names it, and nothing imports it."""

import mlflow

from landslide_ssgan.ops.pyfunc import WindowClassifier

mlflow.models.set_model(WindowClassifier())
