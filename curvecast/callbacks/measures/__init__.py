"""Measures: the torch-level arithmetic the sensors in :mod:`curvecast.callbacks` use, knowing no Trainer.

- ``per_example_norms``, ``gns_sources``, ``gns_estimator``: per-example and micro-batch gradient norms, and the
  two-batch gradient noise scale estimator (for ``GradientNoiseScale``);
- ``gradient_tensors``: rows of a batch, squared gradient norms, the AMP loss scale;
- ``flops``: FLOP counting of a step and the device's peak FLOP/s (for ``Throughput``'s MFU);
- ``throughput_stats``: windowed timing statistics and the straggler test across ranks (for ``Throughput``);
- ``schedule_replay``, ``scheduler_jump``: the planned LR of every step, by replaying the LR schedulers, and
  ``schedule_source``: what a plan was replayed from, to tell schedulers swapped mid-run from an LR set by hand (for
  ``LearningRateCapture``).
"""
