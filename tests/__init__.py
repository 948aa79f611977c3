"""xfer's tests, laid out as the code is: tests/components/<step>/, tests/pipeline/, tests/benchmarks/; helpers
in tests/helpers/, shared fixtures in tests/conftest.py; tests/test_e2e.py runs the real DAG."""
