"""Forecasts of a trained run for new dates: what a trained model is for.

:func:`atft.predict.job.predict_run` (``atft predict``) checks that the panel gives the model the inputs it was
trained on (:mod:`atft.predict.inputs`), takes the run's selected weights (or a checkpoint's,
:mod:`atft.predict.trained`), forecasts the chosen dates exactly as training's evaluation does
(:mod:`atft.predict.forecast`) and writes one row per (date, code) (docs/predict.md).

Only the input record is imported here: the training job writes it, and must not import the forecasting code
(which imports the training loop).
"""

from atft.predict.inputs import INPUTS_FILE, RunInputs, read_run_inputs, write_run_inputs

__all__ = ["INPUTS_FILE", "RunInputs", "read_run_inputs", "write_run_inputs"]
