"""Everything that reads or writes a run directory: outputs, checkpoint, reports."""
