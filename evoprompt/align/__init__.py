"""`evoprompt align`: fine-tune a target on the exported SFT/DPO data and measure what it changed."""
