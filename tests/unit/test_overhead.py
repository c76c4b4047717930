# SPDX-License-Identifier: Apache-2.0
"""The alternating overhead measurement."""
from profkit.overhead import alternate


def test_alternate_orders_abba_and_computes_losses():
    calls = []
    base = iter([100.0, 100.0, 100.0, 100.0])
    prof = iter([90.0, 80.0, 95.0, 85.0])

    def b():
        calls.append("B")
        return next(base)

    def p():
        calls.append("P")
        return next(prof)

    r = alternate(4, b, p)
    assert "".join(calls) == "BPPBBPPB"
    assert r.losses == [10.0, 20.0, 5.0, 15.0]
    assert r.median_loss == 12.5 and r.spread == 7.5
    assert "median loss 12.5% ± 7.5 over 4 pairs" in r.describe()
