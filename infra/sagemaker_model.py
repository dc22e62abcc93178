from .base import MlfnModel


class MlfnSageMakerModel(MlfnModel):
    TARGET = "sagemaker"
