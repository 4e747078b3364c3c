"""pytest plugin of faas_sdk (entry point `pytest11: faas_sdk`). Loads cheaply: nothing is
imported from the engine until a fixture is used."""
