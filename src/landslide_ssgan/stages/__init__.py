"""One module per DVC stage (stage name = module name = `landslide` command).

Each module has one `run(...)` that takes the params sections and paths its dvc.yaml stage
lists, does the stage's work with the core (data, models, metrics) and writes its outputs.
MLflow runs are opened here, inside a tracking store the CLI has chosen; nothing here parses
params.yaml or the command line.
"""
