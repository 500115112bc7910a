"""Settings: `base` is production-safe; `dev` and `test` relax it for local use."""
