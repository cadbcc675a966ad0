"""The study: one (task, model, seed) point end to end -> ``metrics.json``.

* :mod:`.point` - ``run_point`` as resume / compute / assemble;
* :mod:`.runs` - data, encoders and the three fine-tunings (pretrained, scratch, linear probe);
* :mod:`.measure` - MMD², CKA (post-hoc) and LogME / linear probe (pre-hoc);
* :mod:`.features` - encoder features for the measurements;
* :mod:`.schema` - metrics.json: documentation, validation and construction from one definition.
"""

from transferlimits.study.point import run_point, point_dir
from transferlimits.study.schema import INIT_NAMES, SCHEMA_VERSION, load_metrics, validate_metrics

__all__ = ["SCHEMA_VERSION", "INIT_NAMES", "run_point", "validate_metrics", "load_metrics", "point_dir"]
