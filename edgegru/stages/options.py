"""The names a command accepts, from where each is defined: what the CLI offers as choices."""

from edgegru.calibrate import CALIBRATION_METHODS
from edgegru.data import DATASETS, DEFAULT_DATASET
from edgegru.golden import ROUNDING_PROFILES
from edgegru.model import VARIANTS
from edgegru.tensor_quant import DEFAULT_WEIGHTS, SCHEMES, WEIGHT_GRANULARITIES
from edgegru.stages.export_stage import FORMATS
from edgegru.train import MAX_STEPS, MIN_STEPS, PASSES, TrainConfig
from export.verify import BACKENDS

__all__ = ["BACKENDS", "CALIBRATION_METHODS", "DEFAULT_WEIGHTS", "DATASETS", "DEFAULT_DATASET", "FORMATS", "MAX_STEPS", "MIN_STEPS",
           "PASSES", "ROUNDING_PROFILES", "SCHEMES", "TrainConfig", "VARIANTS", "WEIGHT_GRANULARITIES"]
