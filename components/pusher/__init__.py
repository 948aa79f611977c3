"""Step 6, pusher: the blessed model to the serving directory and the MLflow registry, atomically."""
