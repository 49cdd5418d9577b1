"""The tabs, one module each: layout (a small dataclass of its components) and plain module-level handlers."""
