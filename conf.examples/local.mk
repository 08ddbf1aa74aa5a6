# conf.examples/
