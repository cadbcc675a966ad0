"""The study: one (task, model, seed) point end to end -> ``metrics.json``; one (task, model) pair = its points.

* :mod:`.pair` - ``run_pair``: every seed and objective of a pair, resumed point by point;
* :mod:`.pair_summary` - the pair page's per-seed table and paired gain over seeds;
* :mod:`.point` - ``run_point`` as resume / compute / assemble;
* :mod:`.runs` - data, encoders and the three fine-tunings (pretrained, scratch, linear probe);
* :mod:`.measure` - MMD², CKA (post-hoc);
* :mod:`.prehoc` - LogME / linear probe (pre-hoc) on per-case or per-patch targets;
* :mod:`.features` - encoder features for the measurements; :mod:`.patch_features` - feature rows with their
  cells on the target grid (the per-patch targets);
* :mod:`.schema` - metrics.json: documentation, validation and construction from one definition.
"""

from transferlimits.study.point import Collaborators, PointFiles, point_dir, run_point
from transferlimits.study.resume import PointKey
from transferlimits.study.pair import PairRequest, run_pair
from transferlimits.study.schema import INIT_NAMES, SCHEMA_VERSION, load_metrics, validate_metrics

__all__ = ["SCHEMA_VERSION", "INIT_NAMES", "PointKey", "PointFiles", "Collaborators", "PairRequest", "run_point",
           "run_pair", "validate_metrics", "load_metrics", "point_dir"]
