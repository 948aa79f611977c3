"""What `xfer run` writes into its MLflow run, from the typed run result (pipeline/tracking/mlflow_log.py)."""

from components import names
from components.evaluator import verdict
from pipeline.tracking import mlflow_log
from tests.helpers import run_results


def test_the_description_has_outcome_data_gates_champion_and_nodes():
    gates = (
        verdict.GateRow("eval_accuracy", "absolute", ">= 0.9", 0.5, False),
        verdict.GateRow("eval_iou", "change", "change >= -0.01", 0.61, True, champion=0.6, change=0.01),
    )
    evaluation = run_results.evaluation(
        metrics={"eval_accuracy": 0.5, "eval_iou": 0.61},
        blessed=False,
        gates=gates,
        champion_note="compared with version 3",
        gate_failures=("sparse_categorical_accuracy (probabilities) = 0.5000, needs >= 0.9",),
    )
    result = run_results.run_result(
        node_states={names.TRAINER: "CACHED", names.EVALUATOR: "COMPLETE"},
        ingest={"records": 30, "accepted": 29, "rejected": 1},
        evaluation=evaluation,
    )
    text = mlflow_log.description(result, run_results.tracked(trained_in_run="abc123"), "data/sample")
    assert text.startswith("### **Blocked by a gate**: not pushed.")
    assert "`data/sample`: 30 records, 29 accepted, 1 rejected" in text
    assert "**Eval split**: eval_accuracy 0.5000, eval_iou 0.6100." in text
    assert "| eval_accuracy | absolute | `>= 0.9` | 0.5000 | - | - | **FAIL** |" in text
    assert "| eval_iou | change | `change >= -0.01` | 0.6100 | 0.6000 | +0.0100 | pass |" in text
    assert "**Champion**: compared with version 3" in text
    assert "- sparse_categorical_accuracy (probabilities) = 0.5000, needs >= 0.9" in text
    assert "ran: Evaluator; from the cache: Trainer." in text
    assert "trained in run `abc123`" in text


def test_the_description_of_a_push_names_the_registry_version_and_the_destination():
    result = run_results.run_result(pushed_path="/serving/17")
    registered = mlflow_log.RegisteredModel("xfer-sample", "4", "champion")
    text = mlflow_log.description(result, run_results.tracked(registered_model=registered), "data/sample")
    assert text.startswith("### Blessed and **pushed**, registered as `xfer-sample` version 4 (alias `champion`).")
    assert "Pushed to `/serving/17`." in text


def test_the_outcome_follows_the_blessing_and_the_comparison():
    assert run_results.evaluation(blessed=False).outcome == "blocked_by_gate"
    assert run_results.evaluation(blessed=True).outcome == "pushed"
    is_champion = run_results.comparison(compared=False, is_champion=True)
    assert run_results.evaluation(blessed=True, comparison=is_champion).outcome == "already_champion"
    # A champion that is not the candidate: blessed means pushed.
    assert run_results.evaluation(blessed=True, comparison=run_results.comparison()).outcome == "pushed"
