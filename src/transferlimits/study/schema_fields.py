"""The field tables of ``metrics.json`` (a leaf: :mod:`.schema` documents, validates and builds from them).

:data:`TOP_FIELDS` lists the top-level fields in file order, :data:`RUN_FIELDS` the fields of one fine-tuning run,
:data:`ENTRY_FIELDS` one alignment entry and :data:`CALIBRATION_FIELDS` a point's part of the calibrated alignment.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SCHEMA_VERSION", "READ_VERSIONS", "INIT_NAMES", "CURVE_KEYS", "CURVE_KEYS_NEW", "Field", "TOP_FIELDS",
           "RUN_FIELDS", "ENTRY_FIELDS", "CALIBRATION_FIELDS"]

SCHEMA_VERSION = 3
#: versions still read: 2 lacks the fields marked ``since=3`` (the encoder-ablated run and its encoder share)
READ_VERSIONS = (2, 3)
INIT_NAMES = ("pretrained", "scratch", "linear_probe")
CURVE_KEYS = ("epoch", "train_loss", "val_loss", "val_metric", "lr", "wall_s", "device_s")
#: curve keys of newer files (absent from older ones: readers treat them as undefined).
CURVE_KEYS_NEW = ("step", "val_s")


@dataclass(frozen=True)
class Field:
    """One field: ``name``, its JSON ``type`` (checked), what it holds (``doc``), whether it may be null and
    whether it may be absent (``optional``: a field older files lack; readers treat it as undefined)."""

    name: str
    type: type
    doc: str
    nullable: bool = False
    since: int = 2  # the first schema version that has the field (older files are read without it)
    optional: bool = False


TOP_FIELDS: tuple[Field, ...] = (
    Field("schema_version", int, "int, 2"),
    Field("task", str, "task name"),
    Field("model", str, "model name"),
    Field("seed", int, "fine-tuning seed"),
    Field("profile", str, "the profile name"),
    Field("objective", str, 'an objective kind: native, swapped, native_short, random, transfusion, positive'),
    Field("objective_name", str, 'the pre-training objective ("fcmae", "contrastive", "mae")'),
    Field("settings", dict, "what defines the run (resume key): task, model, seed, objective(_name), pretrained "
          "(path), pretrained_sha256, width, reuse_scratch_from, reuse_scratch_sha256, code_sha256 (the computing "
          "modules' source), data_sha256 (the cohort manifest), profile (config.profile_to_dict)"),
    Field("task_spec", dict, "kind, primary_metric, higher_is_better (bool), metrics (list of str)"),
    Field("n_cases", dict, "split -> int (train, val, test, + real for restoration tasks)"),
    Field("runs", dict, "init -> run (fields below) for init in pretrained | scratch | linear_probe | ablated "
          "(ablated: schema 3; the head on a zeroed encoder, shared by a pair's points like scratch; linear_probe "
          "only on the pre-training objectives' points, paths.PROBED_KINDS: an encoder control's rpg.vs_linear_probe "
          "is {} and its normalised_gain.vs_linear_probe null, with the reason in undefined)"),
    Field("baselines", dict, "trivial baseline name -> metric -> float|null on the TEST split (the task kind's "
          "baseline(): identity = the degraded input, train_median = the train-target median constant, "
          "class_prior = the train class prior as constant probabilities, empty_mask = the all-zero mask)"),
    Field("baseline_primary", dict, '{"name", "metric", "value"}: the baseline the runs must beat on the primary '
          "metric (where a kind has several, the strongest one)"),
    Field("learned", dict, 'init -> {"beats_baseline": bool, "margin": float|null}; margin = signed improvement '
          "over baseline_primary on the primary metric (positive = better than the baseline)"),
    Field("rpg", dict, "vs_scratch / vs_linear_probe -> metric -> float|null (percent; positive = pretraining "
          "helped, sign flipped for lower-is-better metrics via the task kind's directions); raw, for every "
          "metric, whether defined or not (use rpg_defined)"),
    Field("rpg_defined", bool, "RPG of the primary metric is defined: the scratch run beats baseline_primary "
          "(metrics.transfer.rpg_status)"),
    Field("rpg_undefined_reason", str, "why rpg_primary is null (null when defined)", nullable=True),
    Field("rpg_primary", float, "RPG of the primary metric vs scratch; null when not rpg_defined", nullable=True),
    Field("normalised_gain", dict, '{"vs_scratch", "vs_linear_probe"} -> float|null in [-1, 1] on the primary '
          "metric (metrics.transfer.normalised_gain against baseline_primary; finite for every point)"),
    Field("normalised_gain_formula", str, "the formula of normalised_gain, as text"),
    Field("encoder_share", dict, "init -> float|null: (P - P_ablated) / (P - P_baseline) on the primary metric, the "
          "share of the run's gain over baseline_primary that its encoder carries (runs.ablated: the same head and "
          "recipe on a zeroed encoder; STUDY §5.1); null where the run does not beat the baseline", since=3),
    Field("lr_groups", dict, 'init -> list of {"name", "lr", "weight_decay", "n_params"}: the optimiser groups '
          "(peak lr). The reduced backbone lr applies to the pretrained encoder only (pretrained, linear_probe's "
          "frozen encoder has no group); scratch trains every parameter at the head's lr (STUDY §4/§5)"),
    Field("convergence", dict, "metrics.convergence.convergence_table, pretrained vs scratch: str(fraction) -> "
          "start (the scratch run's step-0 value), interpolated (true), started_above {pretrained, scratch: bool} "
          "(step-0 value already at the threshold: flagged, times null, never 0), steps_/seconds_/epochs_ "
          "pretrained/scratch/ratio (to start + fraction * (run's best - start), interpolated between the two "
          "evaluations bracketing the first crossing; ratio pretrained / scratch; null + reason in undefined). "
          "Older files: epochs_/seconds_ at whole epochs, no steps_, interpolated, started_above"),
    Field("alignment", dict, 'init -> {"pooled": {layer: entry}, "tokens": {layer: entry}} for pretrained '
          "(pretrained encoder vs its fine-tuned copy) and scratch (random init vs its fine-tuned copy; absent "
          'when the scratch run was reused). pooled: one row per test image per layer ("embedding" = the '
          "encoder's pooled output); tokens: sampled token/voxel rows, clustered by image. Features are "
          "standardised by the mean/SD of the comparison's starting encoder (the pretrained features for "
          "init pretrained); entry fields below. Optional (absent before the calibration: undefined): "
          "weight_change float|null per init (||theta - theta0|| / ||theta0|| of the encoder) and "
          "pretrained.calibration (fields below; the noise floor is the pair index's, study.calibration)"),
    Field("transferability", dict, "pre-hoc (H5): LogME and a linear probe (folds by image) of the FROZEN "
          "pretrained encoder on the train split, per case (pooled embedding) or per patch (dense kinds: token/voxel "
          "rows against the target of their cell); fields below (study.schema_transfer; older files hold only the "
          "required ones)"),
    Field("provenance", dict, "software (dict), hardware (dict), git_commit str, created (ISO UTC), timings "
          "{total_s, finetune_s {init -> s}, measure_s, warmup_s}"),
    Field("examples", str, "file name of the examples npz next to metrics.json: dense tasks input, target, "
          "pred_<init> [k, H, W] on one axial slice per case (the kind's example slice), case_ids; "
          "classification probs_<init> [n, C], labels [n], case_ids; scalar tasks pred_<init>, target"),
    Field("undefined", dict, "dotted.path -> reason, for every value written as null (strict JSON: no NaN/Inf)"),
)
RUN_FIELDS: tuple[Field, ...] = (
    Field("test", dict, "metric -> float|null (aggregated over the test cases)"),
    Field("per_case", list, "dicts: case_id + per-case scores (classification: label, probs)"),
    Field("curve", list, "one dict per evaluation (training.finetune_fit): " + ", ".join(CURVE_KEYS + CURVE_KEYS_NEW)
          + " (older files: epoch ends only, no step/val_s); curve[0] = step 0, before any update (train_loss "
          "null, lr 0); epoch fractional; wall_s/device_s cumulative, validation (val_s) included; with "
          "FinetuneRecipe.eval_subset > 0 also val_metric_/val_loss_subset (a fixed val subset, every entry; "
          "val_metric/val_loss null between epoch ends)"),
    Field("best_epoch", float, "fractional epoch (> 0) of the best full-split validation value after step 0"),
    Field("best_step", int, "optimiser steps before that evaluation (absent in older files)", optional=True),
    Field("best_val", float, "that metric value", nullable=True),
    Field("train_seconds", float, "wall seconds of training"),
    Field("extra", dict, 'split -> metric -> float (e.g. "real": the 2 real exams)'),
)
ENTRY_FIELDS: tuple[Field, ...] = (
    Field("n", int, "rows (images, or tokens)"), Field("dim", int, "feature dimension"),
    Field("n_groups", int, "independent units: images (= n for pooled rows)"),
    Field("mmd2", float, "PAIRED MMD² U-statistic (metrics.mmd_paired) at bandwidth σ", nullable=True),
    Field("p_value", float, "paired permutation p (swap within pairs / whole images)", nullable=True),
    Field("bandwidth", float, "σ = median pairwise distance of the standardised starting-encoder features",
          nullable=True),
    Field("n_permutations", int, "permutations of the test"),
    Field("ci", list, "[lo, hi] percentile CI, bootstrap over pairs (tokens: over images)"),
    Field("mmd2_multi", dict, 'str(multiplier of σ) -> paired MMD², "sum"'),
    Field("mmd2_two_sample", float, "paper-style two-sample MMD² (metrics.mmd.mmd2, pooled median bandwidth); "
          "secondary, ignores the pairing", nullable=True),
    Field("cka", float, "linear CKA (uses the pairing)", nullable=True),
    Field("cka_debiased", float, "debiased linear CKA", nullable=True),
)

#: ``alignment.pretrained.calibration`` (study.calibration_point; also statistic, n, features, note), optional
CALIBRATION_FIELDS: tuple[Field, ...] = tuple(Field(n, t, doc, nullable=t is float) for n, t, doc in (
    ("value", float, "paired MMD² pretrained vs fine-tuned, sigma x multipliers summed"),
    ("ceiling", float, "the same, pretrained vs the random init (scratch before fine-tuning)"),
    ("value_single", float, "value at sigma alone"), ("ceiling_single", float, "ceiling at sigma alone"),
    ("bandwidth", float, "sigma of the standardised pretrained features"), ("multipliers", list, "sigma multipliers"),
    ("data_seed", int, "data seed of the test split used")))
