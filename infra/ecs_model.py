from .base import MlfnModel


class MlfnEcsGpuModel(MlfnModel):
    TARGET = "ecs"
