"""Spark side of tweetlake: reading Kafka into Structured Streaming and writing the lake."""
