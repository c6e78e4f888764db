"""openraft_trio: a Raft consensus engine for Trio, with openraft's architecture.

Import as ``import openraft_trio as raft``; see ``docs/`` for guides and the reference.
"""

import logging as _logging

from ._config import Config as Config
from ._config import SnapshotPolicy as SnapshotPolicy
from ._core.handle import Raft as Raft
from ._core.runtime_config import RuntimeConfig as RuntimeConfig
from ._errors import ChangeMembershipError as ChangeMembershipError
from ._errors import ConfigError as ConfigError
from ._errors import EmptyMembership as EmptyMembership
from ._errors import Fatal as Fatal
from ._errors import ForwardToLeader as ForwardToLeader
from ._errors import InitializeError as InitializeError
from ._errors import InProgress as InProgress
from ._errors import InvalidRequest as InvalidRequest
from ._errors import LearnerNotFound as LearnerNotFound
from ._errors import NetworkError as NetworkError
from ._errors import NotALearner as NotALearner
from ._errors import NotAllowed as NotAllowed
from ._errors import NotAVoter as NotAVoter
from ._errors import NotInMembers as NotInMembers
from ._errors import PayloadTooLarge as PayloadTooLarge
from ._errors import QuorumNotEnough as QuorumNotEnough
from ._errors import RaftError as RaftError
from ._errors import RemoteError as RemoteError
from ._errors import RPCError as RPCError
from ._errors import RPCTimeout as RPCTimeout
from ._errors import Stopped as Stopped
from ._errors import StorageContractViolation as StorageContractViolation
from ._errors import StorageError as StorageError
from ._errors import Unreachable as Unreachable
from ._errors import WaitTimeout as WaitTimeout
from ._messages import AppendEntriesRequest as AppendEntriesRequest
from ._messages import AppendEntriesResponse as AppendEntriesResponse
from ._messages import ClientWriteResponse as ClientWriteResponse
from ._messages import InstallSnapshotResponse as InstallSnapshotResponse
from ._messages import TransferLeaderRequest as TransferLeaderRequest
from ._messages import VoteRequest as VoteRequest
from ._messages import VoteResponse as VoteResponse
from ._metrics import RaftMetrics as RaftMetrics
from ._metrics import ReplicationStatus as ReplicationStatus
from ._open import open_raft as open_raft
from ._types import Blank as Blank
from ._types import Entry as Entry
from ._types import LeaderId as LeaderId
from ._types import LogId as LogId
from ._types import LogState as LogState
from ._types import Membership as Membership
from ._types import MembershipChange as MembershipChange
from ._types import Node as Node
from ._types import Normal as Normal
from ._types import ReadPolicy as ReadPolicy
from ._types import ServerState as ServerState
from ._types import Snapshot as Snapshot
from ._types import SnapshotMeta as SnapshotMeta
from ._types import StoredMembership as StoredMembership
from ._types import Vote as Vote
from ._version import __version__ as __version__
from .network import RPCOption as RPCOption

# A library logs; the application decides where that goes (no output unless configured).
_logging.getLogger("openraft_trio").addHandler(_logging.NullHandler())
