"""OrderKeys: the keys that order events, including ids that name one merged person."""

from __future__ import annotations

from typing import Any

from rudder_pipedrive_cli.core.events import EVERY, parse_event
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.ordering import OrderKeys
from rudder_pipedrive_cli.core.protocol import Learned, Outcome


def event(kind: str, **fields: Any) -> Any:
    return parse_event({"type": kind, **fields}, "t:1")


class IdentityKeys:
    """OrderKeys without the event-id key (tested on its own below)."""

    def __init__(self, known: IdentityStore) -> None:
        self.order = OrderKeys(known)

    def __call__(self, item: Any) -> frozenset[str]:
        return frozenset(k for k in self.order(item) if not k.startswith("e:"))


def test_an_alias_links_its_ids_for_the_events_after_it() -> None:
    keys = IdentityKeys(IdentityStore())
    assert keys(event("identify", userId="a")) == {"u:a"}
    assert keys(event("alias", previousId="a", userId="b")) == {EVERY, "u:a", "u:b"}
    after_a, after_b = keys(event("identify", userId="a")), keys(event("track", userId="b"))
    assert after_a & after_b  # one person now: they keep their order
    keys(event("alias", previousId="b", userId="c"))
    assert keys(event("identify", userId="a")) & keys(event("identify", userId="c"))
    assert not keys(event("identify", userId="z")) & keys(event("identify", userId="a"))


def test_a_cached_person_is_a_key_like_a_person_id_external_id() -> None:
    known = IdentityStore()
    known.learn(
        Outcome(status="sent", learned=Learned(identities={("person", "a"): 6, ("person", "b"): 7}))
    )
    keys = IdentityKeys(known)
    assert keys(event("identify", userId="a")) == {"u:a"}  # no merge known: no lookup
    known.learn(Outcome(status="sent", learned=Learned(merged={6: 7})))  # a's person went into b's
    assert keys(event("identify", userId="a")) == {"u:a", "p:7"}
    assert keys(event("identify", userId="b")) == {"u:b", "p:7"}
    external = event("identify", context={"externalId": [{"type": "person_id", "id": 7}]})
    assert "p:7" in keys(external)


def test_a_re_key_links_two_userids_to_one_person_across_runs_too() -> None:
    # QA: `alias a -> b` with b unknown gives a's person the userId b, no merge; a later run
    # (same state) sent a's and b's events concurrently and an older identify landed last.
    known = IdentityStore()
    known.learn(Outcome(status="sent", learned=Learned(identities={("person", "a"): 6})))
    assert not known.merges
    known.learn(
        Outcome(status="sent", learned=Learned(identities={("person", "a"): 6, ("person", "b"): 6}))
    )
    assert known.merges
    keys = IdentityKeys(known)  # a new run: no alias in its input
    assert keys(event("identify", userId="a")) & keys(event("identify", userId="b")) == {"p:6"}


def test_events_with_one_id_keep_their_order_whoever_they_are_about() -> None:
    # QA: a messageId repeated for another user ran concurrently with its first use, so the
    # journal could not skip it, and two leads got one origin_id.
    keys = OrderKeys(IdentityStore())
    first = keys(event("track", messageId="m-1", userId="a", event="Order"))
    again = keys(event("track", messageId="m-1", userId="b", event="Order v2"))
    assert first & again == {"e:m-1"}
    assert not keys(event("track", messageId="m-2", userId="c", event="Order")) & first
