"""One typed config tree: the single source of truth for a run and for what the commands do with it.

Every setting is declared once (``schema``), with its default, its bounds and its help text in English and
Vietnamese. The GUI form, the YAML presets, the CLI's ``--set`` keys and the run folder's ``config.yaml``
are all derived from these dataclasses (``io``), so they cannot disagree; ``checks`` validates them.
This package re-exports the three, so that callers write ``from core import config as C``.
"""

from core.config.checks import Issue, check, validate, validate_section
from core.config.io import (diff_from_default, dump_yaml, field_spec, field_type, field_type_of, fields_of, from_dict,
                            literal_choices, load_yaml, parse_set, section_fields, set_field, set_value, to_dict)
from core.config.schema import (SECTIONS, TOP_LEVEL, AnalysisConfig, DataConfig, DecodingConfig, LoraSection,
                                MergeConfig, ModelConfig, RunConfig, TrainSection, opt)

__all__ = ["SECTIONS", "TOP_LEVEL", "AnalysisConfig", "DataConfig", "DecodingConfig", "Issue", "LoraSection",
           "MergeConfig", "ModelConfig", "RunConfig", "TrainSection", "check", "diff_from_default", "dump_yaml",
           "field_spec", "field_type", "field_type_of", "fields_of", "from_dict", "literal_choices", "load_yaml",
           "opt", "parse_set", "section_fields", "set_field", "set_value", "to_dict", "validate", "validate_section"]
