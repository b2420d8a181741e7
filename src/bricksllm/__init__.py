"""bricksllm: an OpenAI-compatible AI gateway with keys, limits, pricing, events and reporting."""

__version__ = "0.1.0"
