"""Alert delivery: payloads, channels and the outbox dispatcher."""
