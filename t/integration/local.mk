# t/integration tests
