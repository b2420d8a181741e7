"""The pure domain: no I/O, no clock, no asyncio. Time and counters come in as arguments."""
