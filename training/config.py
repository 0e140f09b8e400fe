"""A training run's configuration: versioned YAML (`experiments/<name>.yaml`) checked by pydantic, so a typo
in a key or a bad value stops the run before any work, with a message naming it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import RetainError
from core.settings import Settings


class TrainConfig(BaseModel):
    """Everything a run may vary. `None` for horizon and seed means: take them from Settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    horizon_days: int | None = Field(None, gt=0, description="label horizon after a cutoff")
    seed: int | None = Field(None, ge=0, description="seeds Optuna, LightGBM and every sample")

    # the time split (store): counted in cutoffs, newest first
    test_cutoffs: int = Field(1, ge=1, description="latest matured cutoffs held out for the test")
    calibration_cutoffs: int = Field(2, ge=1, description="cutoffs before the test: early stopping, tuning")
    embargo: bool = Field(
        False,
        description="leave out cutoffs whose label horizon overlaps the next window's first cutoff, as a "
        "model deployed at that cutoff could not have seen those labels",
    )
    # the split of a bring-your-own table: shares of rows, whole time values (or whole ids) per window
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    calibration_fraction: float = Field(0.2, gt=0, lt=0.5)
    min_train_rows: int = Field(500, ge=10)
    cv_max_rows: int = Field(
        50_000,
        ge=0,
        description="a table with fewer rows is tuned and calibrated by cross-validation, then refitted on "
        "every row; a larger one keeps the train/calibration/test split",
    )
    cv_folds: int = Field(5, ge=3, le=10, description="cross-validation folds of a small table, by id")
    min_window_positives: int = Field(10, ge=1, description="positives and negatives needed in each window")

    # features
    use_health_features: bool = Field(
        False, description="store only: also feed the health score and its components (the baseline)"
    )
    exclude_features: list[str] = Field(default_factory=list)
    max_category_levels: int = Field(100, ge=2, description="wider text columns of a table are dropped")
    monotone: bool = Field(True, description="churn only: constrain features whose direction is certain")

    # the learner
    learner: Literal["classifier", "hazard"] = Field(
        "classifier",
        description="store churn only: hazard fits a discrete-time hazard model on person-period rows "
        "(training/hazard.py), the classifier's time-to-event challenger; both serve the same way",
    )
    hazard_intervals: int = Field(3, ge=2, le=13, description="hazard: equal intervals cutting the horizon")

    # tuning
    n_trials: int | None = Field(20, ge=1)
    timeout_seconds: float | None = Field(None, gt=0)
    objective_metric: Literal["auc", "log_loss"] = "auc"
    max_trees: int = Field(300, ge=10, le=2000)
    max_depth: int = Field(6, ge=2, le=12)
    early_stopping_rounds: int = Field(30, ge=5)
    refit_on_calibration: bool = Field(
        False,
        description="store and large tables: refit the tuned model on the train and calibration windows "
        "together (trees in proportion to the rows, at most max_trees), so the latest labelled cutoffs, "
        "the closest to scoring, teach the model too; the logistic baseline then fits the same rows",
    )
    imbalance: Literal["none", "scale_pos_weight"] = Field(
        "none",
        description="scale_pos_weight reweights positives (calibration then undoes the bias); on simulated "
        "telemetry it changed AUC and calibrated ECE by noise only, so the default keeps raw scores honest",
    )
    threads: int = Field(
        1,
        ge=1,
        description="LightGBM threads; one is as fast on tens of thousands of rows and immune to the 20-50x "
        "OpenMP slowdowns measured when another process holds a core",
    )

    # calibration and evaluation
    calibration: Literal["isotonic", "platt"] = "platt"
    slices: list[str] = Field(default_factory=lambda: ["tier", "segment"])
    truth_dir: Path | None = Field(None, description="a simulator output folder: adds the oracle")
    plots: bool = True
    shap_sample: int = Field(1_000, ge=50)
    plots_dir: Path | None = Field(None, description="where the PNG files go [default: a temp folder]")

    @model_validator(mode="after")
    def _budget(self) -> TrainConfig:
        if self.n_trials is None and self.timeout_seconds is None:
            raise ValueError("set n_trials, timeout_seconds or both: the tuning budget")
        if self.learner == "hazard" and self.objective_metric != "auc":
            raise ValueError("learner hazard is tuned by AUC: its raw scores are interval hazards")
        return self

    def resolved(self, settings: Settings) -> TrainConfig:
        """This config with horizon and seed filled from Settings where the YAML left them out."""
        return self.model_copy(
            update={
                "horizon_days": self.horizon_days or settings.horizon_days,
                "seed": settings.seed if self.seed is None else self.seed,
            }
        )

    @property
    def horizon(self) -> int:
        if self.horizon_days is None:
            raise ValueError("horizon_days is unresolved; call resolved(settings) first")
        return self.horizon_days

    @property
    def random_seed(self) -> int:
        if self.seed is None:
            raise ValueError("seed is unresolved; call resolved(settings) first")
        return self.seed


class UpliftConfig(BaseModel):
    """An uplift run (`retain train --model uplift`): the DR-learners' cross-fitting and trust rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    horizon_days: int | None = Field(None, gt=0, description="outcome horizon after a cutoff")
    seed: int | None = Field(None, ge=0, description="seeds the folds and LightGBM")
    folds: int = Field(3, ge=2, le=10, description="cross-fitting folds, grouped by account")
    clip: float = Field(
        0.001,
        gt=0,
        lt=0.1,
        description="propensities are clipped into [clip, 1 - clip]; keep it below the experiment arm's "
        "propensity, or the clip biases the very rows that identify the effect",
    )
    min_effective_treated: float = Field(
        40.0, gt=0, description="below this effective number of treated rows an action is ranked by the rules"
    )
    threads: int = Field(
        1, ge=1, description="LightGBM threads; more only pays on a machine with idle cores (see TrainConfig)"
    )
    jobs: int | None = Field(
        None,
        ge=1,
        description="processes fitting folds and actions side by side (default: one per core); the "
        "estimates are the same for any number",
    )
    budget_share: float = Field(
        0.1, gt=0, lt=1, description="with truth: the share of accounts a policy may treat when it is judged"
    )
    truth_dir: Path | None = Field(None, description="a simulator output folder: judge against the truth")

    @property
    def resolved_jobs(self) -> int:
        return self.jobs or os.cpu_count() or 1

    def resolved(self, settings: Settings) -> UpliftConfig:
        return self.model_copy(
            update={
                "horizon_days": self.horizon_days or settings.horizon_days,
                "seed": settings.seed if self.seed is None else self.seed,
            }
        )


C = TypeVar("C", bound=BaseModel)


def load_config(path: Path | None, schema: type[C] = TrainConfig, **overrides: object) -> C:  # type: ignore[assignment]
    """The config in `path` (defaults when None), with `overrides` (e.g. CLI flags) on top."""
    data: dict[str, Any] = {}
    if path is not None:
        if not path.exists():
            raise RetainError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise RetainError(f"{path}: not valid YAML ({e})") from e
        if not isinstance(loaded, dict | None):
            raise RetainError(f"{path}: expected a mapping of settings, got {type(loaded).__name__}")
        data = loaded or {}
    where = str(path) if path is not None else "config"
    try:
        return schema.model_validate({**data, **overrides})
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in e.errors()
        )
        raise RetainError(f"{where}: {problems}") from None
