"""RudderStack's backup layout in a bucket or folder (SPEC 2): which objects a window can touch,
and the order to read them in. Pure: names and numbers in, decisions out.

RudderStack's archiver writes one gzipped NDJSON object per upload, keyed
`[PREFIX/]SOURCE_ID/gw/YYYY-MM-DD/HOUR/INSTANCE_ID/FIRST_LAST_WORKSPACE_UUID.json.gz`, FIRST and
LAST being the Unix seconds of the first and last job in it. Everything here is decided from the
key, before anything is downloaded:
- a day folder is listed only if the window can touch it, with one day's margin on each side: an
  object is filed under a day near its jobs, but which time names the folder (the first job's or
  the upload's) is the archiver's business, and listing one more day costs one listing;
- an object is opened only if its FIRST..LAST meets the window exactly;
- objects are read in time order (FIRST, then LAST, then key), whatever the key order of hour and
  instance folders (hour `10` sorts before `7`);
- objects whose names do not follow the layout cannot be placed in time: they are read after the
  others, in key order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# A name, or an event's source (NAME:LINE#N, NAME#N#K), to its end: NAME.json.gz.1a2b3c4d (a
# download's temporary file) is no backup object.
OBJECT = re.compile(
    r"(?:^|/)[^/]+/gw/(\d{4}-\d{2}-\d{2})/[^/]+/[^/]+/(\d+)_(\d+)_[^/]+\.json\.gz(?:[:#]\d+)*\Z"
)
MARGIN = timedelta(days=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredObject:
    """One object of a listing: its name as shown (URL or path), its path in its store, size
    and version; a local file's (st_dev, st_ino), links followed, what tells it given twice."""

    name: str
    path: str
    size: int
    version: str  # "etag:..." where the store gives one, else "size:N"
    identity: tuple[int, int] | None = None

    @property
    def times(self) -> tuple[int, int] | None:
        """(FIRST, LAST) from a key that follows the layout, else None."""
        match = OBJECT.search(self.name)
        return None if match is None else (int(match.group(2)), int(match.group(3)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """The --since (inclusive) and --until (exclusive) instants, either open."""

    since: datetime | None = None
    until: datetime | None = None

    def day_may_touch(self, day: str) -> bool:
        """Whether the day folder `day` (YYYY-MM-DD, UTC) may hold objects the window meets."""
        try:
            start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:  # not a date after all: not a day folder, so it is listed
            return True
        if self.since is not None and start + timedelta(days=1) + MARGIN <= self.since:
            return False
        return not (self.until is not None and start - MARGIN >= self.until)

    def meets(self, first: int, last: int) -> bool:
        """Whether jobs from second `first` through second `last` meet the window."""
        if self.since is not None and last + 1 <= self.since.timestamp():
            return False
        return not (self.until is not None and first >= self.until.timestamp())


def is_day_folder(path: str) -> bool:
    """A folder `.../gw/YYYY-MM-DD`."""
    parent, _, name = path.rstrip("/").rpartition("/")
    return DAY.fullmatch(name) is not None and parent.rpartition("/")[2] == "gw"


def reading_order(
    objects: Iterable[StoredObject], window: Window
) -> tuple[list[StoredObject], list[StoredObject]]:
    """The layout objects the window meets, in time order, and the objects outside the layout,
    in key order (read after the others, after a warning)."""
    timed: list[tuple[int, int, str, StoredObject]] = []
    others: list[StoredObject] = []
    for stored in objects:
        times = stored.times
        if times is None:
            others.append(stored)
        elif window.meets(*times):
            timed.append((*times, stored.name, stored))
    timed.sort(key=lambda row: row[:3])
    others.sort(key=lambda stored: stored.name)
    return [row[3] for row in timed], others
