"""Math answer accuracy as an ``evaluate`` metric, loadable with no hub access: ``evaluate.load("<this folder>")``.

Usage::

    metric = evaluate.load(str(Path(domainspec.eval.__file__).parent / "metrics" / "math_accuracy"))
    metric.compute(predictions=["... so the answer is \\boxed{\\frac12}"], references=["0.5"], mode="strict")
    # {"accuracy": 1.0}

``predictions`` are whole model responses, ``references`` gold answers; the
answer is extracted and compared by the project's one grader
(``domainspec.eval.grader.math_grader.MathGrader``, mode ``strict`` or ``qwen-compat``).
"""
import datasets
import evaluate

_DESCRIPTION = "Final-answer accuracy of math responses (boxed / 'The answer is' / '#### N' / last number)."
_KWARGS = """
Args:
    predictions: list of model responses (str).
    references: list of gold answers (str).
    mode: "strict" (default) or "qwen-compat".
Returns:
    dict "accuracy" -> fraction of responses whose extracted answer equals the gold answer.
"""


class MathAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}))

    def _compute(self, predictions, references, mode="strict"):
        from domainspec.eval.grader.math_grader import MathGrader

        grades = MathGrader(mode=mode).grade_many(list(zip(predictions, references)))
        return {"accuracy": sum(g.correct for g in grades) / len(grades) if grades else 0.0}
