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
    assert view._data is store._data  # shared, not copied
    store.advance()
    assert len(view._cols) == 0  # the new column was not in the view's window: nothing saved
    for _ in range(200):
        store.advance()
    assert len(view._cols) == 3  # only the columns it showed were saved before being overwritten
    assert view.series(7, h.TOTAL) == (1.0, 1.0, 1.0)
