"""Step 5, evaluator: TFMA with accuracy and IoU gates, against the current champion.

`executor.Executor` is TFX's Evaluator that compares with the champion only when there is one; `report`
draws what a run's report shows (learning curves, confusion matrix, IoU histogram, Grad-CAM).
"""
