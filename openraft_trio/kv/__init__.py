"""A replicated key-value store built on openraft_trio: state machine and requests."""

from ._state_machine import CompareAndSwap as CompareAndSwap
from ._state_machine import Delete as Delete
from ._state_machine import Get as Get
from ._state_machine import KvStateMachine as KvStateMachine
from ._state_machine import Set as Set
