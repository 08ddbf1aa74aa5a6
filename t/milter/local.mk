# t/milter - milter tests (issue 3)
