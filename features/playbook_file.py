"""The playbook file: a deployment's actions, when an account is eligible for each, the order each health
band's play reaches for them, and the alerts pushed to playbook engines, read from YAML and checked before
anything runs on it, every error said at its line.

Which file: `RETAIN_PLAYBOOK` (a path) when set, else `playbook.yaml` in the store's folder when there is
one, else the built-in file (`core/playbook.yaml`), which holds what the simulated world's team
does. Conditions are SQL over the feature catalogue (`features.conditions`); each eligibility test reads
one feature, so the reason a CSM reads can be that feature's own sentence.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core.catalogue import BUILT_IN_PLAYBOOK, Action, ActionName, Catalogue, read_catalogue
from core.errors import RetainError
from core.settings import Settings
from core.yaml_lines import LocatedYaml, PathPart, read_located_file
from features.conditions import Columns, Condition, ConditionError, compile_condition
from features.definitions import CATEGORY_VALUES, FEATURE_BY_NAME
from store.delta import Store

#: the playbook a store's folder may hold
STORE_FILE = "playbook.yaml"
#: the health bands, best first: every play is one band's
HEALTH_BANDS = ("healthy", "neutral", "at_risk", "critical")
#: alerts Retain raises itself, whatever the playbook: its rules may not take these names
SYSTEM_ALERTS = ("risk_band_changed", "recommendation_changed", "champion_changed")
#: what the conditions may read: the feature catalogue's columns, and the values of its fixed-set text
COLUMNS = Columns(
    kinds={name: "text" if f.unit == "category" else "number" for name, f in FEATURE_BY_NAME.items()},
    values={**CATEGORY_VALUES, "health_band": HEALTH_BANDS},
)
Sentence = Annotated[str, StringConstraints(min_length=1, max_length=300)]
#: the most actions a playbook holds: the built-in has twelve, and a CSM team does not run hundreds
MAX_ACTIONS = 200


@dataclass(frozen=True)
class Test:
    """One condition on one feature; `if_true`/`if_false` (formatted with `value`) replace the feature's
    own sentence where it reads badly."""

    feature: str
    condition: Condition
    if_true: str | None = None
    if_false: str | None = None


@dataclass(frozen=True)
class Rule:
    """Eligible when any trigger holds and every gate holds; `otherwise` says why not when no trigger
    holds."""

    triggers: tuple[Test, ...]
    otherwise: str
    gates: tuple[Test, ...] = ()


@dataclass(frozen=True)
class Play:
    """A health band's default play: the rules ranking when no model ranks the actions."""

    band: str
    name: str
    #: every catalogue action, in the order this band's play reaches for them
    priority: tuple[str, ...]


@dataclass(frozen=True)
class AlertRule:
    """A signal the playbook reacts to: `when` over the feature catalogue, `evidence` the features a CSM
    is shown (the first in the summary), `actions` those that answer it (offered where eligible)."""

    type: str
    title: str
    when: Condition
    evidence: tuple[str, ...]
    actions: tuple[str, ...]


@dataclass(frozen=True)
class Playbook:
    #: the file it was read from, or "built-in"
    source: str
    #: the file's SHA-256: which playbook a model was trained under, or a plan made with
    digest: str
    catalogue: Catalogue
    rules: dict[str, Rule]
    plays: dict[str, Play]
    alerts: tuple[AlertRule, ...]

    @property
    def actions(self) -> dict[str, Action]:
        return self.catalogue.actions

    @property
    def names(self) -> tuple[str, ...]:
        return self.catalogue.names

    @property
    def alert_types(self) -> tuple[str, ...]:
        """Every alert type it can raise: its rules', then Retain's own."""
        return (*(r.type for r in self.alerts), *SYSTEM_ALERTS)


@dataclass(frozen=True)
class PlaybookSummary:
    """What `retain playbook check` says of a playbook that reads."""

    source: str
    digest: str
    actions: list[str]
    alert_types: list[str]
    contact_limit: str | None

    @staticmethod
    def of(playbook: Playbook) -> PlaybookSummary:
        limit = playbook.catalogue.contact_limit
        return PlaybookSummary(
            playbook.source,
            playbook.digest,
            list(playbook.names),
            [rule.type for rule in playbook.alerts],
            None if limit is None else f"one {', '.join(limit.channels)} action per {limit.days} days",
        )


# -- the file's shape ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _TestSpec(_Strict):
    when: str = Field(min_length=1)
    if_true: Sentence | None = None
    if_false: Sentence | None = None


class _RuleSpec(_Strict):
    any: tuple[_TestSpec, ...] = Field(min_length=1)
    otherwise: Sentence
    all: tuple[_TestSpec, ...] = ()


class _PlaySpec(_Strict):
    name: Sentence
    order: tuple[ActionName, ...] = ()


class _AlertSpec(_Strict):
    type: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
    title: Sentence
    when: str = Field(min_length=1)
    evidence: tuple[str, ...] = Field(min_length=1)
    actions: tuple[ActionName, ...] = ()


class _Sections(BaseModel):
    """The sections this layer reads; `core.catalogue` checks `version` and the catalogue's."""

    model_config = ConfigDict(extra="forbid")

    version: int
    actions: dict[str, object]
    contact_limit: object = None
    eligibility: dict[ActionName, _RuleSpec]
    plays: dict[str, _PlaySpec]
    alerts: tuple[_AlertSpec, ...] = ()


# -- reading it ---------------------------------------------------------------------------------------


def read_playbook(document: LocatedYaml) -> Playbook:
    """The playbook of a parsed file; RetainError names each line to fix."""
    actions = document.data.get("actions") if isinstance(document.data, dict) else None
    if isinstance(actions, dict) and len(actions) > MAX_ACTIONS:  # before each is checked, one by one
        raise document.refuse(
            ("actions",), f"{len(actions):,} actions; a playbook holds at most {MAX_ACTIONS}"
        )
    catalogue = read_catalogue(document)
    sections = document.validate(_Sections)
    rules = {
        action: _rule(document, ("eligibility", action), spec)
        for action, spec in sections.eligibility.items()
    }
    for action in rules:
        if action not in catalogue.actions:
            raise document.refuse(("eligibility", action), f"no action {action!r} in `actions`")
    for action in catalogue.actions:
        if f"days_since_{action}" in FEATURE_BY_NAME:
            raise document.refuse(("actions", action), f"days_since_{action} is a feature already: rename it")
        if action not in rules:
            raise document.refuse(("actions", action), f"{action} has no rule under `eligibility`")
    return Playbook(
        source=document.source,
        digest=hashlib.sha256(document.text.encode()).hexdigest(),
        catalogue=catalogue,
        rules={a: rules[a] for a in catalogue.actions},
        plays=_plays(document, sections.plays, catalogue),
        alerts=tuple(
            _alert(document, ("alerts", i), spec, catalogue, sections.alerts[:i])
            for i, spec in enumerate(sections.alerts)
        ),
    )


def load_playbook(path: Path) -> Playbook:
    """The playbook in the file at `path`, checked."""
    return read_playbook(read_located_file(path))


def playbook_path(store: Store, settings: Settings) -> Path:
    """Which file a store runs: the setting, else the store's own, else the built-in."""
    if settings.playbook is not None:
        return settings.playbook
    own = store.root / STORE_FILE
    return own if own.is_file() else BUILT_IN_PLAYBOOK


def store_playbook(store: Store, settings: Settings) -> Playbook:
    """The playbook a store runs (`playbook_path`), checked."""
    path = playbook_path(store, settings)
    return BUILT_IN if path == BUILT_IN_PLAYBOOK else load_playbook(path)


def _condition(document: LocatedYaml, at: tuple[PathPart, ...], text: str) -> Condition:
    try:
        return compile_condition(text, COLUMNS)
    except ConditionError as e:
        raise document.refuse(at, str(e)) from None


def _test(document: LocatedYaml, at: tuple[PathPart, ...], spec: _TestSpec) -> Test:
    condition = _condition(document, (*at, "when"), spec.when)
    if len(condition.columns) != 1:
        raise document.refuse(
            (*at, "when"),
            f"a test reads one feature (it reads {', '.join(condition.columns) or 'none'}), so its reason "
            "can be that feature's; write one test per feature",
        )
    for key in ("if_true", "if_false"):
        template = getattr(spec, key)
        if template is not None and re.search(r"\{(?!value[}:!])", template):
            raise document.refuse((*at, key), "the only placeholder a reason may hold is {value}")
    return Test(condition.columns[0], condition, spec.if_true, spec.if_false)


def _rule(document: LocatedYaml, at: tuple[PathPart, ...], spec: _RuleSpec) -> Rule:
    return Rule(
        tuple(_test(document, (*at, "any", i), t) for i, t in enumerate(spec.any)),
        spec.otherwise,
        tuple(_test(document, (*at, "all", i), t) for i, t in enumerate(spec.all)),
    )


def _plays(document: LocatedYaml, specs: dict[str, _PlaySpec], catalogue: Catalogue) -> dict[str, Play]:
    missing = [band for band in HEALTH_BANDS if band not in specs]
    if missing:
        raise document.refuse(("plays",), f"no play for {', '.join(missing)}: every health band needs one")
    plays = {}
    for band, spec in specs.items():
        if band not in HEALTH_BANDS:
            raise document.refuse(
                ("plays", band), f"no health band {band!r}; bands are {', '.join(HEALTH_BANDS)}"
            )
        for i, action in enumerate(spec.order):
            if action not in catalogue.actions:
                raise document.refuse(("plays", band, "order", i), f"no action {action!r} in `actions`")
        if len(set(spec.order)) != len(spec.order):
            raise document.refuse(("plays", band, "order"), "an action is listed twice")
        rest = tuple(a for a in catalogue.actions if a not in spec.order)
        plays[band] = Play(band, spec.name, (*spec.order, *rest))
    return {band: plays[band] for band in HEALTH_BANDS}


def _alert(
    document: LocatedYaml,
    at: tuple[PathPart, ...],
    spec: _AlertSpec,
    catalogue: Catalogue,
    before: tuple[_AlertSpec, ...],
) -> AlertRule:
    if spec.type in SYSTEM_ALERTS or spec.type in {b.type for b in before}:
        raise document.refuse((*at, "type"), f"the alert type {spec.type} is taken: name it otherwise")
    when = _condition(document, (*at, "when"), spec.when)
    for i, feature in enumerate(spec.evidence):
        if feature not in FEATURE_BY_NAME:
            raise document.refuse(
                (*at, "evidence", i), f"no feature named {feature} in the feature catalogue"
            )
    for i, action in enumerate(spec.actions):
        if action not in catalogue.actions:
            raise document.refuse((*at, "actions", i), f"no action {action!r} in `actions`")
    return AlertRule(spec.type, spec.title, when, spec.evidence, spec.actions)


def _built_in() -> Playbook:
    try:
        return replace(load_playbook(BUILT_IN_PLAYBOOK), source="built-in")
    except RetainError as e:  # a broken install, not a user's mistake: say so loudly
        raise RuntimeError(f"the built-in playbook does not read: {e}") from e


BUILT_IN: Playbook = _built_in()
