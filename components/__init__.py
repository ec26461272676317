"""moe-ep components: deploy a Mixture-of-Experts model with expert parallelism on Kubernetes."""

from .node_pool import GpuNodePool
from .monitoring import Monitoring, MonitoringArgs
from .namespace import ServiceNamespace
from .placement import Placement
from .pools import DecodePool, PrefillPool, ServingPool
from .service import MoEEPService
from .spec import PoolSpec, ServiceSpec, StackError, load_service, service_from_config
from .unit import DistributedUnit, DistributedUnitArgs

__all__ = [
    "DecodePool", "DistributedUnit", "DistributedUnitArgs", "GpuNodePool", "MoEEPService", "Monitoring", "MonitoringArgs", "Placement", "PoolSpec",
    "PrefillPool", "ServiceNamespace", "ServiceSpec", "ServingPool", "StackError", "load_service", "service_from_config",
]
