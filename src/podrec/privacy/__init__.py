"""Privacy: pseudonymous listener ids, forgetting a listener, retention and noisy counts.

- ``ids``: the keyed hash every incoming listener id goes through (``privacy.id_key``);
- ``forget``: a deleted listener taken out of the trained models in the store;
- ``noise``: Laplace noise on counts published from listeners' events (``privacy.dp_epsilon``).
"""

from podrec.privacy.ids import ListenerIds, StoredId

__all__ = ["ListenerIds", "StoredId"]
