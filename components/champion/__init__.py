"""The current champion (the registry version with the `champion` alias), handed to the Evaluator as its baseline."""
