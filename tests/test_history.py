"""History rings: frozen views keep their values while the store moves on (copy-on-write)."""

from kvmtop import history as h


def test_views_keep_their_values_after_the_store_advances_and_forgets():
    store = h.HistoryStore(length=4, capacity=2)
    views = []
    for n in range(1, 7):
        store.advance()
        store.add("a", h.TOTAL, None, float(n))
        store.add("b", h.TOTAL, None, float(10 * n))
        if n == 5:
            store.forget(lambda e: e != "b")  # b's row is cleared and freed
            store.add("c", h.TOTAL, None, 99.0)  # and may be reused by c
        views.append(store.freeze())
    # each view still shows its own last 4 intervals, whatever happened since
    assert views[1].series("a", h.TOTAL) == (1.0, 2.0)
    assert views[3].series("a", h.TOTAL) == (1.0, 2.0, 3.0, 4.0)
    assert views[3].series("b", h.TOTAL) == (10.0, 20.0, 30.0, 40.0)
    assert views[5].series("a", h.TOTAL) == (3.0, 4.0, 5.0, 6.0)
    assert views[4].series("b", h.TOTAL) == (0.0, 0.0, 0.0, 0.0)  # forgotten before this view
    assert views[5].series("b", h.TOTAL) == (0.0, 0.0, 0.0, 60.0)  # a new series since
    assert views[5].series("c", h.TOTAL) == (0.0, 0.0, 99.0, 0.0)
    assert views[3].sum_series("a", h.TOTAL, lambda code: True) == (1.0, 2.0, 3.0, 4.0)


def test_a_view_costs_columns_not_a_copy_of_the_matrix():
    store = h.HistoryStore(length=120, capacity=1000)
    for _ in range(3):
        store.advance()
        for e in range(1000):
            store.add(e, h.TOTAL, None, 1.0)
    view = store.freeze()
    assert view._counts is store._counts.data  # shared, not copied
    store.advance()
    assert len(view._count_cols) == 0  # the new column was not in the view's window: nothing saved
    for _ in range(200):
        store.advance()
    assert len(view._count_cols) == 3  # only the columns it showed were saved before being overwritten
    assert view.series(7, h.TOTAL) == (1.0, 1.0, 1.0)


def test_rates_are_counts_over_each_intervals_seconds_as_float32_ones_would_be():
    import numpy as np

    store = h.HistoryStore(length=6, capacity=2)
    spans = [1.0, 0.7, 0.0, 3.0, 1.3, 0.001]
    counts = [7, 65535, 5, 65536, 123_456_789, 3]  # the 4th outgrows 16 bits: the series moves
    views = []
    for seconds, n in zip(spans, counts):
        store.advance(seconds)
        store.add("a", h.TOTAL, None, n)
        store.add("b", h.TOTAL, None, 1)
        views.append(store.freeze())
    expected = tuple(float(np.float32(n / s)) if s > 0 else 0.0 for s, n in zip(spans, counts))
    assert views[-1].series("a", h.TOTAL) == expected
    assert views[2].series("a", h.TOTAL) == expected[:3]  # made before the move, kept as it was
    assert views[-1].series("b", h.TOTAL) == tuple(float(np.float32(1 / s)) if s > 0 else 0.0 for s in spans)
    assert store._rates.used == 1 and store._counts.used == 2  # only a moved; its narrow row is free again
    assert len(store._counts.free) == 1
    store.advance(1.0)
    assert store.freeze().series("a", h.TOTAL) == expected[1:] + (0.0,)
