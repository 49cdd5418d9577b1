"""Models: ``registry`` (what a name means), ``load`` (a base as the config says), ``lora`` (peft's config and
exact parameter counts), ``memory`` (the estimate before Start). Import the submodule you need."""
