"""The one harness the tests and the benchmarks share: tokens, an API client, exportd
processes, nginx, chaos, and the test catalog."""
