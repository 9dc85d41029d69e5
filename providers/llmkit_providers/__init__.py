"""llmkit's built-in providers: one sans-I/O codec module each.

Each module defines a provider key and registers its methods on the generic
functions of :mod:`llmkit.generics`; it is found through the
``llmkit.providers`` entry-point group, exactly as a third-party provider is.
"""
