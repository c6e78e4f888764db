"""``serve --object module:name`` names a ReplicatedObject class or an instance of one (the
initial state: a battery configured by its fields, such as a bounded queue)."""

from __future__ import annotations

import pytest

from openraft_trio.objects import ObjectStateMachine, load_object_class
from openraft_trio.objects.batteries import FifoQueue, Full

from . import _objects
from ._objects import Log, apply, call


async def test_an_instance_is_the_initial_state_and_stays_untouched() -> None:
    loaded = load_object_class("tests.objects._objects:BOUNDED_QUEUE")
    assert loaded is _objects.BOUNDED_QUEUE
    sm = ObjectStateMachine(loaded)
    log = Log()
    replies = await apply(sm, log, call("put", "a"), call("put", "b"), call("put", "c"))
    assert replies == [1, 2, Full(2)]
    # The state machine copied it: the module's instance is still empty.
    assert _objects.BOUNDED_QUEUE.size() == 0


def test_a_class_still_loads_and_anything_else_is_refused() -> None:
    assert load_object_class("openraft_trio.objects.batteries:FifoQueue") is FifoQueue
    with pytest.raises(ValueError, match="is not a ReplicatedObject subclass or instance"):
        load_object_class("tests.objects._objects:log_id")
    with pytest.raises(ValueError, match="module:Class"):
        load_object_class("tests.objects._objects")
