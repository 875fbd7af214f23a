"""The aligner releases each partition's input messages in event-time order across topics,
keeps every topic's own offset order, waits for a lagging topic (up to the idle timeout) but
not for a caught-up one, and asks for full buffers to be paused."""

from __future__ import annotations

from collections.abc import Iterable

from detector.core.alignment import Aligner, CaughtUp
from tests.fakes import FakeMessage

TOPICS = ["predictions", "features", "labels"]


def stream(
    topic: str, timestamps: Iterable[int], partition: int = 0, first_offset: int = 0
) -> list[FakeMessage]:
    return [
        FakeMessage(topic, partition, offset, b"{}", timestamp_ms=ts)
        for offset, ts in enumerate(timestamps, start=first_offset)
    ]


def places(messages: Iterable[FakeMessage]) -> list[tuple[str, int]]:
    return [(m.topic()[0], m.offset()) for m in messages]


def all_caught_up(topic: str, partition: int) -> bool:
    return True


def lagging(*which: str) -> CaughtUp:
    return lambda topic, partition: topic not in which


def test_topics_are_merged_by_timestamp_ties_by_topic_order_then_offset() -> None:
    aligner = Aligner(TOPICS, idle_s=2.0, max_buffered=100)
    aligner.add(stream("labels", [10, 20, 30]))  # read first: the order of arrival does not matter
    aligner.add(stream("predictions", [5, 20, 20, 40]))
    aligner.add(stream("features", [20]))
    released = aligner.release(all_caught_up, now_s=0.0)
    assert places(released) == [
        ("p", 0),
        ("l", 0),
        ("p", 1),
        ("p", 2),
        ("f", 0),
        ("l", 1),
        ("l", 2),
        ("p", 3),
    ]
    assert aligner.buffered == 0


def test_a_topic_keeps_its_offset_order_when_its_timestamps_go_backwards() -> None:
    aligner = Aligner(TOPICS, idle_s=2.0, max_buffered=100)
    aligner.add(stream("predictions", [10, 50, 20, 60]))
    aligner.add(stream("labels", [30, 40]))
    released = aligner.release(all_caught_up, now_s=0.0)
    # The head decides: 20 waits behind 50, as in Kafka Streams.
    assert places(released) == [("p", 0), ("l", 0), ("l", 1), ("p", 1), ("p", 2), ("p", 3)]


def test_partitions_are_aligned_independently() -> None:
    aligner = Aligner(TOPICS, idle_s=2.0, max_buffered=100)
    aligner.add(
        stream("predictions", [10, 20], partition=0) + stream("predictions", [1, 2], partition=1)
    )
    aligner.add(stream("labels", [15], partition=1))
    released = aligner.release(lagging("labels"), now_s=0.0)
    # Partition 0's labels are dry and lagging: it waits. Partition 1 goes up to its last label.
    assert [(m.partition(), m.topic()[0], m.offset()) for m in released] == [
        (1, "p", 0),
        (1, "p", 1),
        (1, "l", 0),
    ]


def test_a_caught_up_empty_topic_does_not_hold_the_others_back() -> None:
    aligner = Aligner(TOPICS, idle_s=2.0, max_buffered=100)
    aligner.add(stream("predictions", range(0, 1000, 10)))
    # features and labels: nothing on the broker
    released = aligner.release(all_caught_up, now_s=0.0)
    assert len(released) == 100


def test_a_lagging_topic_is_waited_for_until_the_idle_timeout() -> None:
    aligner = Aligner(TOPICS, idle_s=2.0, max_buffered=100)
    aligner.add(stream("predictions", [10, 20, 30]))
    labels_behind = lagging("labels")
    assert aligner.release(labels_behind, now_s=100.0) == []
    assert aligner.release(labels_behind, now_s=101.9) == []
    assert places(aligner.release(labels_behind, now_s=102.0)) == [("p", 0), ("p", 1), ("p", 2)]
    # Once timed out it is not waited for again until it gets data.
    aligner.add(stream("predictions", [40], first_offset=3))
    assert places(aligner.release(labels_behind, now_s=102.1)) == [("p", 3)]


def test_a_lagging_topic_with_data_releases_up_to_its_last_message_then_waits_afresh() -> None:
    aligner = Aligner(TOPICS, idle_s=2.0, max_buffered=100)
    aligner.add(stream("predictions", [10, 20, 30, 40]))
    aligner.add(stream("labels", [25]))
    labels_behind = lagging("labels")
    assert places(aligner.release(labels_behind, now_s=0.0)) == [("p", 0), ("p", 1), ("l", 0)]
    assert aligner.release(labels_behind, now_s=1.0) == []  # labels dry again: a new wait starts
    aligner.add(stream("labels", [35], first_offset=1))
    assert places(aligner.release(labels_behind, now_s=1.5)) == [("p", 2), ("l", 1)]
    assert aligner.release(labels_behind, now_s=3.4) == []  # dry since 1.5
    assert places(aligner.release(labels_behind, now_s=3.5)) == [("p", 3)]


def test_the_caught_up_topic_is_not_waited_for_once_its_buffer_is_released() -> None:
    aligner = Aligner(TOPICS, idle_s=2.0, max_buffered=100)
    aligner.add(stream("predictions", [10, 20, 30]))
    aligner.add(stream("labels", [15]))
    assert places(aligner.release(all_caught_up, now_s=0.0)) == [
        ("p", 0),
        ("l", 0),
        ("p", 1),
        ("p", 2),
    ]


def test_a_full_buffer_is_paused_and_resumed_at_half() -> None:
    aligner = Aligner(TOPICS, idle_s=2.0, max_buffered=4)
    aligner.add(stream("predictions", [10, 20, 30]))
    assert aligner.release(lagging("labels"), now_s=0.0) == []
    assert aligner.flow() == ([], [])
    aligner.add(stream("predictions", [40], first_offset=3))
    assert aligner.flow() == ([("predictions", 0)], [])
    assert aligner.flow() == ([], [])  # said once
    aligner.add(stream("labels", [15, 25]))
    aligner.release(lagging("labels"), now_s=0.5)  # up to the last label: two predictions left
    assert aligner.flow() == ([], [("predictions", 0)])


def test_dropped_partitions_lose_their_buffers_and_report_their_paused_topics() -> None:
    aligner = Aligner(TOPICS, idle_s=2.0, max_buffered=2)
    aligner.add(
        stream("predictions", [10, 20], partition=0) + stream("predictions", [10, 20], partition=1)
    )
    assert aligner.flow() == ([("predictions", 0), ("predictions", 1)], [])
    assert aligner.drop([0]) == [("predictions", 0)]
    assert aligner.buffered == 2
    assert [m.partition() for m in aligner.release(all_caught_up, now_s=0.0)] == [1, 1]
    # read again after a rewind
    aligner.add(stream("predictions", [30], partition=0, first_offset=2))
    assert places(aligner.release(all_caught_up, now_s=0.0)) == [("p", 2)]


def test_a_topic_alone_is_released_in_its_own_order_even_when_its_timestamps_go_backwards() -> None:
    # One topic with something buffered takes the fast path (no merge): its offset order, whole.
    aligner = Aligner(TOPICS, idle_s=2.0, max_buffered=100)
    aligner.add(stream("predictions", [10, 50, 20, 60]))
    assert places(aligner.release(lagging("predictions"), now_s=0.0)) == [
        ("p", 0),
        ("p", 1),
        ("p", 2),
        ("p", 3),
    ]
    assert aligner.release(lagging("predictions"), now_s=0.5) == []  # dry: waited for
    aligner.add(stream("predictions", [70], first_offset=4))
    aligner.add(stream("labels", [65]))
    # two topics: merged by timestamp
    assert places(aligner.release(lagging("predictions"), now_s=1.0)) == [("l", 0), ("p", 4)]
    assert aligner.buffered == 0
