"""The node's capacity and allocatable resources.

Owns: reading CPU and memory capacity (psutil) and subtracting the configured reserve.
Rules: allocatable never goes below zero; the pure part (`allocatable_of`) takes numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil


@dataclass(frozen=True, slots=True)
class NodeResources:
    capacity_cpu_millicores: int
    capacity_memory_bytes: int
    allocatable_cpu_millicores: int
    allocatable_memory_bytes: int

    def to_dict(self) -> dict[str, dict[str, str]]:
        """Kubernetes' shape: quantities as strings."""
        return {
            "capacity": {"cpu": f"{self.capacity_cpu_millicores}m", "memory": str(self.capacity_memory_bytes)},
            "allocatable": {"cpu": f"{self.allocatable_cpu_millicores}m", "memory": str(self.allocatable_memory_bytes)},
        }


def allocatable_of(
    cpu_millicores: int, memory_bytes: int, *, reserved_cpu_millicores: int, reserved_memory_bytes: int
) -> NodeResources:
    return NodeResources(
        capacity_cpu_millicores=cpu_millicores,
        capacity_memory_bytes=memory_bytes,
        allocatable_cpu_millicores=max(0, cpu_millicores - reserved_cpu_millicores),
        allocatable_memory_bytes=max(0, memory_bytes - reserved_memory_bytes),
    )


def read_node_resources(*, reserved_cpu_millicores: int, reserved_memory_bytes: int) -> NodeResources:
    cpus = psutil.cpu_count(logical=True) or 1
    memory = psutil.virtual_memory().total
    return allocatable_of(cpus * 1000, memory, reserved_cpu_millicores=reserved_cpu_millicores,
                          reserved_memory_bytes=reserved_memory_bytes)
