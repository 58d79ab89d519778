"""Process tests: real `exportd` processes, started, killed and stopped; real faults."""
