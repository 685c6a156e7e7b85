"""Actuators: what acts on a Report (TensorBoard, logging, early stopping, advice, Optuna)."""

__all__: list[str] = []
