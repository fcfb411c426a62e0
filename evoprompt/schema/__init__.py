"""The configuration schema: one dataclass per command (`commands`), the sections they share (`sections`) and
the field helpers (`fields`). Data only: typing and validation of a composed config are evoprompt/validate.py's,
the configuration reference and hydra's base configs `reference`'s."""
from evoprompt.schema.commands import (
    COMMAND_SCHEMAS,
    RUN_ROLES,
    SCHEMAS,
    AlignConfig,
    EvalConfig,
    ExplainConfig,
    ExportCommandConfig,
    GateCalibrateConfig,
    GuardedConfig,
    JudgeConfig,
    MitigateConfig,
    PromptSetsConfig,
    RunConfig,
)
from evoprompt.schema.fields import SAFETY_PRIOR, SPLITS, opt
from evoprompt.schema.sections import (
    AlignSettings,
    CacheConfig,
    CommandConfig,
    DecodingConfig,
    EmbedderConfig,
    EvalSet,
    ExportConfig,
    FitnessConfig,
    GateConfig,
    LoraSettings,
    RefusalJudgeConfig,
    RewriterConfig,
    RoleConfig,
    SearchConfig,
    SeedsConfig,
    StageSettings,
)

__all__ = ["COMMAND_SCHEMAS", "RUN_ROLES", "SCHEMAS", "SAFETY_PRIOR", "SPLITS", "opt", "RunConfig", "PromptSetsConfig", "EvalConfig", "ExplainConfig", "ExportCommandConfig", "JudgeConfig", "GateCalibrateConfig", "AlignConfig", "GuardedConfig",
    "MitigateConfig", "DecodingConfig", "RoleConfig", "GateConfig", "EmbedderConfig", "CacheConfig", "CommandConfig", "SeedsConfig", "RewriterConfig", "RefusalJudgeConfig", "FitnessConfig", "SearchConfig", "ExportConfig", "LoraSettings", "StageSettings", "EvalSet", "AlignSettings"]
