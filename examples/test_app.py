"""Tests for the example shop, written as its developers would: with ``flag_evaluations``.

Installing flagscope is enough for the fixture to exist. Run with ``make test`` or
``.venv/bin/pytest examples``; ``make flag-coverage`` runs them with flag coverage
against the shop's ``app/flags.json``, which shows the variant no test exercises
(no test checks out as a VIP).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from app.shop import FLAGS_FILE, checkout, configure_flags

from flagscope.testing import FlagEvaluationCapture


@pytest.fixture(autouse=True)
def shop_flags() -> Iterator[None]:
    configure_flags()
    yield
    configure_flags()


def test_regular_users_keep_the_old_checkout(flag_evaluations: FlagEvaluationCapture) -> None:
    receipt = checkout("alice", [2000, 3000])

    assert receipt.total_cents == 5000
    flag_evaluations.assert_evaluated(
        "new-checkout", value=False, variant="off", reason="targeting_match", targeting_key="alice"
    )
    flag_evaluations.assert_not_evaluated("discount-percent")
    flag_evaluations.assert_no_errors()


def test_beta_testers_get_the_discount(flag_evaluations: FlagEvaluationCapture) -> None:
    receipt = checkout("beta-tester", [2000, 3000])

    assert receipt.total_cents == 4500
    assert receipt.free_shipping is False
    assert flag_evaluations.snapshot() == [
        {
            "flag_key": "new-checkout",
            "value": True,
            "variant": "on",
            "reason": "targeting_match",
            "targeting_key": "beta-tester",
            "error_type": None,
        },
        {
            "flag_key": "discount-percent",
            "value": 10,
            "variant": "ten",
            "reason": "targeting_match",
            "targeting_key": "beta-tester",
            "error_type": None,
        },
        {
            "flag_key": "shipping-options",
            "value": {"methods": ["post"], "free_over_cents": 5000},
            "variant": "standard",
            "reason": "static",
            "targeting_key": "beta-tester",
            "error_type": None,
        },
    ]


@pytest.mark.flagscope(
    expected_flags=["new-checkout", "discount-percent", "shipping-options"], strict=True
)
def test_checkout_evaluates_only_its_own_flags(flag_evaluations: FlagEvaluationCapture) -> None:
    checkout("beta-tester", [100])
    checkout("alice", [100])

    assert len(flag_evaluations) == 5
    flag_evaluations.assert_evaluated("shipping-options", times=2)


def test_a_missing_flag_means_no_discount(
    flag_evaluations: FlagEvaluationCapture, tmp_path: Path
) -> None:
    definitions = json.loads(FLAGS_FILE.read_text())
    del definitions["flags"]["discount-percent"]
    flags_file = tmp_path / "flags.json"
    flags_file.write_text(json.dumps(definitions))
    configure_flags(flags_file)

    receipt = checkout("beta-tester", [1000])

    assert receipt.total_cents == 1000
    flag_evaluations.assert_evaluated(
        "discount-percent", value=0, reason="error", error_type="flag_not_found"
    )


def test_each_checkout_is_its_own_trace(flag_evaluations: FlagEvaluationCapture) -> None:
    checkout("alice", [100])
    checkout("bob", [100])

    rows = flag_evaluations.snapshot(
        include=("trace_id",),
        exclude=("value", "variant", "reason", "error_type"),
        normalize_ids=True,
    )
    assert rows == [
        {"flag_key": "new-checkout", "targeting_key": "alice", "trace_id": 1},
        {"flag_key": "shipping-options", "targeting_key": "alice", "trace_id": 1},
        {"flag_key": "new-checkout", "targeting_key": "bob", "trace_id": 2},
        {"flag_key": "shipping-options", "targeting_key": "bob", "trace_id": 2},
    ]


@pytest.mark.flagscope(processor="batch")
def test_batch_processor_needs_wait_for(flag_evaluations: FlagEvaluationCapture) -> None:
    # The batch processor exports from its own thread, as in production: wait for it.
    checkout("alice", [100])

    (event,) = flag_evaluations.wait_for(flag_key="shipping-options")
    assert event.value["free_over_cents"] == 5000
