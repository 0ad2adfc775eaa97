"""Math grader: equivalence table, extraction table, qwen-compat leniencies, time limits from threads
and process pools, and known answers (GSM8K / MATH-500 gold solutions grade 1.0 against their gold)."""
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest
from data_helpers import needs_shared_data, shared_data_dir

from domainspec.eval.grader.pool import check_body
from domainspec.eval.grader.math_grader import (GRADER_VERSION, Grade, MathGrader, extract_answer, gsm8k_gold,
                                         is_equiv, math_gold, normalize_answer)

DATA = shared_data_dir()
POWER_TOWER = r"2^{2^{2^{2^{2^{2^{2^{2}}}}}}}"
LIMIT_S = 2.0

EQ = [
    # (prediction, gold, equal) in strict mode
    (r"\frac{1}{2}", "0.5", True),
    (r"\dfrac{3}{4}", r"\frac34", True),
    ("0.75", r"\frac{3}{4}", True),
    ("3/4", r"\frac{3}{4}", True),
    (r"\frac{6}{8}", r"\frac{3}{4}", True),
    (r"\frac{2}{3}", "0.67", True),  # the gold is the approximation: its 2 places set the precision
    ("0.6667", r"\frac{2}{3}", True),
    ("0.3", r"\frac{1}{3}", False),
    ("0.333", r"\frac{1}{3}", False),  # 3 significant digits is an estimate
    ("0.3333", r"\frac{1}{3}", True),
    ("3.14", r"\pi", False),
    ("3.1416", r"\pi", True),
    (r"\pi", "3.14", True),
    ("18", "18.00", True),
    ("18.0", "18", True),
    ("-3", "- 3", True),
    ("1,000", "1000", True),
    (r"10,\!000", "10000", True),
    (r"\$18", "18", True),
    (r"18 \text{ dollars}", "18", True),
    (r"5\text{ cm}^2", "5", True),
    (r"30^\circ", "30", True),
    (r"30^{\circ}", "30", True),
    (r"45\%", "45", True),
    ("2x+3", "3+2x", True),
    ("x^2+2x+1", "(x+1)^2", True),
    ("x^2+2x+1", "(x-1)^2", False),
    (r"\sqrt{8}", r"2\sqrt{2}", True),
    (r"\sqrt{8}", r"2\sqrt{3}", False),
    (r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt{3}}", True),
    (r"2\sqrt{2}", "2.83", True),
    (r"2\sqrt{2}", "2.82", True),  # truncation to the gold's places is accepted too
    (r"2\sqrt{2}", "2.84", False),
    (r"\frac{1}{\sqrt{2}}", r"\frac{\sqrt2}{2}", True),
    ("6-5i", "6 - 5i", True),
    ("(1+i)^2", "2i", True),
    (r"288\pi", r"288 \pi", True),
    (r"\pi r^2", r"r^2\pi", True),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})", True),
    ("(3, 4)", "(4, 3)", False),
    ("(1, 2, 3)", "(1,2,3)", True),
    ("[1, 2]", "(1, 2)", False),
    (r"(-\infty, 3]", r"(-\infty,3]", True),
    (r"(-\infty, 3)", r"(-\infty,3]", False),
    (r"(0,9) \cup (9,36)", r"(0,9)\cup(9,36)", True),
    (r"(9,36) \cup (0,9)", r"(0,9)\cup(9,36)", True),
    (r"\{1, 2, 3\}", r"\{3, 2, 1\}", True),
    ("1, 2, 3", "3, 2, 1", True),
    ("1, 2", "1, 2, 3", False),
    (r"3 \pm 2\sqrt{2}", r"3+2\sqrt{2}, 3-2\sqrt{2}", True),
    (r"\pm 3", "3", False),
    ("x = 5", "5", True),
    ("x = 5", "6", False),
    (r"y = 2x + 3", r"y = 3 + 2x", True),
    (r"x \geq 2", r"2 \le x", True),
    (r"x > 2", r"x \geq 2", False),
    (r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", True),
    (r"\begin{bmatrix} 1 & 2 \\ 3 & 4 \end{bmatrix}", r"\begin{pmatrix}1&2\\3&5\end{pmatrix}", False),
    (r"\text{Evelyn}", "Evelyn", True),
    (r"\text{(B)}", "B", True),
    ("B", "C", False),
    (r"137 \frac{1}{2}", "137.5", True),
    (r"\frac{275}{2}", r"137 \frac{1}{2}", True),
    ("2^{10}", "1024", True),
    (r"\binom{5}{2}", "10", True),
    ("5!", "120", True),
    (r"\log_2 8", "3", True),
    (r"\sin^2 x + \cos^2 x", "1", True),
    (r"\frac{x+1}{x-1}", r"1+\frac{2}{x-1}", True),
    (r"a+b", "a-b", False),
    ("32, 349", "32349", False),
    (r"32,\! 349", "32349", True),
    ("0", "-0", True),
    (r"\infty", r"\infty", True),
    (r"-\infty", r"\infty", False),
    ("", "5", False),
    (r"\frac{1}{0}", "5", False),
    (r"x \in (-\infty, 2) \cup (3, \infty)", r"(-\infty,2)\cup(3,\infty)", True),
    (r"\text{no solution}", "No solution", True),
    (r"50\%", "0.5", False),  # convention: a percent answer is compared as its number of percent
    (r"e^{i\pi}", "-1", True),
    (r"1.5 \times 10^{3}", "1500", True),
    (r"(5, \infty)", "x > 5", True),   # gold relation accepts the interval ...
    ("x > 5", r"(5, \infty)", False),  # ... a gold interval does not accept a relation
    (r"\sqrt[3]{8}", "2", True),
    (r"a=2, b=3", "2, 3", True),
]


@pytest.mark.parametrize("pred,gold,equal", EQ, ids=[f"{i}" for i in range(len(EQ))])
def test_strict_equivalence_table(pred, gold, equal):
    assert is_equiv(pred, gold) is equal


def test_equivalence_table_is_large_and_balanced():
    assert len(EQ) >= 60
    assert sum(e for _, _, e in EQ) >= 20 and sum(not e for _, _, e in EQ) >= 20


UNITS = [
    # (prediction, gold, equal) in strict mode: trailing unit annotations are dropped, content is not
    # Chinese units after a number or a closing bracket
    ("880米", "880", True),
    ("880米", "88", False),
    ("12.5 元", "12.5", True),
    ("9页", "9", True),
    ("7个", "7", True),
    ("5千克", "5", True),
    ("3 平方米", "3", True),
    ("30天", "31", False),
    (r"\frac{1}{2}厘米", r"\frac12", True),
    ("(3, 4)个", "(3,4)", True),
    ("12米/秒", "12", True),
    ("880米", "880 米", True),
    ("小明", "小明", True),   # an answer of Chinese words stays as it is
    ("小明", "小红", False),
    ("3个红色的苹果", "3", False),  # a phrase, not a 1-4 character unit
    # units joined by "/" after a number
    ("18 km/h", "18", True),
    ("18 m/s", "18", True),
    ("18 mi/hr", "18", True),
    (r"18 \text{m/s}", "18", True),
    ("9.8 m/s^2", "9.8", True),
    ("18 km/h", "19", False),
    ("18 km/h", "18 m/s", True),  # the unit is an annotation on both sides
    # fractions keep their letters and digits
    ("3/4", r"\frac{3}{4}", True),
    ("3/4", "3", False),
    ("x/2", r"\frac{x}{2}", True),
    ("x/2", "x", False),
    ("2 a/b", r"\frac{2a}{b}", True),
    ("2 a/b", "2", False),
    (r"\frac{a}{b}", "a", False),
    ("18 sin/cos", "18", False),
]


@pytest.mark.parametrize("pred,gold,equal", UNITS, ids=[f"{i}" for i in range(len(UNITS))])
def test_trailing_units_table(pred, gold, equal):
    assert is_equiv(pred, gold) is equal


@pytest.mark.parametrize("answer,normalized", [("880米", "880"), ("12.5 元", "12.5"), ("小明", "小明"),
                                               ("18 km/h", "18"), (r"18\text{ m/s}", "18"),
                                               ("3/4", "3/4"), ("x/2", "x/2"), ("2 a/b", "2 a/b")])
def test_trailing_units_normalize(answer, normalized):
    assert normalize_answer(answer) == normalized


EXTRACT = [
    ("So the total is $\\boxed{42}$.", "42"),
    ("Thus \\boxed{\\frac{1}{2}} is the probability.", "\\frac{1}{2}"),
    ("$\\boxed{\\frac{\\sqrt{3}}{2}}$", "\\frac{\\sqrt{3}}{2}"),
    ("We get \\fbox{7} points.", "7"),
    ("first \\boxed{3} then corrected: \\boxed{5}", "5"),
    ("The roots are $\\boxed{2}$ and $\\boxed{3}$.", "2, 3"),
    ("So $\\boxed{15}$, or equivalently $\\boxed{15.0}$.", "15.0"),
    ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "72"),
    ("#### 1,000", "1,000"),
    ("Therefore, the answer is 18.", "18"),
    ("The answer is $\\frac{3}{4}$. Done.", "\\frac{3}{4}"),
    ("Final Answer: The final answer is $5\\sqrt{2}$. I hope it is correct.", "5\\sqrt{2}"),
    ("Final Answer: The largest $n$ is 34.", "34"),
    ("She pays 3 * 6 = 18 dollars a day, so 18 * 7 = 126 dollars a week.", "126"),
    ("It costs $1,250 in total, which is the final cost.", "1250"),
    ("Therefore $x < 5$ is the solution.", "x < 5"),
    ("$125$ miles", "$125$ miles"),
    ("10 units", "10 units"),
    ("\\boxed{x^{2}+\\{1\\}}", "x^{2}+\\{1\\}"),
    ("unfinished \\boxed{\\frac{1}{2", "\\frac{1}{2"),
    ("No numbers here at all, sorry about that.", None),
]


@pytest.mark.parametrize("reply,expected", EXTRACT, ids=[f"{i}" for i in range(len(EXTRACT))])
def test_extraction_table(reply, expected):
    assert extract_answer(reply) == expected


def test_qwen_extraction_conventions():
    assert extract_answer("so \\boxed{12}", "qwen-compat") == "12"
    assert extract_answer("The answer is 7.", "qwen-compat") == "7"
    # no answer phrase: Qwen falls back to the last number of the reply (leniency 6)
    assert extract_answer("I think it is about 3 or 4 apples, hard to say", "qwen-compat") == "4"


def test_golds():
    assert gsm8k_gold("... so 5 + 7 = 12\n#### 1,200") == "1200"
    with pytest.raises(ValueError, match="####"):
        gsm8k_gold("no marker")
    assert math_gold({"answer": "\\frac12", "solution": "\\boxed{0.5}"}) == "\\frac12"
    assert math_gold({"solution": "so \\boxed{\\frac{1}{2}}."}) == "\\frac{1}{2}"
    with pytest.raises(ValueError, match="no 'answer'"):
        math_gold({"unique_id": "x", "solution": "nothing"})


# ---------------------------------------------------------------- qwen-compat leniencies
@pytest.mark.parametrize("pred,gold,qwen,strict", [
    ("(+5)(b+2)", "(a+5)(b+2)", True, False),          # unit word "a" deleted
    ("0.25", "25", True, False),                        # g/100 accepted
    ("2500", "25", True, False),                        # g*100 accepted
    ("25.002", "25", True, False),                      # rel_tol 1e-4
    ("25.01", "25", False, False),
    ("mn=3", "3", True, False),                         # lhs of at most 2 characters dropped
    ("[1,2]", "(1,2)", True, False),                    # bracket kinds ignored
    ("32, 349", "32349", True, False),                  # spaces removed: one number
    ("\\frac{1}{2}", "0.5", True, True),
])
def test_qwen_leniencies(pred, gold, qwen, strict):
    assert is_equiv(pred, gold, "qwen-compat") is qwen
    assert is_equiv(pred, gold, "strict") is strict


def test_qwen_strip_string_mangles_sec_and_pm():
    assert "sec" not in normalize_answer("\\sec^2(y)", "qwen-compat")
    assert normalize_answer("\\sec^2(y)") == "\\sec^2(y)"
    assert "pm" not in normalize_answer("\\pm 2021", "qwen-compat")


def test_qwen_majority_is_exact_string_strict_clusters():
    answers = ["\\frac{1}{2}", "0.5", "1/2", "3", "3"]
    # qwen: "0.5" -> "\frac{1}{2}" and "1/2" -> "\frac{1}{2}" (its own rewrites), so 3 votes
    assert MathGrader("qwen-compat").majority_vote(answers) == "\\frac{1}{2}"
    assert MathGrader("qwen-compat").majority_vote(["0.50", "2/4", "3", "3"]) == "3"
    # strict clusters by equivalence: 0.50 and 2/4 are one answer, tie with 3 -> first cluster
    assert MathGrader("strict").majority_vote(["0.50", "2/4", "3", "3", "\\frac{1}{2}"]) == "0.50"
    assert MathGrader("strict").majority_vote([None, ""]) is None


def test_accuracy_conventions():
    per_task = [[True, False, False], [False, True, True]]
    assert MathGrader("strict").accuracy(per_task) == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert MathGrader("qwen-compat").accuracy(per_task) == 0.5


def test_grade_and_grade_many_keep_order():
    grader = MathGrader()
    assert grader.version == GRADER_VERSION and grader.mode == "strict"
    assert grader.grade("so $\\boxed{\\dfrac{1}{2}}$", "0.5") == Grade("\\dfrac{1}{2}", True)
    pairs = [(f"\\boxed{{{i} + x}}", f"x + {i % 3}") for i in range(12)]
    grades = grader.grade_many(pairs)
    assert [g.correct for g in grades] == [i % 3 == i for i in range(12)]
    assert [g.extracted for g in grades] == [f"{i} + x" for i in range(12)]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="grader mode 'loose'"):
        is_equiv("1", "1", mode="loose")
    with pytest.raises(ValueError, match="timeout_s"):
        MathGrader(timeout_s=0)
    assert is_equiv(None, "1") is False


def test_guarded_path_matches_direct_body():
    """Same answers through the worker process and by calling the check body in this process."""
    for pred, gold, equal in EQ[:30]:
        p, g = normalize_answer(pred), normalize_answer(gold)
        assert check_body("strict", p, g) is is_equiv(pred, gold) is equal


# ---------------------------------------------------------------- time limit
def _timed_tower(timeout_s: float):
    # start this process's worker outside the timed part (a fresh pair: a forked child inherits
    # the parent's result cache, and this process may have checked it before)
    unique = f"{os.getpid()}{time.monotonic_ns()}"
    is_equiv(f"x+{unique}", f"{unique}+x", timeout_s=60)
    start = time.monotonic()
    result = is_equiv(POWER_TOWER, "7", timeout_s=timeout_s)
    return result, time.monotonic() - start


def test_pathological_pair_main_thread_within_limit():
    result, elapsed = _timed_tower(LIMIT_S)
    assert result is False and elapsed < LIMIT_S + 1.0
    # the replacement worker answers normally afterwards
    assert is_equiv("x^2-1", "(x-1)(x+1)") is True


def test_pathological_pair_from_worker_thread_within_limit():
    with ThreadPoolExecutor(max_workers=2) as ex:
        result, elapsed = ex.submit(_timed_tower, LIMIT_S).result(timeout=60)
    assert result is False and elapsed < LIMIT_S + 1.0


def test_pathological_pair_from_process_pool_within_limit():
    with ProcessPoolExecutor(max_workers=1) as ex:
        result, elapsed = ex.submit(_timed_tower, LIMIT_S).result(timeout=120)
        same = ex.submit(is_equiv, "(1,4.5)", "(1,\\frac{9}{2})").result(timeout=60)
    assert result is False and elapsed < LIMIT_S + 1.0
    assert same is True


# ---------------------------------------------------------------- known answers
def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@needs_shared_data("gsm8k/test.jsonl")
def test_gsm8k_gold_solutions_score_one():
    rows = _jsonl(DATA / "gsm8k" / "test.jsonl")
    assert len(rows) == 1319
    pairs = [(r["answer"], gsm8k_gold(r["answer"])) for r in rows]
    grades = MathGrader().grade_many(pairs)
    assert sum(g.correct for g in grades) == 1319


@needs_shared_data("math/math500_test.jsonl")
@pytest.mark.parametrize("mode", ["strict", "qwen-compat"])
def test_math500_gold_solutions_score_one(mode):
    rows = _jsonl(DATA / "math" / "math500_test.jsonl")
    assert len(rows) == 500
    grades = MathGrader(mode).grade_many([(r["solution"], math_gold(r)) for r in rows])
    wrong = [(r["unique_id"], g.extracted) for r, g in zip(rows, grades) if not g.correct]
    assert wrong == []


def test_same_answers_from_threads_as_from_main_thread():
    from domainspec.eval.grader import math_grader

    expected = [is_equiv(p, g) for p, g, _ in EQ]
    math_grader._cache.clear()  # make the threads do the guarded work again
    with ThreadPoolExecutor(max_workers=4) as ex:
        got = list(ex.map(lambda row: is_equiv(row[0], row[1]), EQ))
    assert got == expected == [e for _, _, e in EQ]


@pytest.mark.parametrize("pred,gold,equal", [
    ("935000", "9.35e5", True), ("935000.0", "9.35e5", True), ("9.35 \\times 10^5", "9.35e5", True),
    ("4.46\\times10^{19}", "4.46e19", True), ("0.0012", "1.2E-3", True), ("935001", "9.35e5", False),
    ("9.35", "9.35e5", False), ("2e", "2e", True), ("3e", "3e1", False),
])
def test_e_notation_golds_are_numbers(pred, gold, equal):
    """Minerva Math writes golds as 9.35e5; LaTeX would read 9.35 * e * 5."""
    assert is_equiv(pred, gold, "strict") is equal
