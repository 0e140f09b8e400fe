"""The weekly digest for leadership and CSM leads: risk moves, ARR at risk, the plan and its measured
effect, the week's alerts (`retain digest`)."""
