"""Which languages the workers can run, as they announce them (API.md 1.1).

A worker announces the languages its host runs (those whose hello world ran in its sandbox at
start) when it starts and with every heartbeat. An announcement outlives its worker by
`ANNOUNCEMENT_TTL_S`, so a deploy that restarts every worker refuses nothing meanwhile, and no
longer: then the language's waiting jobs are failed (`routing.py`). The web process lists the
announced languages, and the script that enqueues a job refuses one in a language no worker has
announced (`guarded_writes.py`), in the same round trip.
"""

import json
from collections.abc import Iterable
from typing import Any

from redis import Redis
from rq.utils import as_text

from executor.languages import Language, language_version

# Each announced language, scored by when its announcement expires (ms, Redis's clock).
OFFERED = "executor:languages:offered"
# Each announced language's description, as the workers see it: name, version, compiled, ...
DESCRIPTIONS = "executor:languages:descriptions"
ANNOUNCEMENT_TTL_S = 24 * 3600  # API.md 1.1
# KEYS: the two above. ARGV: the TTL in ms, then id and description, pairs.
_ANNOUNCE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
for at = 2, #ARGV, 2 do
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[at])
    redis.call('HSET', KEYS[2], ARGV[at], ARGV[at + 1])
end
"""
# KEYS: OFFERED. Returns the ids whose announcements have not expired.
_OFFERED_NOW = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""


def describe(language: Language) -> dict[str, Any]:
    """A language as `GET /api/v1/languages` lists it, its version read on this host."""
    return {
        "id": language.id,
        "name": language.name,
        "version": language_version(language.version_probe),
        "compiled": language.compiled,
        "source_file": language.source_file,
        "packages": [{"name": name, "version": version} for name, version in language.libraries],
    }


def announce(connection: Redis, descriptions: Iterable[dict[str, Any]]) -> None:
    """Say that this worker runs these languages (each described with its `id`), for the next TTL."""
    arguments: list[Any] = [ANNOUNCEMENT_TTL_S * 1000]
    for description in descriptions:
        arguments += [description["id"], json.dumps(description, sort_keys=True)]
    connection.eval(_ANNOUNCE, 2, OFFERED, DESCRIPTIONS, *arguments)


def offered_ids(connection: Redis) -> list[str]:
    """The ids of the languages some worker announced within the TTL, in id order."""
    return sorted(as_text(language) for language in connection.eval(_OFFERED_NOW, 1, OFFERED))


def offered_languages(connection: Redis) -> list[dict[str, Any]]:
    """The descriptions of the languages some worker announced within the TTL, in id order."""
    ids = offered_ids(connection)
    found = connection.hmget(DESCRIPTIONS, ids) if ids else []
    return [json.loads(as_text(description)) for description in found if description is not None]
