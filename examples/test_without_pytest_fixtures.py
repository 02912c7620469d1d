"""The example shop tested without the pytest fixture: a context manager, and unittest.

``capture_flag_evaluations`` is the same capture the ``flag_evaluations`` fixture uses,
for unittest suites and scripts; pytest collects this file too (``make test``).
"""

from __future__ import annotations

import unittest

from app.shop import checkout, configure_flags

from flagscope import capture_flag_evaluations


def test_a_context_manager_captures_what_its_block_evaluates() -> None:
    configure_flags()
    with capture_flag_evaluations() as flags:  # or capture_flag_evaluations(my_provider)
        checkout("alice", [100])
    flags.assert_evaluated("new-checkout", value=False)
    assert flags.flag_keys() == ["new-checkout", "shipping-options"]


class CheckoutTest(unittest.TestCase):
    def setUp(self) -> None:
        configure_flags()
        self.flags = capture_flag_evaluations().start()
        self.addCleanup(self.flags.stop)

    def test_beta_testers_get_the_new_checkout(self) -> None:
        receipt = checkout("beta-tester", [2000, 3000])

        assert receipt.total_cents == 4500
        self.flags.assert_evaluated("new-checkout", value=True, variant="on")
        self.flags.assert_evaluated("discount-percent", value=10)
