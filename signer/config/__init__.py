"""Service configuration: a TOML file, then ``SIGNER_*`` environment overrides, validated
against one declared schema (`signer.config.schema`)."""

from signer.config.loader import load_config
from signer.config.model import CampaignsConfig, Config, TlsConfig, TokenConfig
from signer.config.schema import DEFAULT_MODULE, ENV_OVERRIDES, LOG_FORMATS, SETTINGS, Setting

__all__ = [
    "DEFAULT_MODULE",
    "ENV_OVERRIDES",
    "LOG_FORMATS",
    "SETTINGS",
    "CampaignsConfig",
    "Config",
    "Setting",
    "TlsConfig",
    "TokenConfig",
    "load_config",
]
