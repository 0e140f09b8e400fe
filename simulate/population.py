"""Who the customers are: tiers, contracts and the latent traits that drive everything they do.

Traits are drawn once per account and never written anywhere a model can read; the accounts table
holds only what a CRM would: firmographics and the contract as at the later of its start and the
first simulated day (later changes appear only as events, so point-in-time features never see the
future).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.contract import ACCOUNT_SCHEMA, TIER_ARR, Tier
from simulate.config import DAY_US, YEAR_DAYS, SimConfig

TIERS: tuple[Tier, ...] = (Tier.ENTERPRISE, Tier.MID_MARKET, Tier.SMALL_BUSINESS, Tier.TRIAL)
ENTERPRISE, MID_MARKET, SMALL_BUSINESS, TRIAL = range(4)
TIER_SHARE = (0.07, 0.21, 0.42, 0.30)
#: list price per seat per year, and the skew of ARR towards the low end of the tier's range
SEAT_PRICE = (1_100.0, 700.0, 420.0, 260.0)
ARR_SKEW = (2.2, 1.3, 1.2, 1.0)
#: what the tier adds to the sponsor's strength and to price sensitivity (traits, standard normal otherwise)
SPONSOR_BY_TIER = np.array([0.2, 0.0, 0.0, 0.0])
PRICE_BY_TIER = np.array([-0.3, 0.0, 0.1, 0.4])
TRIAL_MIN_ARR = 500.0
#: accounts per CSM: a dedicated CSM for enterprise, pooled ones for the long tail
CSM_LOAD = (8, 30, 120, 600)
PLANS = ("starter", "team", "business", "enterprise")
TIER_PLAN = (3, 2, 1, 0)
#: the segment is the account's main use case (a dimension the seeds name)
SEGMENTS = ("analytics", "automation", "reporting", "data_platform")
INDUSTRIES = (
    "software",
    "financial_services",
    "healthcare",
    "retail",
    "manufacturing",
    "media",
    "education",
    "logistics",
)
REGIONS = ("na", "emea", "apac", "latam")
REGION_SHARE = (0.45, 0.3, 0.18, 0.07)
ICP_SHARE = 0.55
#: share of accounts already customers on day 0; the rest sign during the window
ESTABLISHED_SHARE = 0.7
MAX_TENURE_DAYS = 4 * YEAR_DAYS
_NAME_HEAD = (
    "Acme",
    "Blue",
    "Cedar",
    "Delta",
    "Ember",
    "Falcon",
    "Granite",
    "Harbor",
    "Iris",
    "Juniper",
    "Kite",
    "Lumen",
    "Maple",
    "Nova",
    "Orbit",
    "Pine",
    "Quartz",
    "River",
    "Summit",
    "Tidal",
)
_NAME_TAIL = (
    "Analytics",
    "Systems",
    "Labs",
    "Health",
    "Logistics",
    "Retail",
    "Capital",
    "Media",
    "Works",
    "Group",
    "Foods",
    "Energy",
    "Learning",
    "Robotics",
    "Partners",
    "Cloud",
)


@dataclass(frozen=True)
class Traits:
    """Static latent traits, standard normal unless said; never observable directly."""

    tier: np.ndarray
    segment: np.ndarray
    fit: np.ndarray
    sponsor: np.ndarray
    onboarding: np.ndarray
    price: np.ndarray
    growth: np.ndarray

    def take(self, idx: np.ndarray) -> Traits:
        return Traits(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


@dataclass(frozen=True)
class Population:
    """One chunk of accounts: traits plus what the CRM knows at the start of the window."""

    number: np.ndarray
    traits: Traits
    icp: np.ndarray
    industry: np.ndarray
    region: np.ndarray
    plan: np.ndarray
    seats: np.ndarray
    seat_price: np.ndarray
    start_day: np.ndarray
    renewal_day: np.ndarray
    #: seats in use as a share of seats purchased, on the first active day
    utilisation: np.ndarray
    csm: np.ndarray
    name_head: np.ndarray
    name_tail: np.ndarray

    @property
    def size(self) -> int:
        return len(self.number)

    @property
    def arr(self) -> np.ndarray:
        return np.round(self.seats * self.seat_price, 2)


def _arr(rng: np.random.Generator, tier: np.ndarray) -> np.ndarray:
    arr = np.empty(len(tier))
    for t, name in enumerate(TIERS):
        sel = tier == t
        low, high = TIER_ARR[name]
        low = max(low, TRIAL_MIN_ARR)
        arr[sel] = low * (high / low) ** (rng.random(int(sel.sum())) ** ARR_SKEW[t])
    return np.minimum(arr, np.array([TIER_ARR[n][1] - 1.0 for n in TIERS])[tier])


def _csm(rng: np.random.Generator, tier: np.ndarray, total: int) -> np.ndarray:
    """CSM codes: tier * 10_000 + index within the tier's pool, pools sized to the whole population."""
    pool = np.array([max(1, round(total * s / load)) for s, load in zip(TIER_SHARE, CSM_LOAD, strict=True)])
    return tier.astype(np.int64) * 10_000 + rng.integers(0, pool[tier])


def draw_population(rng: np.random.Generator, config: SimConfig, first: int, size: int) -> Population:
    tier = rng.choice(4, size, p=TIER_SHARE).astype(np.int8)
    icp = rng.random(size) < ICP_SHARE
    established = rng.random(size) < ESTABLISHED_SHARE
    tenure = rng.integers(30, MAX_TENURE_DAYS, size)
    new_start = rng.integers(0, config.days, size)
    start_day = np.where(established, -tenure, new_start)
    renewal_day = start_day + YEAR_DAYS * np.maximum(1, np.ceil((1 - start_day) / YEAR_DAYS)).astype(np.int64)
    arr = _arr(rng, tier)
    price = np.array(SEAT_PRICE)[tier] * rng.uniform(0.8, 1.2, size)
    seats = np.maximum(1, np.round(arr / price)).astype(np.int64)
    fit = rng.normal(0.0, 1.0, size) + 0.5 * icp - 0.25 + 0.25 * established
    traits = Traits(
        tier=tier,
        segment=rng.integers(0, len(SEGMENTS), size).astype(np.int8),
        fit=fit,
        sponsor=rng.normal(0.0, 1.0, size) + SPONSOR_BY_TIER[tier],
        onboarding=rng.normal(0.0, 1.0, size),
        price=rng.normal(0.0, 1.0, size) + PRICE_BY_TIER[tier],
        growth=rng.normal(0.0, 1.0, size),
    )
    utilisation = np.clip(0.6 + 0.12 * fit + 0.12 * traits.growth + rng.normal(0, 0.12, size), 0.15, 1.1)
    return Population(
        number=np.arange(first, first + size, dtype=np.int64),
        traits=traits,
        icp=icp,
        industry=rng.integers(0, len(INDUSTRIES), size),
        region=rng.choice(len(REGIONS), size, p=REGION_SHARE),
        plan=np.array(TIER_PLAN)[tier],
        seats=seats,
        seat_price=arr / seats,
        start_day=start_day,
        renewal_day=renewal_day,
        utilisation=np.where(established, utilisation, utilisation * 0.8),
        csm=_csm(rng, tier, config.accounts),
        name_head=rng.integers(0, len(_NAME_HEAD), size),
        name_tail=rng.integers(0, len(_NAME_TAIL), size),
    )


def retier(
    rng: np.random.Generator, pop: Population, moved: np.ndarray, share: tuple[float, ...], total: int
) -> Population:
    """`pop` with the `moved` accounts' tiers drawn afresh from `share`, and what the tier sets drawn again to
    match (ARR, seats, plan, CSM, the tier's part of the sponsor and price traits); the other accounts, and
    everything else about the moved ones, stay as they were."""
    idx = np.flatnonzero(moved)
    old = pop.traits.tier[idx]
    tier = rng.choice(len(TIERS), len(idx), p=share).astype(np.int8)
    arr = _arr(rng, tier)
    price = np.array(SEAT_PRICE)[tier] * rng.uniform(0.8, 1.2, len(idx))
    seats = np.maximum(1, np.round(arr / price)).astype(np.int64)
    tr = pop.traits
    traits = replace(
        tr,
        tier=_put(tr.tier, idx, tier),
        sponsor=_put(tr.sponsor, idx, tr.sponsor[idx] - SPONSOR_BY_TIER[old] + SPONSOR_BY_TIER[tier]),
        price=_put(tr.price, idx, tr.price[idx] - PRICE_BY_TIER[old] + PRICE_BY_TIER[tier]),
    )
    return replace(
        pop,
        traits=traits,
        plan=_put(pop.plan, idx, np.array(TIER_PLAN)[tier]),
        seats=_put(pop.seats, idx, seats),
        seat_price=_put(pop.seat_price, idx, arr / seats),
        csm=_put(pop.csm, idx, _csm(rng, tier, total)),
    )


def _put(values: np.ndarray, idx: np.ndarray, new: np.ndarray) -> np.ndarray:
    """A copy of `values` with `new` at `idx`."""
    out = values.copy()
    out[idx] = new
    return out


def id_width(accounts: int) -> int:
    return max(6, len(str(accounts - 1)))


def padded(values: np.ndarray, width: int) -> pa.Array:
    """Zero-padded decimal strings, built by Arrow rather than row by row in Python."""
    return pc.utf8_lpad(pc.cast(pa.array(values, pa.int64()), pa.string()), width, "0")


def account_ids(pop: Population, width: int) -> pa.Array:
    return pc.binary_join_element_wise("acc", padded(pop.number, width), "-")


def _take(vocab: tuple[str, ...], codes: np.ndarray) -> pa.Array:
    return pc.take(pa.array(vocab, pa.string()), pa.array(codes, pa.int64()))


def accounts_table(pop: Population, config: SimConfig, start_us: int, width: int) -> pa.Table:
    """The CRM's view of the chunk: the contract as at max(contract start, day 0)."""
    csm_tier = pop.csm // 10_000
    csm_ids = pc.binary_join_element_wise(
        "csm", _take(tuple(t.value for t in TIERS), csm_tier), padded(pop.csm % 10_000, 3), "-"
    )
    names = pc.binary_join_element_wise(
        _take(_NAME_HEAD, pop.name_head), _take(_NAME_TAIL, pop.name_tail), " "
    )
    columns = {
        "account_id": account_ids(pop, width),
        "name": names,
        "tier": _take(tuple(t.value for t in TIERS), pop.traits.tier),
        "segment": _take(SEGMENTS, pop.traits.segment),
        "icp": pa.array(pop.icp),
        "industry": _take(INDUSTRIES, pop.industry),
        "region": _take(REGIONS, pop.region),
        "plan": _take(PLANS, pop.plan),
        "seats_purchased": pa.array(pop.seats, pa.int64()),
        "arr": pa.array(pop.arr, pa.float64()),
        "contract_start": pa.array(start_us + pop.start_day * DAY_US, pa.int64()),
        "renewal_date": pa.array(start_us + pop.renewal_day * DAY_US, pa.int64()),
        "csm_id": csm_ids,
    }
    arrays = [
        columns[f.name].cast(f.type) if f.type != columns[f.name].type else columns[f.name]
        for f in ACCOUNT_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=ACCOUNT_SCHEMA)
