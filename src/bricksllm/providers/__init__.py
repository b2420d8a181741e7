"""Upstream providers as plug-ins behind one interface (`providers.base.Provider`)."""
