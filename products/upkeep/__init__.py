"""Store upkeep: merge the API's recorded actions into the store, compact and vacuum, check (`upkeep.run`)."""
