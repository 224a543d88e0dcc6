"""Retries, retry budgets, circuit breakers, concurrency limits and rate limits, on a fake clock.

The asyncio tests run on a real event loop but assert only on order and counts: the few real
timeouts (50 ms) are there to be reached, never measured.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest

from gateway.admission.ratelimit import RateLimiter, TokenBucket
from gateway.config.model import BreakerPolicy, RetryPolicy
from gateway.protection.breaker import CircuitBreaker
from gateway.protection.concurrency import ConcurrencyLimit, LimitExceeded
from gateway.protection.retries import RetryBudget

pytestmark = pytest.mark.usefixtures("close_the_import_time_event_loop")


class FakeClock:
    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Changes = list[tuple[str, str, str]]


def make_breaker(clock: FakeClock, policy: BreakerPolicy) -> tuple[CircuitBreaker, Changes]:
    changes: Changes = []
    breaker = CircuitBreaker(
        "orders", policy, clock=clock, on_change=lambda *change: changes.append(change)
    )
    return breaker, changes


def record_all(breaker: CircuitBreaker, outcomes: str) -> None:
    """'.' a success, 'x' a failure."""
    for outcome in outcomes:
        breaker.record(outcome == ".")


def opened(clock: FakeClock, policy: BreakerPolicy) -> tuple[CircuitBreaker, Changes]:
    breaker, changes = make_breaker(clock, policy)
    record_all(breaker, "x" * policy.consecutive_failures)
    assert breaker.state == "open"
    return breaker, changes


def half_open(clock: FakeClock, policy: BreakerPolicy) -> tuple[CircuitBreaker, Changes]:
    breaker, changes = opened(clock, policy)
    clock.advance(policy.open_for)
    changes.clear()
    return breaker, changes


# --- retry policy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "retryable"),
    [("GET", True), ("get", True), ("HEAD", True), ("OPTIONS", True), ("POST", False)],
    ids=["GET", "lowercase-get", "HEAD", "OPTIONS", "POST"],
)
def test_only_safe_methods_are_retried_by_default(method: str, retryable: bool) -> None:
    # GIVEN the default policy
    policy = RetryPolicy()

    # WHEN asked about a method
    # THEN only the idempotent, safe ones qualify, whatever their case
    assert policy.retryable_method(method) is retryable


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 10], ids=lambda n: f"attempt-{n}")
def test_backoff_is_full_jitter_under_a_capped_exponential(attempt: int) -> None:
    # GIVEN the default policy (25 ms base, 250 ms cap) and a seeded random source
    policy = RetryPolicy()
    rng = random.Random(7)
    ceiling = min(0.25, 0.025 * 2**attempt)

    # WHEN a thousand delays are drawn
    delays = [policy.delay(attempt, rng) for _ in range(1_000)]

    # THEN all lie in [0, ceiling] and they spread over it rather than bunching at one end
    assert all(0.0 <= delay <= ceiling for delay in delays)
    assert min(delays) < 0.1 * ceiling
    assert max(delays) > 0.9 * ceiling


def test_backoff_of_a_huge_attempt_is_the_cap_not_an_overflow() -> None:
    # GIVEN the default policy
    # WHEN the delay for an absurd attempt number is drawn
    delay = RetryPolicy().delay(100_000, random.Random(1))

    # THEN it is bounded by backoff_max
    assert 0.0 <= delay <= 0.25


@pytest.mark.parametrize(
    "fields",
    [{"attempts": 0}, {"backoff": -1.0}, {"budget": -0.1}],
    ids=["no-attempts", "negative-backoff", "negative-budget"],
)
def test_a_nonsense_retry_policy_is_refused(fields: dict[str, float]) -> None:
    # GIVEN / WHEN a policy with an impossible field is built
    # THEN it is refused with a ValueError
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**fields)  # type: ignore[arg-type]


# --- retry budget -------------------------------------------------------------------------


def spend_all(budget: RetryBudget) -> int:
    spent = 0
    while budget.try_spend():
        spent += 1
        assert spent <= 10_000, "the budget never ran out"
    return spent


def test_the_budget_floor_allows_a_few_retries_with_no_traffic() -> None:
    # GIVEN a budget with a floor of 3 retries a second and no requests seen
    clock = FakeClock()
    budget = RetryBudget(RetryPolicy(min_retries_per_second=3.0), clock)

    # WHEN retries are asked for until refused
    spent = spend_all(budget)

    # THEN the floor over the ten-second window allowed exactly 30
    assert spent == 30


@pytest.mark.parametrize(
    ("requests", "floor", "expected"),
    [(100, 0.0, 20), (1_000, 3.0, 200), (100, 3.0, 30)],
    ids=["ratio-only", "ratio-above-floor", "floor-above-ratio"],
)
def test_retries_are_a_share_of_requests_or_the_floor(
    requests: int, floor: float, expected: int
) -> None:
    # GIVEN a 20% budget that has seen some requests
    clock = FakeClock()
    budget = RetryBudget(RetryPolicy(budget=0.2, min_retries_per_second=floor), clock)
    for _ in range(requests):
        budget.record_request()

    # WHEN retries are asked for until refused
    # THEN the larger of 20% of the requests and the floor were allowed
    assert spend_all(budget) == expected


def test_the_budget_forgets_traffic_older_than_its_window() -> None:
    # GIVEN a budget without a floor, spent out on 100 requests
    clock = FakeClock()
    budget = RetryBudget(RetryPolicy(budget=0.2, min_retries_per_second=0.0), clock)
    for _ in range(100):
        budget.record_request()
    spend_all(budget)

    # WHEN the window slides past them and 50 new requests come
    clock.advance(10.0)
    for _ in range(50):
        budget.record_request()

    # THEN only the new requests' share is on offer
    assert spend_all(budget) == 10


def test_the_budget_window_slides_a_second_at_a_time() -> None:
    # GIVEN a budget without a floor that sees 10 requests a second for 25 seconds
    clock = FakeClock()
    budget = RetryBudget(RetryPolicy(budget=0.2, min_retries_per_second=0.0), clock)
    for _ in range(25):
        for _ in range(10):
            budget.record_request()
        clock.advance(1.0)

    # WHEN the latest second's requests come too
    for _ in range(10):
        budget.record_request()

    # THEN only the last ten seconds' 100 requests count: 20 retries
    assert spend_all(budget) == 20


# --- circuit breaker ----------------------------------------------------------------------

RATE_ONLY = BreakerPolicy(consecutive_failures=1_000, min_requests=20, failure_rate=0.5)


@pytest.mark.parametrize(
    ("outcomes", "state"),
    [("x." * 9 + "x", "closed"), ("x." * 10, "open"), ("x." * 9 + "..", "closed")],
    ids=["19-requests-below-min", "20-requests-half-failed", "20-requests-45pct-failed"],
)
def test_the_failure_rate_opens_only_past_min_requests(outcomes: str, state: str) -> None:
    # GIVEN a breaker that opens at 50% failures over at least 20 requests
    clock = FakeClock()
    breaker, _ = make_breaker(clock, RATE_ONLY)

    # WHEN alternating failures and successes are recorded
    record_all(breaker, outcomes)

    # THEN it opens only with 20 requests and half of them failed
    assert breaker.state == state


def test_failures_older_than_the_window_do_not_count() -> None:
    # GIVEN a breaker that saw 15 failures (fewer than min_requests) a window ago
    clock = FakeClock()
    breaker, _ = make_breaker(clock, RATE_ONLY)
    record_all(breaker, "x" * 15)
    clock.advance(10.0)

    # WHEN 5 failures and 15 successes follow (25% of the window, 57% with the old ones)
    record_all(breaker, "x" * 5 + "." * 15)

    # THEN it stays closed
    assert breaker.state == "closed"


def test_consecutive_failures_open_and_a_success_resets_the_run() -> None:
    # GIVEN a breaker that opens after 5 failures in a row
    clock = FakeClock()
    breaker, changes = make_breaker(clock, BreakerPolicy(consecutive_failures=5))

    # WHEN 4 fail, 1 succeeds, 4 fail
    record_all(breaker, "xxxx.xxxx")

    # THEN it is still closed ...
    assert changes == []
    assert breaker.allow()

    # ... until a fifth failure in a row
    breaker.record(False)
    assert breaker.state == "open"
    assert changes == [("orders", "closed", "open")]


def test_an_open_breaker_refuses_until_open_for_has_passed() -> None:
    # GIVEN a breaker just opened, to stay open 5 s
    clock = FakeClock()
    breaker, changes = opened(clock, BreakerPolicy(open_for=5.0))

    # WHEN 4 s pass
    clock.advance(4.0)

    # THEN it still refuses, and says a probe is allowed in 1 s
    assert not breaker.allow()
    assert breaker.retry_after() == pytest.approx(1.0)

    # WHEN the last second passes
    clock.advance(1.0)

    # THEN it lets a probe through, half-open
    assert breaker.retry_after() == 0.0
    assert breaker.allow()
    assert breaker.state == "half_open"
    assert changes == [("orders", "closed", "open"), ("orders", "open", "half_open")]


def test_half_open_admits_only_half_open_probes_at_once() -> None:
    # GIVEN a breaker whose open_for has passed, allowing 3 probes
    clock = FakeClock()
    breaker, _ = half_open(clock, BreakerPolicy(half_open_probes=3))

    # WHEN requests keep asking while no probe has answered
    admitted = [breaker.allow() for _ in range(5)]

    # THEN the first 3 go through and the rest are refused until the probes answer
    assert admitted == [True, True, True, False, False]
    assert breaker.retry_after() > 0.0


def test_a_failed_probe_opens_the_breaker_again() -> None:
    # GIVEN a half-open breaker with a probe out
    clock = FakeClock()
    breaker, changes = half_open(clock, BreakerPolicy(open_for=5.0))
    assert breaker.allow()

    # WHEN the probe fails
    breaker.record(False)

    # THEN it is open for another full open_for
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.retry_after() == pytest.approx(5.0)
    assert changes == [("orders", "open", "half_open"), ("orders", "half_open", "open")]


def test_all_probes_succeeding_closes_the_breaker_with_fresh_counts() -> None:
    # GIVEN a half-open breaker with its 3 probes out
    clock = FakeClock()
    breaker, changes = half_open(clock, BreakerPolicy(half_open_probes=3, consecutive_failures=5))
    assert all(breaker.allow() for _ in range(3))

    # WHEN two succeed
    record_all(breaker, "..")

    # THEN it waits for the third
    assert changes == [("orders", "open", "half_open")]

    # WHEN the third succeeds
    breaker.record(True)

    # THEN it closes, and needs 5 new failures in a row to open again
    assert breaker.state == "closed"
    assert changes == [("orders", "open", "half_open"), ("orders", "half_open", "closed")]
    record_all(breaker, "xxxx")
    assert breaker.state == "closed"


def test_closing_forgets_the_failures_that_opened_the_breaker() -> None:
    # GIVEN a breaker opened by its failure rate, then closed by three good probes
    clock = FakeClock()
    breaker, _ = make_breaker(clock, RATE_ONLY)
    record_all(breaker, "x." * 10)
    clock.advance(RATE_ONLY.open_for)
    assert all(breaker.allow() for _ in range(3))
    record_all(breaker, "...")
    assert breaker.state == "closed"

    # WHEN one more request fails within the same window
    breaker.record(False)

    # THEN one failure in one request is below min_requests: it stays closed
    assert breaker.state == "closed"


def test_late_answers_from_before_the_breaker_opened_are_ignored() -> None:
    # GIVEN an open breaker
    clock = FakeClock()
    policy = BreakerPolicy()
    breaker, _ = opened(clock, policy)

    # WHEN a request let through earlier fails late
    clock.advance(2.0)
    breaker.record(False)

    # THEN the open period is not extended
    assert breaker.retry_after() == pytest.approx(policy.open_for - 2.0)

    # WHEN it goes half-open and an old request succeeds with no probe out
    clock.advance(policy.open_for)
    assert breaker.allow()
    breaker.record(True)
    record_all(breaker, "...")

    # THEN only the one real probe's success counted: it is still half-open
    assert breaker.state == "half_open"


def test_probes_that_never_answer_are_replaced_after_open_for() -> None:
    # GIVEN a half-open breaker whose only probe was lost (never recorded)
    clock = FakeClock()
    breaker, _ = half_open(clock, BreakerPolicy(half_open_probes=1, open_for=5.0))
    assert breaker.allow()
    assert not breaker.allow()
    assert breaker.retry_after() == pytest.approx(5.0)

    # WHEN open_for passes again
    clock.advance(5.0)

    # THEN a fresh probe is admitted, and its success closes the breaker
    assert breaker.allow()
    breaker.record(True)
    assert breaker.state == "closed"


@pytest.mark.parametrize(
    "fields",
    [{"failure_rate": 0.0}, {"failure_rate": 1.5}, {"min_requests": 0}, {"window": 0.0}],
    ids=["zero-rate", "rate-above-one", "no-min-requests", "empty-window"],
)
def test_a_nonsense_breaker_policy_is_refused(fields: dict[str, float]) -> None:
    # GIVEN / WHEN a breaker policy with an impossible field is built
    # THEN it is refused with a ValueError
    with pytest.raises(ValueError, match="must"):
        BreakerPolicy(**fields)  # type: ignore[arg-type]


# --- concurrency limit --------------------------------------------------------------------


async def settle(turns: int = 5) -> None:
    """Let every ready task run until it blocks."""
    for _ in range(turns):
        await asyncio.sleep(0)


def test_never_more_than_the_limit_in_flight_under_load() -> None:
    # GIVEN a limit of 7 and 200 tasks each holding a slot for a random number of loop turns
    rng = random.Random(11)
    limit = ConcurrencyLimit(7, queue_timeout=30.0)
    seen: list[int] = []

    async def request(turns: int) -> None:
        async with limit.slot():
            seen.append(limit.in_flight)
            await settle(turns)

    async def scenario() -> None:
        await asyncio.gather(*(request(rng.randint(0, 6)) for _ in range(200)))

    # WHEN they all run at once
    asyncio.run(scenario())

    # THEN every one ran, at most 7 at a time, and every slot came back
    assert len(seen) == 200
    assert max(seen) == 7
    assert (limit.in_flight, limit.waiting) == (0, 0)


def test_a_full_queue_times_out_with_limit_exceeded() -> None:
    # GIVEN a limit of 1 whose slot is held, with a 50 ms queue timeout
    limit = ConcurrencyLimit(1, queue_timeout=0.05)

    async def scenario() -> LimitExceeded:
        async with limit.slot():
            with pytest.raises(LimitExceeded) as refused:
                # WHEN another request waits for a slot
                async with limit.slot():
                    pytest.fail("a second slot was handed out")
            assert (limit.in_flight, limit.waiting) == (1, 0)
        return refused.value

    refusal = asyncio.run(scenario())

    # THEN it is refused with a Retry-After of at least a second, and nothing leaked
    assert refusal.retry_after == 1
    assert (limit.in_flight, limit.waiting) == (0, 0)


def test_a_zero_queue_timeout_refuses_at_once() -> None:
    # GIVEN a full limit with no queue
    limit = ConcurrencyLimit(1, queue_timeout=0.0)

    async def scenario() -> None:
        async with limit.slot():
            # WHEN another request comes
            # THEN it is refused without waiting
            with pytest.raises(LimitExceeded):
                async with limit.slot():
                    pytest.fail("a second slot was handed out")

    asyncio.run(scenario())
    assert limit.in_flight == 0


def test_waiters_get_slots_first_come_first_served() -> None:
    # GIVEN a held limit of 1 with five requests queued in order
    limit = ConcurrencyLimit(1, queue_timeout=30.0)
    order: list[int] = []

    async def request(number: int) -> None:
        async with limit.slot():
            order.append(number)

    async def scenario() -> None:
        holder = limit.slot()
        await holder.__aenter__()
        queued = []
        for number in range(5):
            queued.append(asyncio.create_task(request(number)))
            await settle(1)
        assert limit.waiting == 5

        # WHEN the slot is released
        await holder.__aexit__(None, None, None)

        # THEN the slot went straight to the oldest waiter: nobody arriving now can barge in
        assert (limit.in_flight, limit.waiting) == (1, 4)
        await asyncio.gather(*queued)

    asyncio.run(scenario())

    # THEN they ran in the order they came
    assert order == [0, 1, 2, 3, 4]


def test_leaving_a_slot_twice_frees_it_once() -> None:
    # GIVEN a limit of 1, held, with a request queued behind it
    limit = ConcurrencyLimit(1, queue_timeout=30.0)
    entered = asyncio.Event()
    done = asyncio.Event()

    async def request() -> None:
        async with limit.slot():
            entered.set()
            await done.wait()

    async def scenario() -> int:
        holder = limit.slot()
        await holder.__aenter__()
        queued = asyncio.create_task(request())
        await settle()

        # WHEN the holder's exit runs twice (an error path and a close, say)
        await holder.__aexit__(None, None, None)
        await holder.__aexit__(None, None, None)
        await entered.wait()
        in_flight = limit.in_flight
        done.set()
        await queued
        return in_flight

    # THEN the one slot went to the waiter, and no second one appeared
    assert asyncio.run(scenario()) == 1
    assert (limit.in_flight, limit.waiting) == (0, 0)


def test_a_cancelled_waiter_leaves_the_queue_at_once() -> None:
    # GIVEN a held limit of 1 with three requests queued
    limit = ConcurrencyLimit(1, queue_timeout=30.0)

    async def request() -> None:
        async with limit.slot():
            pass

    async def scenario() -> tuple[int, int]:
        holder = limit.slot()
        await holder.__aenter__()
        queued = [asyncio.create_task(request()) for _ in range(3)]
        await settle()

        # WHEN two of them are cancelled
        queued[0].cancel()
        queued[2].cancel()
        await settle()
        counts = (limit.in_flight, limit.waiting)
        await holder.__aexit__(None, None, None)
        await asyncio.gather(*queued, return_exceptions=True)
        return counts

    # THEN only the one left is counted as waiting, and all slots come back
    assert asyncio.run(scenario()) == (1, 1)
    assert (limit.in_flight, limit.waiting) == (0, 0)


Release = Callable[[], Awaitable[object]]
Cancel = Callable[[Release, "asyncio.Task[None]"], Awaitable[None]]


async def cancel_while_queued(release: Release, w1: asyncio.Task[None]) -> None:
    w1.cancel()
    await settle()
    await release()


async def cancel_just_after_handover(release: Release, w1: asyncio.Task[None]) -> None:
    await release()  # w1's future now holds the slot, but w1 has not run yet
    w1.cancel()


async def cancel_while_holding(release: Release, w1: asyncio.Task[None]) -> None:
    await release()
    await settle()
    w1.cancel()


@pytest.mark.parametrize(
    ("cancel", "first_in"),
    [(cancel_while_queued, []), (cancel_just_after_handover, []), (cancel_while_holding, [1])],
    ids=["while-queued", "just-after-handover", "while-holding"],
)
def test_a_cancelled_waiter_neither_leaks_nor_steals_a_slot(
    cancel: Cancel, first_in: list[int]
) -> None:
    # GIVEN a held limit of 1 with two requests queued behind it
    limit = ConcurrencyLimit(1, queue_timeout=30.0)
    entered: list[int] = []
    done = asyncio.Event()

    async def request(number: int) -> None:
        async with limit.slot():
            entered.append(number)
            await done.wait()

    async def scenario() -> None:
        holder = limit.slot()
        await holder.__aenter__()
        w1 = asyncio.create_task(request(1))
        w2 = asyncio.create_task(request(2))
        await settle()

        # WHEN the first waiter is cancelled at some point around the slot's release
        await cancel(lambda: holder.__aexit__(None, None, None), w1)
        with pytest.raises(asyncio.CancelledError):
            await w1

        # THEN the second waiter gets the slot, alone
        await settle()
        assert entered == [*first_in, 2]
        assert limit.in_flight == 1
        done.set()
        await w2

    asyncio.run(scenario())
    assert (limit.in_flight, limit.waiting) == (0, 0)


@pytest.mark.parametrize("seed", range(5), ids=lambda seed: f"seed-{seed}")
def test_random_cancellations_never_break_the_limit(seed: int) -> None:
    # GIVEN 200 requests on a limit of 5, a random third of them cancelled at random moments
    rng = random.Random(seed)
    limit = ConcurrencyLimit(5, queue_timeout=30.0)
    seen: list[int] = []

    async def request(turns: int) -> None:
        async with limit.slot():
            seen.append(limit.in_flight)
            await settle(turns)

    async def scenario() -> None:
        tasks = [asyncio.create_task(request(rng.randint(0, 4))) for _ in range(200)]
        for task in rng.sample(tasks, 70):
            await settle(rng.randint(0, 3))
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results)

        # THEN a new request still gets a slot at once
        async with limit.slot():
            assert limit.in_flight == 1

    # WHEN they run
    asyncio.run(scenario())

    # THEN never more than 5 held a slot, and every slot came back
    assert max(seen) <= 5
    assert (limit.in_flight, limit.waiting) == (0, 0)


# --- rate limits --------------------------------------------------------------------------


def test_a_bucket_allows_its_burst_then_says_how_long_to_wait() -> None:
    # GIVEN a bucket of 3 refilling at 2 a second
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)

    # WHEN 4 requests come at once
    answers = [bucket.check() for _ in range(4)]

    # THEN the burst goes through and the fourth must wait half a second
    assert answers[:3] == [None, None, None]
    assert answers[3] == pytest.approx(0.5)


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    # GIVEN an emptied bucket of 3 refilling at 2 a second
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    for _ in range(3):
        bucket.check()

    # WHEN a quarter second passes, then another
    clock.advance(0.25)
    assert bucket.check() == pytest.approx(0.25)
    clock.advance(0.25)

    # THEN a token is there
    assert bucket.check() is None

    # WHEN a long time passes
    clock.advance(100.0)

    # THEN only a burst's worth of tokens has built up
    assert [bucket.check() is None for _ in range(4)] == [True, True, True, False]


def test_each_key_has_its_own_bucket() -> None:
    # GIVEN a limiter of 1 request a second, burst 1
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock)

    # WHEN two clients each send two requests
    # THEN each gets one through
    assert limiter.check("10.0.0.1") is None
    assert limiter.check("10.0.0.2") is None
    assert limiter.check("10.0.0.1") == pytest.approx(1.0)
    assert limiter.check("10.0.0.2") == pytest.approx(1.0)


def test_the_least_recently_used_key_is_forgotten_past_max_keys() -> None:
    # GIVEN a limiter for at most 2 keys, with 'a' and 'b' both spent and 'a' used last
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=1, max_keys=2, clock=clock)
    limiter.check("a")
    limiter.check("b")
    assert limiter.check("a") is not None

    # WHEN a third key comes
    assert limiter.check("c") is None

    # THEN 'b' was forgotten (it starts afresh) while 'a' is still limited
    assert len(limiter) == 2
    assert limiter.check("a") is not None
    assert limiter.check("b") is None
    assert len(limiter) == 2
