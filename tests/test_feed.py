import threading

from fake_sources import ListSource, RecordedList

from kvmtop.feed import Feed


def test_paced_feed_builds_snapshots_and_resets():
    src = ListSource()
    feed = Feed(src, interval_s=0.1)
    feed.open()
    first, second = list(feed.snapshots(2))
    assert (first.seq, second.seq) == (1, 2)
    assert second.vm(10).history == (3.0, 6.0)
    feed.reset()
    third = feed.next_snapshot()
    assert src.resets == 1 and third.seq == 1 and third.vm(10).history == (9.0,)
    feed.close()
    assert src.closed


def test_stop_wakes_a_waiting_feed():
    feed = Feed(ListSource(), interval_s=60)
    feed.open()
    result = []
    t = threading.Thread(target=lambda: result.append(feed.next_snapshot()))
    t.start()
    feed.stop()
    t.join(5)
    assert not t.is_alive() and result == [None]


def test_tap_sees_every_interval():
    seen = []
    feed = Feed(ListSource(), interval_s=0.1, tap=seen.append)
    feed.open()
    list(feed.snapshots(3))
    assert [i.time for i in seen] == [1_700_000_001.0, 1_700_000_002.0, 1_700_000_003.0]


def test_recorded_feed_steps_seeks_and_ends():
    feed = Feed(RecordedList(5), speed=1e9)
    assert feed.seekable and feed.length == 5
    snaps = list(feed.snapshots())
    assert [s.vm(10).exits for s in snaps] == [3, 6, 9, 12, 15]
    feed.seek(2)
    again = feed.next_snapshot()
    assert again.vm(10).exits == 6 and again.vm(10).history == (3.0, 6.0) and feed.position == 2
    feed.set_paused(True)
    feed.step()
    stepped = feed.next_snapshot()
    assert stepped.vm(10).exits == 9 and feed.position == 3
