"""Spatial: risk regions, communities, point indexes, the retroactive sweep and map drawing.

No broker and no pipeline imports: arrays and GeoDataFrames in, arrays and frames out.
"""

from geo.checkpoints import Checkpoint
from geo.communities import Community, CommunityIndex
from geo.draw import COLOURS, colour_of, community_map_svg
from geo.errors import (
    CheckpointFileError,
    CommunityFileError,
    FeatureError,
    GeoError,
    GeoFileError,
    GeometryRepairedWarning,
    GeoValueError,
    GeoWarning,
    InvalidGeometryError,
    RegionFileError,
    UnknownRegionError,
)
from geo.load import load_checkpoints, load_communities, load_regions, region_from_feature, region_to_feature
from geo.regions import (
    LEVEL_CODE,
    LEVEL_NAME,
    LEVELS,
    Level,
    LookupResult,
    Region,
    RiskIndex,
    to_epoch_seconds,
)
from geo.sweep import SWEEP_COLUMNS, PlaceStore, sweep

__all__ = [
    "COLOURS",
    "LEVELS",
    "LEVEL_CODE",
    "LEVEL_NAME",
    "SWEEP_COLUMNS",
    "Checkpoint",
    "CheckpointFileError",
    "Community",
    "CommunityFileError",
    "CommunityIndex",
    "FeatureError",
    "GeoError",
    "GeoFileError",
    "GeoValueError",
    "GeoWarning",
    "GeometryRepairedWarning",
    "InvalidGeometryError",
    "Level",
    "LookupResult",
    "PlaceStore",
    "Region",
    "RegionFileError",
    "RiskIndex",
    "UnknownRegionError",
    "colour_of",
    "community_map_svg",
    "load_checkpoints",
    "load_communities",
    "load_regions",
    "region_from_feature",
    "region_to_feature",
    "sweep",
    "to_epoch_seconds",
]
