"""Testing tools: the in-process ``Router`` with fault injection and ``open_cluster``."""

from ._cluster import Cluster as Cluster
from ._cluster import open_cluster as open_cluster
from ._router import Router as Router
from ._router import RouterNetwork as RouterNetwork
from ._router import RouterNetworkFactory as RouterNetworkFactory
