# t/transcript tests
