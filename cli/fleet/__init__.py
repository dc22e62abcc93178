"""Many models at once: `mlfn deploy functions/` (or several folders, or a glob) and the fleet views of status,
list, destroy, invoke and plan. Selection, scheduling, one batched synth, progress and the final table."""
