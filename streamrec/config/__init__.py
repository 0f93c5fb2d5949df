"""Pipeline configuration: TOML files in ``configs/`` loaded into validated pydantic models."""

from streamrec.config.load import ConfigError, load_config, override, parse_config
from streamrec.config.model import (
    BatchConfig,
    DetectorConfig,
    MatcherConfig,
    OutputsConfig,
    PipelineConfig,
    RunConfig,
    SourceConfig,
    TrackerConfig,
)

__all__ = [
    "BatchConfig",
    "ConfigError",
    "DetectorConfig",
    "MatcherConfig",
    "OutputsConfig",
    "PipelineConfig",
    "RunConfig",
    "SourceConfig",
    "TrackerConfig",
    "load_config",
    "override",
    "parse_config",
]
