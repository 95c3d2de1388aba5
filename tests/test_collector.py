"""The collector threshold every sweeper process sets at its start."""

import gc

import pytest

from sweeper.collector import YOUNG_THRESHOLD, collect_less_often


@pytest.fixture
def thresholds():
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("thresholds")
def test_the_young_generation_is_collected_less_often_and_the_older_ones_as_before():
    gc.set_threshold(700, 10, 10)
    collect_less_often()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)


@pytest.mark.usefixtures("thresholds")
def test_a_threshold_set_higher_is_kept():
    gc.set_threshold(YOUNG_THRESHOLD * 2, 5, 5)
    collect_less_often()
    assert gc.get_threshold() == (YOUNG_THRESHOLD * 2, 5, 5)
