# t/cli tests
