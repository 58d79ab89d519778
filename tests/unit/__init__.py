"""Unit tests: no servers, no processes; each module on its own."""
