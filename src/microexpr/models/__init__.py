"""Models stage: the registry and one module per method."""

from microexpr.models.registry import (
    MODELS,
    ModelSpec,
    count_parameters,
    get_model_spec,
    list_models,
    register_model,
)

__all__ = ["MODELS", "ModelSpec", "count_parameters", "get_model_spec", "list_models",
           "register_model"]
