"""The crawler-user-agents list (the pinned `crawleruseragents` package), fast to consult.

The package ships about 1,500 patterns; one alternation of all of them costs about 700 µs
per user agent in Python's `re` (it tries every alternative at every position). Nearly every
pattern contains a literal of four characters or more, so each pattern is filed under one
four-character piece of it, and a user agent runs only the patterns whose piece it
contains: a set intersection of its four-grams plus the few patterns it names, about 10 µs.
The handful of patterns without such a literal are joined into one small alternation.
This runs once per distinct user agent (the Enricher caches what it finds), never per
request.
"""

import re
import re._parser as sre_parse  # the stdlib's own pattern parser: literals of a pattern
from collections import defaultdict
from functools import cache

import crawleruseragents

GRAM = 4
# Browsers' and apps' common words: a piece found in every browser's user agent would run
# its pattern on every one, so a pattern is filed under a piece outside these if it has one.
COMMON_TEXT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Macintosh; Intel Mac OS X; Linux; Android; "
    "iPhone; CPU OS like Gecko) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/ Safari/ "
    "Version/ Mobile Firefox/ Edg/ OPR/ CFNetwork/ Darwin/ Dalvik/ okhttp/ SmartTV Tizen"
)
COMMON_GRAMS = frozenset(COMMON_TEXT[i : i + GRAM] for i in range(len(COMMON_TEXT) - GRAM + 1))
# Our own rule over the list: patterns it has that name real users' software. okhttp is the
# HTTP client of most Android apps, whose ad requests carry it as their user agent.
NOT_CRAWLERS = frozenset({"okhttp"})


def _literals(pattern: str) -> list[str]:
    """The literal runs every match of a pattern contains (its top-level sequence)."""
    runs, current = [], ""
    for op, value in sre_parse.parse(pattern):
        if op is sre_parse.LITERAL:
            current += chr(value)
            continue
        runs.append(current)
        current = ""
    runs.append(current)
    return [r for r in runs if len(r) >= GRAM]


def _piece(literals: list[str]) -> str | None:
    grams = [lit[i : i + GRAM] for lit in literals for i in range(len(lit) - GRAM + 1)]
    return next((g for g in grams if g not in COMMON_GRAMS), grams[0] if grams else None)


class CrawlerList:
    """Whether a user agent matches the maintained crawler list (case-sensitive, as the
    list's own `is_crawler` does by default)."""

    def __init__(self, patterns: list[str]) -> None:
        by_piece: dict[str, list[str]] = defaultdict(list)
        rest: list[str] = []
        for pattern in patterns:
            piece = _piece(_literals(pattern))
            if piece is None:
                rest.append(pattern)
            else:
                by_piece[piece].append(pattern)
        self._by_piece = {p: re.compile("|".join(ps)) for p, ps in by_piece.items()}
        self._pieces = frozenset(self._by_piece)
        self._rest = re.compile("|".join(rest)) if rest else None
        self.size = len(patterns)

    def matches(self, ua: str) -> bool:
        grams = {ua[i : i + GRAM] for i in range(len(ua) - GRAM + 1)}
        for piece in grams & self._pieces:
            if self._by_piece[piece].search(ua):
                return True
        return self._rest is not None and self._rest.search(ua) is not None


@cache
def crawler_list() -> CrawlerList:
    """The package's list, compiled once per process (about 50 ms)."""
    data = crawleruseragents.CRAWLER_USER_AGENTS_DATA
    return CrawlerList([e["pattern"] for e in data if e["pattern"] not in NOT_CRAWLERS])
