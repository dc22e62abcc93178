"""The emulator's metric-math parser and per-period evaluator (`mlfn.cli.local.metric_math`), without eval."""

from __future__ import annotations

import pytest

from mlfn.cli.local.metric_math import MetricMathError, evaluate, parse, references


@pytest.mark.parametrize(("expression", "values", "expected"), [
    ("100 * errors / requests", {"errors": 3, "requests": 10}, 30.0),
    ("100 * errors / requests", {"errors": 3, "requests": 0}, None),  # division by zero: no datapoint
    ("100 * errors / requests", {"errors": None, "requests": 5}, 0.0),  # a missing value is 0 beside a value
    ("100 * errors / requests", {"errors": 2, "requests": None}, None),  # ... so 2 / 0: dropped
    ("100 * errors / requests", {"errors": None, "requests": None}, None),  # no series has a value: none
    ("m1 - m2", {"m1": None, "m2": 4}, -4.0),
    ("m1 < m2", {"m1": 0, "m2": None}, 0.0),  # the guide's comparison example: [0] < [-] is 0
    ("m1 > 15 AND m2 > 15", {"m1": 20, "m2": None}, 0.0),  # ... and [20] > 15 AND [-] > 15 is 0
    ("100 * FILL(errors, 0) / requests", {"errors": None, "requests": 5}, 0.0),
    ("IF(m2 >= 20, 100 * FILL(m1, 0) / m2, 0)", {"m1": 3, "m2": 10}, 0.0),
    ("IF(m2 >= 20, 100 * FILL(m1, 0) / m2, 0)", {"m1": 3, "m2": 30}, 10.0),
    ("IF(m1 > 0 AND m2 > 0, m1)", {"m1": 0, "m2": 1}, None),
    ("-(1 + 2) * 3 - -1 + 2.5e1", {}, 17.0),
    ("e1 - m_2 / 2", {"e1": 4, "m_2": 2}, 3.0),
])
def test_evaluates_per_period(expression: str, values: dict[str, float | None], expected: float | None) -> None:
    assert evaluate(parse(expression), values) == expected


def test_references_are_the_query_ids() -> None:
    assert references(parse("IF(m2 >= 20, 100 * FILL(m1, 0) / m2, 0)")) == {"m1", "m2"}


@pytest.mark.parametrize(("expression", "named"), [
    ("1 +", "expected more"), ("SUM(METRICS())", "SUM is not supported"), ("M1 * 2", "'M1' is not a query id"),
    ("2 $ 3", "unexpected '$ 3'"), ("(m1", "expected )"), ("FILL(m1)", "FILL takes 2 to 2 arguments"),
    ("__import__('os')", "unexpected"),
])
def test_bad_expression_is_a_clear_error(expression: str, named: str) -> None:
    with pytest.raises(MetricMathError, match=named.replace("(", r"\(").replace(")", r"\)").replace("$", r"\$")):
        parse(expression)
