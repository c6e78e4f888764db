"""Network interfaces (and, in ``openraft_trio.network.tcp``, the TCP transport)."""

from . import _wire
from ._protocols import AppendReply as AppendReply
from ._protocols import PipelinedAppend as PipelinedAppend
from ._protocols import RaftNetwork as RaftNetwork
from ._protocols import RaftNetworkFactory as RaftNetworkFactory
from ._protocols import RPCOption as RPCOption

# The transport's messages go through the one converter (``openraft_trio.codec.converter``)
# like every other value: register their encodings on it, once, here where the network
# package is set up, not as a side effect of importing the wire module.
_wire.register_converter_hooks()
