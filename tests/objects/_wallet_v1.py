"""Version 1 of ``Wallet``: what old nodes run."""

from __future__ import annotations

from openraft_trio.objects import ReplicatedObject, query, replicated


class Wallet(ReplicatedObject):
    coins: int = 0

    @replicated
    def add(self, n: int) -> int:
        self.coins += n
        return self.coins

    @query
    def get(self) -> int:
        return self.coins
