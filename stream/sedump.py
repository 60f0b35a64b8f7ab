"""A Stack Exchange data dump of a made-up Q&A site, in the dump's documented XML format.

``make demo-real`` imports a dump through the ``stackexchange`` adapter; without a real site's
dump (archive.org's ``stackexchange`` collection, CC BY-SA) at hand, this writes one in the same
format: Users, Posts (questions and answers), Comments, Badges and Votes, with the attributes
the dump's readme lists. People join over the period, some stay, some drift away, some never
post. Seeded, so the same arguments write the same files.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import quoteattr

TAGS = ("adoption", "onboarding", "metrics", "communities", "wikis", "files", "mobile", "search")


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _write(path: Path, root: str, rows: Iterable[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(f'<?xml version="1.0" encoding="utf-8"?>\n<{root}>\n')
        for row in rows:
            attributes = " ".join(f"{k}={quoteattr(v)}" for k, v in row.items())
            handle.write(f"  <row {attributes} />\n")
        handle.write(f"</{root}>\n")


def write_dump(out: Path, users: int = 400, days: int = 365, end: datetime | None = None,
               seed: int = 7) -> dict[str, int]:  # fmt: skip
    """Write the dump's files into ``out``; returns the rows written per file."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC).replace(tzinfo=None)
    start = end - timedelta(days=days)
    out.mkdir(parents=True, exist_ok=True)
    people: list[dict[str, str]] = []
    posts: list[dict[str, str]] = []
    comments: list[dict[str, str]] = []
    badges: list[dict[str, str]] = []
    questions: list[tuple[int, datetime]] = []
    for number in range(1, users + 1):
        created = start + timedelta(seconds=rng.uniform(0, days * 0.8 * 86_400))
        # How long they stay (some drift away early, most stay) and how often they act.
        stays = days if rng.random() < 0.6 else rng.uniform(3, days)
        leaves = min(end, created + timedelta(days=stays))
        rate = 0.0 if rng.random() < 0.15 else rng.lognormvariate(-1.6, 1.0)
        last = created
        moment = created
        while rate > 0:
            moment += timedelta(days=rng.expovariate(rate))
            if moment >= leaves:
                break
            last = moment
            roll = rng.random()
            if roll < 0.25 or not questions:
                post_id = len(posts) + 1
                questions.append((post_id, moment))
                posts.append({"Id": str(post_id), "PostTypeId": "1", "CreationDate": _when(moment),
                              "Score": str(rng.randint(-1, 12)), "OwnerUserId": str(number),
                              "Title": f"Question {post_id}", "Tags": f"|{rng.choice(TAGS)}|",
                              "ContentLicense": "CC BY-SA 4.0"})  # fmt: skip
            elif roll < 0.55:
                parent = rng.choice(questions[-50:])[0]
                posts.append({"Id": str(len(posts) + 1), "PostTypeId": "2",
                              "ParentId": str(parent), "CreationDate": _when(moment),
                              "Score": str(rng.randint(0, 8)), "OwnerUserId": str(number),
                              "ContentLicense": "CC BY-SA 4.0"})  # fmt: skip
            else:
                comments.append({"Id": str(len(comments) + 1),
                                 "PostId": str(rng.randint(1, len(posts))),
                                 "Score": "0", "Text": "Thanks, that helps.",
                                 "CreationDate": _when(moment), "UserId": str(number),
                                 "ContentLicense": "CC BY-SA 4.0"})  # fmt: skip
        if last > created and rng.random() < 0.5:
            badges.append({"Id": str(len(badges) + 1), "UserId": str(number), "Name": "Student",
                           "Date": _when(last), "Class": "3", "TagBased": "False"})  # fmt: skip
        seen = last + timedelta(minutes=rng.uniform(0, 90)) if last > created else created
        people.append({"Id": str(number), "Reputation": "1", "CreationDate": _when(created),
                       "DisplayName": f"member{number}", "LastAccessDate": _when(min(seen, end)),
                       "Views": "0", "UpVotes": "0", "DownVotes": "0",
                       "AccountId": str(10_000 + number)})  # fmt: skip
    posts.sort(key=lambda row: row["CreationDate"])
    _write(out / "Users.xml", "users", people)
    _write(out / "Posts.xml", "posts", posts)
    _write(out / "Comments.xml", "comments", comments)
    _write(out / "Badges.xml", "badges", badges)
    _write(out / "Votes.xml", "votes", [])
    return {"Users.xml": len(people), "Posts.xml": len(posts), "Comments.xml": len(comments),
            "Badges.xml": len(badges)}  # fmt: skip
