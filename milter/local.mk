# milter/ - relayguard-milter (issue 3)
