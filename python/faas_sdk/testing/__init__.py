"""faas_sdk.testing: the pytest plugin (fixtures, the slo marker) and test helpers."""
