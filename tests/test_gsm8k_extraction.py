"""GSM8K answer extraction in currency mode (``extract_final(reply, currency=True)``), graded by the
GSM8K grader (``MathGrader(currency=True)``: against a numeric gold, the answer's one number).

Table rows are replies written the way models answer GSM8K: money with ``$`` before numbers,
calculator annotations, ``A: N`` lines, ``#### N``, ``\\boxed{}``, units, markdown. Negative rows
check that a wrong final answer stays wrong and an intermediate number is not taken.
"""
import pytest
from data_helpers import needs_shared_data, shared_data

from domainspec.eval.benchmarks.gsm8k import GSM8K, gsm8k_gold
from domainspec.eval.grader.extract import extract_final
from domainspec.eval.grader.math_grader import MathGrader, is_equiv

GSM8K_GRADER = MathGrader("strict", dataset="gsm8k", currency=True)

# (reply, gold)
RIGHT = [
    ("She sells them for $2 per egg and has 9 available for sale so 2 * 9 = $<<2*9=18>>18 per day\nA: 18",
     "18"),
    ("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18 every day.\n"
     "#### 18", "18"),
    ("Janet has 16 - 3 - 4 = 9 eggs left. She sells them at $2 each, so she makes 9 * $2 = $18.\n"
     "The answer is $18.", "18"),
    ("The robe needs 2 / 2 = 1 bolt of white fiber, so 2 + 1 = 3 bolts in total.\nThe final answer is 3.", "3"),
    ("The house costs $80,000 and repairs cost $50,000, so he spent $130,000. The new value is "
     "$80,000 * 2.5 = $200,000.\nProfit: $200,000 - $130,000 = $70,000\n#### 70000", "70000"),
    ("James runs 3 sprints 3 times a week, so 3 * 3 = 9 sprints. Each is 60 meters, so 9 * 60 = "
     "540 meters a week.\nA: 540 meters", "540"),
    ("Each chicken gets 3 cups, so 20 * 3 = 60 cups a day. She gave 15 + 25 = 40 cups already.\n"
     "So the final meal needs 60 - 40 = 20 cups.\n\\boxed{20}", "20"),
    ("One glass costs $5 and every second one costs 60% of that, $3. For 16 glasses: 8 * $5 + 8 * $3 = "
     "$40 + $24 = $64.\n\nThe answer is $\\boxed{\\$64}$.", "64"),
    ("Toulouse has 2 * 20 = 40 sheep, Charleston 4 * 20 = 80.\nTogether: 20 + 40 + 80 = 140 sheep.\n"
     "Answer: 140", "140"),
    ("**Step 1:** Cost of the tickets: 4 * $12.50 = $50.\n**Step 2:** Snacks: $8.\n"
     "**Answer:** $58", "58"),
    ("Carla downloads 200 GB * 0.4 = 80 GB before the restart, at 2 GB/minute that is 40 minutes. "
     "Then 20 minutes of restart and 200 / 2 = 100 minutes.\nThe answer is 160 minutes.", "160"),
    ("John drives 3 hours at 60 mph = 180 miles out. On the way back he covers 2 * 30 + 0.5 * 80 "
     "= 100 miles, so he is 180 - 100 = 80 miles from home.\n#### 80", "80"),
    ("Eliza works 40 hours at $10 = $400, and 5 overtime hours at $10 * 1.2 = $12, so $60.\n"
     "Total earnings: $400 + $60 = $460.\nA: $460", "460"),
    ("The store sold 1,234 apples on Monday and 0 on Tuesday.\nThe answer is 1,234.", "1234"),
    ("Total = 3 * $6.00 = $18.00\nThe answer is $18.00.", "18"),
    ("She spent $7 more than she had, so her balance is -$7.\nThe answer is -7.", "-7"),
    ("The temperature was 5 degrees and fell 12 degrees, so it is 5 - 12 = -7 degrees.\n#### -7", "-7"),
    ("A sandwich costs $4.50 and she buys 1, so she pays $4.50.\nA: $4.50", "4.5"),
    ("Mark has 3 boxes of 6 eggs, so 3 * 6 = <<3*6=18>>18 eggs.\nHe has **18** eggs.", "18"),
    ("The answer is 18. She makes that much every day at the farmers' market.", "18"),
    ("Kylar pays 8 * $5 = $40 for the full-price glasses and 8 * $3 = $24 for the rest.\n"
     "He pays $40 + $24 = $<<40+24=64>>64 in total.", "64"),
    ("The train travels 120 km in 2 hours, so its speed is 120 / 2 = 60 km/h.\nA: 60 km/h", "60"),
    ("She scored 45 out of 50, which is 45 / 50 * 100 = 90%.\nThe answer is 90%.", "90"),
    ("Let $x$ be the number of eggs she sells. Then $x = 16 - 3 - 4 = 9$.\n"
     "She makes $9 \\times 2 = 18$ dollars a day.", "18"),
    ("The total cost is $\\$12 \\times 3 = \\$36$.\n\nTherefore the answer is $\\boxed{36}$.", "36"),
    ("Each book is $ 15, so 4 books cost $ 60.\n\n**Final Answer:** $ 60", "60"),
    ("He needs 3 * 4 = 12 feet of wood for the shelves and 2 * 5 = 10 feet for the sides.\n"
     "12 + 10 = 22\nThe answer is 22 feet of wood.", "22"),
    ("Weekly pay: 5 days * 8 hours * $15/hour = $600.\nIn 4 weeks: 4 * $600 = $2,400\n#### 2,400", "2400"),
    ("The recipe needs 2.5 cups per batch and she makes 4 batches: 2.5 * 4 = 10 cups of flour.\n"
     "A: 10", "10"),
    ("There are 24 students; half of them, 24 / 2 = 12, like math, and a third of the rest,\n"
     "12 / 3 = 4, like art.\nSo the answer is: 4 students.", "4"),
    ("\\[ 16 - 3 - 4 = 9 \\]\n\\[ 9 \\times 2 = 18 \\]\nJanet makes $\\boxed{18}$ dollars every day.", "18"),
    ("The phone costs $1,000 and he pays $ 250 a month, so it takes 1000 / 250 = 4 months.\n"
     "The final answer is 4 months. I hope it is correct.", "4"),
    ("Tom buys 3 shirts at $12.99 each: 3 * 12.99 = 38.97 dollars.\nA: 38.97", "38.97"),
    ("Step 1: 20 - 8 = 12 cookies left.\nStep 2: 12 / 4 = 3 cookies per friend.\n**3**", "3"),
    ("She saves $25 a week for 12 weeks: 25 * 12 = 300.\nSo she saves $300 in total, and she buys a bike.",
     "300"),
    ("The discount is 20% of $50 = $10, so the jacket costs $50 - $10 = $40.\nAnswer: The jacket costs $40.",
     "40"),
    ("It takes 2 hours to fill 1 pool, so 5 pools take 2 * 5 = 10 hours.\nA: 2 * 5 = 10", "10"),
    ("Profit per cake = $8.50 - $3.25 = $5.25; for 40 cakes: 40 * $5.25 = $210.\n#### 210", "210"),
    ("There were 48 clips in April and 48 / 2 = 24 in May, 48 + 24 = 72 in all.\n"
     "The answer is $72$.", "72"),
    ("Total distance: 15 km + 27 km = 42 km\n\n$\\boxed{42 \\text{ km}}$", "42"),
]

# (reply, a gold the extracted answer must NOT equal)
WRONG = [
    ("She sells 9 eggs at $2, so she makes 9 + 2 = $11 a day.\nA: 11", "18"),
    ("Janet has 16 - 3 - 4 = 9 eggs left to sell.\nShe makes 9 * 2 = $18 each day.\nA: 18", "9"),
    ("The first box has $5 and the second $7.\nThe answer is 12.", "5"),
    ("He runs 3 * 3 = 9 sprints of 60 meters.\n#### 540", "9"),
    ("Total = $18.50\nA: $18.50", "18"),
]


@pytest.mark.parametrize("reply,gold", RIGHT, ids=[f"right{i}" for i in range(len(RIGHT))])
def test_currency_extraction_is_graded_right(reply, gold):
    grade = GSM8K_GRADER.grade(reply, gold)
    assert grade.correct, grade.extracted


@pytest.mark.parametrize("reply,gold", WRONG, ids=[f"wrong{i}" for i in range(len(WRONG))])
def test_wrong_or_intermediate_answers_are_graded_wrong(reply, gold):
    grade = GSM8K_GRADER.grade(reply, gold)
    assert not grade.correct, grade.extracted


def test_table_is_large_enough():
    assert len(RIGHT) >= 35 and len(WRONG) >= 3


def test_currency_dollars_open_no_math_the_brief_example():
    reply = ("She sells them for $2 per egg and has 9 available for sale so 2 * 9 = $<<2*9=18>>18 per day\n"
             "A: 18")
    assert extract_final(reply, currency=True) == "18"


def test_math_style_dollars_unchanged_without_currency():
    assert extract_final("$x=2$ and $y=3$, so $\\boxed{5}$") == "5"
    assert extract_final("$x=2$ and $y=3$, so $\\boxed{5}$", currency=False) == "5"
    assert extract_final("Since $x=2$ and $y=3$, we get $x+y=5$ in the end.") == "x+y=5"
    assert extract_final("$x=2$ and $y=3$") == "$x=2$ and $y=3$"  # short: the whole reply, as before
    # without currency "$2 and then $" is a math span; with it both dollars are money
    assert extract_final("She pays $2 and then $3.") == "She pays $2 and then $3"
    assert extract_final("She pays $2 and then $3.", currency=True) == "3"
    # inline math that starts with a number stays math in currency mode too
    assert extract_final("We get $5$ and then $7 + 1 = 8$", currency=True) == "7 + 1 = 8"
    assert GSM8K_GRADER.grade("We get $5$ and then $7 + 1 = 8$", "8").correct  # its number, against 8


def test_annotations_never_supply_the_answer():
    assert extract_final("She makes 9 * 2 = <<9*2=18>> dollars.", currency=True) == "2"
    assert extract_final("Natalia sold 48/2 = <<48/2=24>>24 clips in May.") == "24"


def test_gsm8k_benchmark_reads_dollars_as_currency():
    assert GSM8K.dollar_is_currency is True


@needs_shared_data("gsm8k/test.jsonl")
def test_every_gsm8k_gold_grades_against_itself():
    tasks = GSM8K.load(str(shared_data("gsm8k/test.jsonl")))
    golds = [gsm8k_gold(t.data["answer"]) for t in tasks]
    right = sum(is_equiv(extract_final(f"#### {g}", currency=True), g, "strict") for g in golds)
    assert (right, len(golds)) == (1319, 1319)
    # the worked solutions themselves, annotations and all, give their gold too
    solved = sum(is_equiv(extract_final(t.data["answer"], currency=True), g, "strict") for t, g in zip(tasks, golds))
    assert solved == 1319
