"""The action catalogue (docs/domain.md): what next-best-action ranks, with its cost, channel, cool-down,
approval and whether the autopilot may take it alone, and the contact limit over all of them.

It is the `actions` and `contact_limit` sections of a playbook file; the built-in catalogue is the one in
the built-in file (`playbook.yaml` beside this module), which the simulator's world is made of. The
description is the action's trigger in words, never its worth: worth is the causal uplift times the
account's value, minus the cost. The rest of the file (eligibility, plays, alerts) is read over the
feature catalogue, a layer up (`features.playbook_file`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from core.contract import HOLDOUT
from core.yaml_lines import LocatedYaml, read_located_file

#: the playbook file Retain runs when a deployment brings none
BUILT_IN_PLAYBOOK = Path(__file__).with_name("playbook.yaml")
Channel = Literal["email", "call", "meeting", "in_app"]
#: an action's name: what the interventions table, the API and the models call it
ActionName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Belief(_Strict):
    """A believed effect on one outcome, as a share of the account's baseline probability (-0.2 takes a
    fifth of the risk away), with the spread of the belief."""

    mean: float = Field(ge=-1.0, le=10.0)
    sd: float = Field(gt=0.0, le=10.0)


class ActionPrior(_Strict):
    """What the team believes an action does before Retain's data say so, and on what authority. The uplift
    model starts from it and moves as far as the data's precision allows (`training.causal.posterior`)."""

    source: str = Field(min_length=1, max_length=300, description="who believes it, or where it is published")
    churn: Belief | None = None
    expansion: Belief | None = None

    @model_validator(mode="after")
    def _believes_something(self) -> ActionPrior:
        if self.churn is None and self.expansion is None:
            raise ValueError("a prior gives `churn`, `expansion` or both")
        return self

    def for_outcome(self, outcome: str) -> Belief | None:
        return self.churn if outcome == "churn" else self.expansion if outcome == "expansion" else None


class ActionFields(_Strict):
    """What the file says of an action, under its name."""

    description: str = Field(min_length=1)
    channel: Channel
    cost_hours: float = Field(0.0, ge=0, multiple_of=0.25, description="CSM hours, in quarter hours")
    cost_usd: float = Field(0.0, ge=0, description="money it costs beyond the hours (a discount)")
    cooldown_days: int = Field(ge=0, description="days before the same account may be offered it again")
    needs_approval: bool = False
    settles_at_renewal: bool = False
    #: the autopilot may execute it with no CSM (`retain autopilot run`): low-risk, automated channels only
    autonomous: bool = False
    prior: ActionPrior | None = None

    @model_validator(mode="after")
    def _autonomous_needs_no_approval(self) -> ActionFields:
        if self.autonomous and self.needs_approval:
            raise ValueError("an autonomous action runs with no one to approve it: drop `needs_approval`")
        return self


class Action(ActionFields):
    name: ActionName


class ContactLimit(_Strict):
    """At most one action on `channels` per account within `days`, whatever the action."""

    days: int = Field(gt=0)
    channels: tuple[Channel, ...] = Field(min_length=1)


@dataclass(frozen=True)
class Catalogue:
    """A playbook's actions, in the file's order (the order plays fall back to), and its contact limit."""

    actions: dict[str, Action]
    contact_limit: ContactLimit | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.actions)


class _CatalogueSections(BaseModel):
    """The sections this layer reads; the others are checked by `features.playbook_file`."""

    model_config = ConfigDict(extra="allow")

    version: Literal[1]
    actions: dict[ActionName, ActionFields] = Field(min_length=1)
    contact_limit: ContactLimit | None = None


def read_catalogue(document: LocatedYaml) -> Catalogue:
    """The catalogue of a playbook document; errors name the file's line."""
    if not isinstance(document.data, dict):
        raise document.refuse((), "a playbook is a mapping with `version`, `actions`, `eligibility`, ...")
    sections = document.validate(_CatalogueSections)
    if HOLDOUT in sections.actions:
        raise document.refuse(
            ("actions", HOLDOUT), f"{HOLDOUT} marks the plan's held-out rows: name it otherwise"
        )
    return Catalogue(
        {name: Action(name=name, **fields.model_dump()) for name, fields in sections.actions.items()},
        sections.contact_limit,
    )


BUILT_IN: Catalogue = read_catalogue(read_located_file(BUILT_IN_PLAYBOOK))
#: the built-in actions: what the simulator's world can take
CATALOGUE: dict[str, Action] = BUILT_IN.actions
ACTIONS: tuple[str, ...] = BUILT_IN.names
