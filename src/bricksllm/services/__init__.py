"""Use cases: the admin operations (keys, provider settings, custom providers, reporting) and,
later, the proxy pipeline. Services speak domain objects and `bricksllm.errors`; they know no
HTTP types, so every front end (admin API, CLI, tests) drives them the same way."""
