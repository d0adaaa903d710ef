"""Operations: MLflow tracking, Optuna tuning, the pyfunc and the HTTP server."""
