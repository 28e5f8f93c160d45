"""The registry's public surface, in one import: names re-exported from the modules that own them.

* :mod:`fsanet.models.catalogue`: families and their discovery, registry names, configs, builds, recipes;
* :mod:`fsanet.models.identity`: what a model computes (weights + config identities);
* :mod:`fsanet.models.pretrained`: where a ``name.tag``'s weights come from (cache, Hub, original files);
* :mod:`fsanet.models.specs`: what a spec names (registry name, folder, Hub repo) and :func:`load_model`.

The modules of ``fsanet.models`` import from those modules (never from this one, which imports them all);
other layers and packages may use either.
"""

from fsanet.models.catalogue import (
    ENTRY_POINT_GROUP,
    build_model,
    converter_for,
    describe,
    explain,
    families,
    family,
    family_of,
    is_registry_name,
    list_models,
    method_of,
    model_entry,
    provenance,
    recipe_of,
    skeleton,
    split_name,
    validate_config,
    validate_state_dict,
)
from fsanet.models.identity import ModelIdentity, canonical_config, config_identity, identify, model_identity
from fsanet.models.pretrained import convert_original, create_model, fetch_original
from fsanet.models.specs import (
    HF_HUB_PREFIX,
    LOCAL_DIR_PREFIX,
    ModelSpec,
    is_repo_id,
    is_revision,
    load_model,
    parse_spec,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "HF_HUB_PREFIX",
    "LOCAL_DIR_PREFIX",
    "ModelIdentity",
    "ModelSpec",
    "build_model",
    "canonical_config",
    "config_identity",
    "convert_original",
    "converter_for",
    "create_model",
    "describe",
    "explain",
    "families",
    "family",
    "family_of",
    "fetch_original",
    "identify",
    "is_registry_name",
    "is_repo_id",
    "is_revision",
    "list_models",
    "load_model",
    "method_of",
    "model_entry",
    "model_identity",
    "parse_spec",
    "provenance",
    "recipe_of",
    "skeleton",
    "split_name",
    "validate_config",
    "validate_state_dict",
]
