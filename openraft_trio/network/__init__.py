"""Network interfaces (and, in ``openraft_trio.network.tcp``, the TCP transport)."""

from ._protocols import RaftNetwork as RaftNetwork
from ._protocols import RaftNetworkFactory as RaftNetworkFactory
from ._protocols import RPCOption as RPCOption
