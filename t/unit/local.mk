# t/unit tests
