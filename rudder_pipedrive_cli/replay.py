"""`rpd send` as a library: intake items in, plans run against a sender, every event accounted for.

The pieces are the pure core (plans), the runner (ordering and concurrency), the client (pacing,
retries) and, when there is one, the replay state (journal, identity cache, writes in flight).
This module only wires them: which plan an item gets, and what happens when it ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rudder_pipedrive_cli.core.events import Event
from rudder_pipedrive_cli.core.identity_cache import AliasesRead, IdentityStore, Tables
from rudder_pipedrive_cli.core.index import IdentityIndex
from rudder_pipedrive_cli.core.intake import (
    ALREADY_DONE,
    NOT_AN_EVENT,
    RULE_SKIPPED,
    Finished,
    IdSet,
)
from rudder_pipedrive_cli.core.ordering import OrderKeys
from rudder_pipedrive_cli.core.plans import makes_a_person, plan_event
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.protocol import (
    LEFT_IN_FLIGHT,
    ApiRequest,
    ApiResponse,
    Outcome,
    Plan,
    Planned,
)
from rudder_pipedrive_cli.core.tally import Tally
from rudder_pipedrive_cli.io.deadletter import DeadLetters
from rudder_pipedrive_cli.io.state import utc_stamp


class Journal(Protocol):
    """What the replay needs of a durable state (io/state.py's ReplayState)."""

    def journal_status(self, event_id: str) -> str | None: ...

    def record_outcome(self, event_id: str, source: str, outcome: Outcome) -> None: ...

    def begin_write(self, event_id: str, request: ApiRequest, sent_at: str) -> None: ...

    def pending_write(self, event_id: str, request: ApiRequest) -> str | None: ...

    def ruled_out(self, event_id: str) -> None: ...


def journaled(plan: Plan, event_id: str, journal: Journal, now: Callable[[], str] | None) -> Plan:
    """Record each write before it is sent; a write an interrupted run left in flight is not
    sent again but answered as unknown, so the plan reconciles it (SPEC 5, exactly-once).
    Without `now` (dry-run over a read-only state) nothing is recorded: the plan shows what the
    rerun would do."""
    response: Any = None  # what a plan is sent first
    while True:
        try:
            request = plan.send(response)
        except StopIteration as stop:  # the plan decided (perhaps without asking anything)
            outcome: Outcome = stop.value
            return outcome
        if not request.is_write:
            response = yield request  # a transport failure too: an answer, `failed` set
        elif (left_in_flight := journal.pending_write(event_id, request)) is not None:
            response = ApiResponse(status=0, error=LEFT_IN_FLIGHT, sent_at=left_in_flight)
        else:
            if now is not None:
                journal.begin_write(event_id, request, now())
            response = yield request


@dataclass(slots=True, kw_only=True)
class Replay:
    """The callbacks the runner needs, for one run."""

    config: PlanConfig
    known: IdentityStore
    tally: Tally
    dead_letters: DeadLetters
    journal: Journal | None = None
    now: Callable[[], str] = utc_stamp
    on_done: Callable[[Event, Outcome], None] | None = None
    index: IdentityIndex | None = None  # identities by index (core/index.py), else by search
    tables: Tables = dict  # what the run's own tables are made of (a bounded one for the CLI)
    # Where the ids this run finished move, `recent` at a time (io/scratch.py's ScratchIds: the
    # CLI's, so that a journal's run remembering the events its skip rules took stays bounded)
    finished_ids: IdSet | None = None
    order: OrderKeys = field(init=False)  # the run's ordering keys, learning its aliases
    read: AliasesRead | None = field(init=False)  # the aliases read so far (`AliasesRead`)
    finished: Finished = field(init=False)  # events done: by the journal, else by this run

    def __post_init__(self) -> None:
        self.order = OrderKeys(self.known, self.config.aliases, self.tables)
        config = self.config
        self.read = AliasesRead.of(
            config.aliases_of, config.aliases, self.tables, makes_a_person(config)
        )
        journal_status = None if self.journal is None else self.journal.journal_status
        self.finished = Finished(journal_status, self.finished_ids)
        self.tally.keep_roots(self.tables())  # each failure's root, explaining later ones

    def start(self, item: Event) -> Planned:
        """The event's plan, through the journal when there is one; its outcome when it needs
        no request."""
        if item.decided is not None or item.event is None:
            return item.decided or NOT_AN_EVENT
        if self.finished.has(item.id):
            return ALREADY_DONE
        plan = plan_event(item.event, self.config, self.known, self.index)
        if self.journal is None or type(plan) is Outcome:
            return plan
        return journaled(plan, item.id, self.journal, self.now)

    def keys(self, item: Event) -> frozenset[str]:
        """The keys ordering this item against others (read in input order)."""
        if (event := item.event) is None:
            return frozenset()
        if self.read is not None and item.decided is None:  # one to plan (done or not), as the
            self.read(event)  # first pass took it
        return self.order(event)

    def done(self, item: Event, outcome: Outcome) -> None:
        if root := self.tally.add_outcome(item.kind, outcome, item):  # a knock-on's, told by it
            outcome = root.retell(outcome)
        if outcome.status == "failed":
            self.dead_letters.add(item, outcome)
        if item.id and item.decided is None and outcome is not ALREADY_DONE:  # a planned event
            if self.index is not None:  # the records it made go in, merged persons out
                self.index.learn(outcome)
            if self.journal is not None and outcome is not RULE_SKIPPED:
                self.journal.record_outcome(item.id, item.source, outcome)
            else:  # no journal, or a skip rule's (the config's, core/intake.py): this run
                # remembers what it finished (a repeated messageId)
                self.known.learn(outcome)
                self.finished.add(item.id, outcome.status)
                if self.journal is not None:  # its writes left in flight are not outside the run
                    self.journal.ruled_out(item.id)
        if self.on_done is not None:
            self.on_done(item, outcome)
