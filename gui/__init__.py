"""LoRA Studio's Gradio front end: one module per tab; no training logic lives here."""
