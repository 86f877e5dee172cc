"""The ``schedcore`` pytest plugin (registered through the ``pytest11`` entry point).

It is deliberately empty: loading it changes nothing in anyone's test session. Store
plugin authors use the conformance suite explicitly by subclassing
:class:`schedcore.testing.StoreConformance` and providing a ``store`` fixture::

    import pytest
    from schedcore.testing import StoreConformance

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def store(self):
            store = MyStore(...)
            yield store
            store.close()
"""

from __future__ import annotations
