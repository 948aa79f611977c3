"""Step 5, evaluator: TFMA with accuracy and IoU gates, against the current champion.

`verdict` owns the decision (the TFMA config and its gates, the champion comparison, the gate table read from
TFMA's validation result, the outcome); `settings` is the `evaluation:` section; `executor.Executor` is TFX's
Evaluator that compares with the champion only when there is one; `scores` scores the eval split as serving would.
"""
