"""The parts of the sandbox MLflow server: tracking (experiments, runs, artifacts) and the model registry."""
