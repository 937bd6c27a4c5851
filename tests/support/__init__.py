"""What the tests share: running the project's processes, Kafka and HDFS helpers, a fake X API,
lakes and tweets to test with. Tests import from here only, never from another test module."""
