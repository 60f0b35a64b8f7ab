"""Privacy settings made code: keyed pseudonyms for user ids and minimum group sizes.

With ``ESN_PSEUDONYMIZE_KEY`` set, every user id (activity actor and target, directory user) is
replaced at ingest by an HMAC-SHA256 of it under that key, so no raw id reaches Redis, the flag
topics, metrics or reports. The same id always gives the same pseudonym, across activity and
directory and across restarts, so the engine works unchanged; whoever holds the key can compute the
pseudonym of a known id (``esn-pulse pseudonym``), nobody can reverse one without it.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Final

from stream.settings import Settings

#: Pseudonyms are recognisable in any output, and 128 bits keep collisions out of reach.
PSEUDONYM_PREFIX: Final = "p_"
#: Groups smaller than the minimum are reported under this name (and dropped if it is small too).
OTHER_GROUP: Final = "other"

Pseudonymize = Callable[[str], str]

#: Object types by which sources name a person (ActivityStreams' Person, Connections' person,
#: Slack's user); the contract's own is "profile", which every one of them is folded under.
PERSON_OBJECT_TYPES: Final = frozenset({"profile", "person", "user", "people"})
#: What marks a Connections person URN (``urn:lsid:lconn.ibm.com:profiles.person:<user id>``).
PERSON_URN_MARK: Final = "profiles.person:"


def person_object_id(object_key: str, target_user: str | None) -> str | None:
    """The user id an event's object (``type:id``) names when that object is a person, else None.

    A person is an object of a person type, a Connections person URN (its user id, so that it
    gets the pseudonym the person has as an actor), or the event's target user (the actor is not
    compared: numeric ids of posts and of users can coincide in one source).
    """
    object_type, _, object_id = object_key.partition(":")
    if PERSON_URN_MARK in object_id:
        return object_id.rsplit(PERSON_URN_MARK, 1)[-1] or object_id
    if object_type.lower() in PERSON_OBJECT_TYPES or object_id == target_user:
        return object_id
    return None


def pseudonymizer(key: str) -> Pseudonymize:
    """A cached keyed-hash function: user id -> ``p_`` + 32 hex digits."""
    secret = key.encode()

    @lru_cache(maxsize=262_144)  # the hot path sees the same few thousand actors again and again
    def pseudonym(user_id: str) -> str:
        # Every id is hashed, even one shaped like a pseudonym: a source's own ids may look like
        # ours, and passing them through would store them raw.
        digest = hmac.new(secret, user_id.encode(), hashlib.sha256).hexdigest()
        return PSEUDONYM_PREFIX + digest[:32]

    return pseudonym


def pseudonymizer_from(settings: Settings) -> Pseudonymize | None:
    """The deployment's pseudonymizer, or None when ids are kept as they are."""
    key = settings.pseudonymize_key.get_secret_value()
    return pseudonymizer(key) if key else None


def lookup_id(settings: Settings, user_id: str) -> str:
    """The id the engine stores for a user id typed by an operator."""
    pseudonym = pseudonymizer_from(settings)
    return pseudonym(user_id) if pseudonym else user_id


def looks_like_pseudonym(user_id: str) -> bool:
    """True for ``p_`` + 32 lower-case hex digits: an id an operator copied from an output."""
    tail = user_id.removeprefix(PSEUDONYM_PREFIX)
    return len(user_id) == 34 and tail != user_id and all(c in "0123456789abcdef" for c in tail)


#: A quoted value in a reject's detail (the repr of an id, a key, a time): what may name a person.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'" + r'|"(?:[^"\\]|\\.)*"')


def dlq_detail_redactor(settings: Settings) -> Callable[[str], str]:
    """What ``ESN_DLQ_DETAIL_IDS`` does to the quoted values of a dead letter's detail header.

    keep: nothing; hash: each becomes the pseudonym the engine stores for it (with
    ``ESN_PSEUDONYMIZE_KEY``) or else an unkeyed ``sha256:`` prefix of it; drop: each becomes '-'.
    """
    mode = settings.dlq_detail_ids
    if mode == "keep":
        return lambda detail: detail
    if mode == "drop":
        return lambda detail: _QUOTED.sub("'-'", detail)
    keyed = pseudonymizer_from(settings)

    def hashed(match: re.Match[str]) -> str:
        try:  # the id itself, so that its hash is the pseudonym the engine stores
            value = str(ast.literal_eval(match[0]))
        except (ValueError, SyntaxError):
            value = match[0][1:-1]
        if keyed is not None:
            return repr(keyed(value))
        return repr("sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16])

    return lambda detail: _QUOTED.sub(hashed, detail)


def merge_small_groups(sizes: Mapping[str, int], minimum: int) -> dict[str, str]:
    """Group name -> reported name: groups under ``minimum`` members become "other".

    Returns only the groups that may be reported: when the merged "other" group is itself smaller
    than the minimum, its members are left out altogether rather than exposed.
    """
    small = {name for name, size in sizes.items() if size < minimum}
    merged_size = sum(sizes[name] for name in small)
    out = {name: name for name in sizes if name not in small}
    if merged_size >= minimum:
        out.update({name: OTHER_GROUP for name in small})
    return out
