"""An index of the log's ids without holding the entries.

The log is a sequence of runs, each proposed by one leader. Keeping only the first log id
of every run (plus the last one) answers "which log id is at index i?" in O(log runs)::

    purged      keys[0]         keys[1]               last
    [..p]  (T1-N1.p+1 ... )  (T2-N3.k ...          T2-N3.n)
"""

from __future__ import annotations

import bisect

from .._types import LeaderId, LogId


class LogIdList:
    def __init__(self, purged: LogId | None = None) -> None:
        self.purged: LogId | None = purged
        self._keys: list[LogId] = []
        self._key_index: list[int] = []
        self.last: LogId | None = purged

    @property
    def first_index(self) -> int:
        """Index of the first entry present (after ``purged``)."""
        return 0 if self.purged is None else self.purged.index + 1

    def append(self, log_id: LogId) -> None:
        expected = 0 if self.last is None else self.last.index + 1
        if log_id.index != expected:
            raise ValueError(f"log ids must be contiguous: expected {expected}, got {log_id}")
        if not self._keys or self._keys[-1].leader_id != log_id.leader_id:
            self._keys.append(log_id)
            self._key_index.append(log_id.index)
        self.last = log_id

    def get(self, index: int) -> LogId | None:
        """The log id at ``index``, or None if it is beyond the log or purged away.

        The purged log id itself is still known (it is the snapshot's last log id).
        """
        if index < 0:
            return None
        if self.purged is not None and index == self.purged.index:
            return self.purged
        if self.last is None or index > self.last.index or index < self.first_index:
            return None
        k = bisect.bisect_right(self._key_index, index) - 1
        return LogId(self._keys[k].leader_id, index)

    def leader_at(self, index: int) -> LeaderId | None:
        log_id = self.get(index)
        return None if log_id is None else log_id.leader_id

    def first_index_of_run(self, index: int) -> int:
        """The first index (still present) of the leader run that holds ``index``."""
        k = bisect.bisect_right(self._key_index, index) - 1
        if k < 0:
            return self.first_index
        return max(self._key_index[k], self.first_index)

    def contains(self, log_id: LogId | None) -> bool:
        if log_id is None:
            return True
        return self.get(log_id.index) == log_id

    def truncate_after(self, after: LogId | None) -> None:
        """Drop every id after ``after`` (None: drop all that are present)."""
        keep = -1 if after is None else after.index
        if self.last is None or keep >= self.last.index:
            return  # nothing after ``after``
        k = bisect.bisect_right(self._key_index, keep)
        del self._keys[k:]
        del self._key_index[k:]
        self.last = self.get(keep) if keep >= self.first_index else self.purged

    def purge(self, upto: LogId) -> None:
        """Forget ids up to and including ``upto``."""
        if self.purged is not None and upto.index <= self.purged.index:
            return
        k = bisect.bisect_right(self._key_index, upto.index) - 1
        if k >= 0:
            del self._keys[:k]
            del self._key_index[:k]
            if self.last is not None and self.last.index > upto.index:
                if len(self._keys) > 1 and self._key_index[1] == upto.index + 1:
                    # ``upto`` ends its run: the next run is already first.
                    del self._keys[0]
                    del self._key_index[0]
                else:
                    self._keys[0] = LogId(self._keys[0].leader_id, upto.index + 1)
                    self._key_index[0] = upto.index + 1
            else:
                self._keys.clear()
                self._key_index.clear()
        self.purged = upto
        if self.last is None or self.last.index <= upto.index:
            self.last = upto

    def key_log_ids(self) -> list[LogId]:
        return list(self._keys)
