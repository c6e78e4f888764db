"""Client sessions: exactly-once commands for any state machine (Raft thesis §6.3).

Nothing here is public yet: the session table (``_table``) is the deterministic core a
session layer around a user's state machine will build on.
"""

__all__: list[str] = []
