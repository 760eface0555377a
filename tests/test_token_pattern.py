"""`TokenPattern` (io/config.py) finds and replaces the API token as the case-blind pattern does,
whatever the text: its lower-casing shortcut for ASCII text must not change an answer."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from rudder_pipedrive_cli.io.config import REDACTED, TokenPattern

TOKEN = "Ab12cD34eF56ab78cd90EF12ab34CD56ef78AB90"
# Letters Unicode's case rules tie to ASCII ones (ſ is s, K is k, İ and ı near i) and others.
ODD = "ſKKİıßµΣσς\u00e9\u0130\u212a"
pieces = st.one_of(
    st.sampled_from([TOKEN, TOKEN.lower(), TOKEN.upper(), TOKEN[:20], "s", "k", "i"]),
    st.text(alphabet=st.sampled_from(ODD + 'abcdefABCDEF0123456789 "{}:'), max_size=12),
    st.text(max_size=8),
)
tokens = st.sampled_from(
    [TOKEN, "sk-Kelvin-ſecret-token-00", "ſecret-ſecret-ſecret", "İstanbul-token-0001"]
)


@given(tokens, st.lists(pieces, max_size=6).map("".join))
def test_search_and_sub_answer_as_the_case_blind_pattern(token: str, text: str) -> None:
    regex = re.compile(re.escape(token), re.IGNORECASE)
    pattern = TokenPattern(token)
    assert pattern.search(text) == (regex.search(text) is not None)
    assert pattern.sub(REDACTED, text) == regex.sub(REDACTED, text)


def test_the_token_is_found_in_any_case_and_through_unicode_case_rules() -> None:
    pattern = TokenPattern("sk-0123456789abcdef")
    assert pattern.search('{"note":"SK-0123456789ABCDEF"}')
    assert pattern.search("ſk-0123456789abcdef")  # ſ (long s) matches s, as the pattern says
    assert pattern.search("s\u212a-0123456789abcdef")  # the Kelvin sign matches k
    assert not pattern.search("sk-0123456789abcde")
    assert pattern.sub(REDACTED, "a SK-0123456789ABCDEF b") == f"a {REDACTED} b"
