"""Metrics and logging adapters. The default is NullMetrics: nothing is sent anywhere."""
