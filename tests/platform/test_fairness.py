"""The fair order of waiting jobs, on hand-made queues (no Ray, no containers)."""

from __future__ import annotations

from dataclasses import dataclass

from medarena.platform.database import Challenge, Phase, Submission, session_scope
from medarena.platform.fairness import FairQueue, NewWorkWatch


@dataclass(eq=False)
class Item:
    submission_id: int
    participant: str
    case: int
    cap: int = 0


def jobs(submission_id: int, participant: str, n: int, cap: int = 0) -> list[Item]:
    return [Item(submission_id, participant, i, cap) for i in range(n)]


def simulate(queue: FairQueue, slots: int, peak: dict[str, int] | None = None) -> list[Item]:
    """Dispatch everything with ``slots`` slots, the oldest job in flight ending first; ``peak``
    receives each participant's most jobs in flight at once."""
    order, in_flight = [], []
    while queue or in_flight:
        while len(in_flight) < slots and (item := queue.next_up(in_flight)):
            queue.take(item)
            order.append(item)
            in_flight.append(item)
            if peak is not None:
                peak[item.participant] = max(peak.get(item.participant, 0),
                                             sum(i.participant == item.participant for i in in_flight))
        in_flight.pop(0)
    return order


def test_a_small_submission_behind_a_large_one_takes_the_next_free_slot():
    queue = FairQueue(jobs(1, "big", 500) + jobs(2, "small", 10))
    order = simulate(queue, slots=2)
    assert len(order) == 510
    # the two slots alternate between the participants while both wait
    assert [i.submission_id for i in order[:20]] == [1, 2] * 10
    assert [i.case for i in order if i.submission_id == 2] == list(range(10))
    assert [i.case for i in order if i.submission_id == 1] == list(range(500))


def test_three_participants_take_turns_and_share_a_participant_turn_between_submissions():
    # ann has two submissions (1, 2) of 3 cases, bob one of 2 (3), cy one of 1 (4); one slot
    queue = FairQueue(jobs(1, "ann", 3) + jobs(2, "ann", 3) + jobs(3, "bob", 2) + jobs(4, "cy", 1))
    order = simulate(queue, slots=1)
    assert [i.submission_id for i in order] == [1, 3, 4, 2, 3, 1, 2, 1, 2]


def test_the_participant_with_fewer_jobs_in_flight_goes_first():
    queue = FairQueue(jobs(1, "ann", 5) + jobs(2, "bob", 5))
    running_ann = jobs(1, "ann", 2)
    assert queue.next_up(running_ann).participant == "bob"
    assert queue.next_up(jobs(2, "bob", 1)).participant == "ann"


def test_a_participant_at_the_cap_is_passed_over_until_a_job_ends():
    queue = FairQueue(jobs(1, "ann", 4, cap=2) + jobs(2, "ann", 4, cap=2) + jobs(3, "bob", 1, cap=2))
    peak: dict[str, int] = {}
    assert len(simulate(queue, slots=4, peak=peak)) == 9
    assert peak == {"ann": 2, "bob": 1}  # 4 slots, but ann never holds more than 2 of them
    uncapped: dict[str, int] = {}
    simulate(FairQueue(jobs(1, "ann", 4) + jobs(2, "ann", 4)), slots=4, peak=uncapped)
    assert uncapped == {"ann": 4}
    in_flight: list[Item] = []
    queue = FairQueue(jobs(1, "ann", 4, cap=2) + jobs(2, "ann", 4, cap=2))
    while len(in_flight) < 4 and (item := queue.next_up(in_flight)):
        in_flight.append(queue.take(item))
    assert [(i.submission_id, i.case) for i in in_flight] == [(1, 0), (2, 0)]
    assert queue.next_up(in_flight) is None and len(queue) == 6
    in_flight.pop(0)
    assert (queue.next_up(in_flight).submission_id, len(in_flight)) == (1, 1)


def test_the_cap_counts_a_participant_jobs_over_all_their_submissions_and_no_cap_means_none():
    queue = FairQueue(jobs(1, "ann", 3, cap=1) + jobs(2, "bob", 3))
    assert queue.next_up(jobs(7, "ann", 1)).participant == "bob"
    assert queue.next_up(jobs(7, "ann", 1) + jobs(2, "bob", 5)).participant == "bob"
    uncapped = FairQueue(jobs(1, "ann", 3))
    assert uncapped.next_up(jobs(1, "ann", 100)).case == 0


def test_new_work_is_looked_for_at_most_once_per_interval(home):
    now = [0.0]
    with session_scope(home.database_url) as session:
        challenge = Challenge(slug="toy", title="t", definition={})
        phase = Phase(slug="test", challenge=challenge)
        for state in ("queued", "running", "queued", "succeeded"):
            session.add(Submission(phase=phase, participant="ann", image="i", image_digest="d", state=state))
    watch = NewWorkWatch(home.database_url, interval=1.0, clock=lambda: now[0])
    assert watch.new_submissions(set()) == []  # not yet due
    now[0] = 1.0
    assert watch.new_submissions(set()) == [1, 3]
    now[0] = 1.5
    assert watch.new_submissions(set()) == []
    now[0] = 2.5
    assert watch.new_submissions({1}) == [3]
