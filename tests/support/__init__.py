"""Test support: real local services (moto, proxies, token service) and the action runner."""
