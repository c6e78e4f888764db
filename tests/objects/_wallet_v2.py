"""Version 2 of ``Wallet``: ``add`` pays a bonus of one coin, ``reset`` is new; version 1's
``add`` is kept under another Python name so that old entries replay unchanged."""

from __future__ import annotations

from openraft_trio.objects import ReplicatedObject, query, replicated


class Wallet(ReplicatedObject):
    coins: int = 0

    @replicated(name="add", version=1)
    def add_v1(self, n: int) -> int:
        self.coins += n
        return self.coins

    @replicated(version=2)
    def add(self, n: int) -> int:
        self.coins += n + 1
        return self.coins

    @replicated(version=2)
    def reset(self) -> int:
        self.coins = 0
        return 0

    @query
    def get(self) -> int:
        return self.coins
