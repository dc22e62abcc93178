"""`[rollout]` in mlfn.toml: defaults, a full canary setting, and every bad value refused with field and expectation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlfn.runtime.errors import SpecError
from mlfn.runtime.spec import load_spec

MakeDir = Callable[..., Path]


def test_default_rollout_moves_all_traffic_at_once(make_dir: MakeDir) -> None:
    rollout = load_spec(make_dir()).settings.rollout
    assert (rollout.strategy, rollout.percent, rollout.interval_minutes) == ("all_at_once", 10, 5)
    assert rollout.metrics == ()


def test_canary_with_alarms_and_a_user_metric(make_dir: MakeDir) -> None:
    rollout = load_spec(make_dir(
        '[rollout]\nstrategy = "canary"\npercent = 20\ninterval_minutes = 2\nerror_count = 3\np99_ms = 250\n'
        '[[rollout.metrics]]\nnamespace = "Shop"\nmetric = "BadAnswers"\ndimensions = ["Model=iris"]\n'
        'statistic = "p90"\nthreshold = 4\n'
    )).settings.rollout
    assert (rollout.strategy, rollout.percent, rollout.interval_minutes) == ("canary", 20, 2)
    assert (rollout.error_count, rollout.p99_ms) == (3, 250.0)
    assert rollout.metrics[0].dimensions == ("Model=iris",)
    assert rollout.metrics[0].comparison == "GreaterThanThreshold"


@pytest.mark.parametrize(
    ("toml", "field", "expected"),
    [
        ('[rollout]\nstrategy = "bluegreen"\n', "rollout.strategy", "one of all_at_once, canary, linear"),
        ("[rollout]\npercent = 100\n", "rollout.percent", "from 1 to 99"),
        ("[rollout]\npercent = 0\n", "rollout.percent", "from 1 to 99"),
        ("[rollout]\ninterval_minutes = 0\n", "rollout.interval_minutes", "from 1"),
        ("[rollout]\nerror_rate_percent = 101\n", "rollout.error_rate_percent", "from 0 to 100"),
        ('[rollout]\np99_ms = "fast"\n', "rollout.p99_ms", "a number"),
        ("[rollout]\nstep = 5\n", "rollout.step", "known keys"),
        ('[[rollout.metrics]]\nmetric = "M"\n', "rollout.metrics[0].namespace", "a non-empty string"),
        ('[[rollout.metrics]]\nnamespace = "N"\nmetric = "M"\ndimensions = ["Model"]\n',
         "rollout.metrics[0].dimensions[0]", "Name=Value"),
        ('[[rollout.metrics]]\nnamespace = "N"\nmetric = "M"\nstatistic = "Median"\n',
         "rollout.metrics[0].statistic", "pNN"),
        ('[[rollout.metrics]]\nnamespace = "N"\nmetric = "M"\ncomparison = ">"\n',
         "rollout.metrics[0].comparison", "GreaterThanThreshold"),
    ],
)
def test_bad_rollout_values_are_refused(make_dir: MakeDir, toml: str, field: str, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(make_dir(toml))
    assert caught.value.field == field
    assert expected in str(caught.value)
